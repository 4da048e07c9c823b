import numpy as np
import pytest

from ddpm_hf import chamfer_distance


def brute_force_chamfer(a, b):
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return squared.min(axis=1).sum() + squared.min(axis=0).sum()


def test_matches_brute_force_float64():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 2)), rng.standard_normal((200, 2)) * 2
    assert chamfer_distance(a, b) == pytest.approx(brute_force_chamfer(a, b), rel=1e-12)


def test_known_values():
    a = np.array([[0.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.0, 1.0]])
    # a -> nearest (0, 1): 1; (3, 4) -> a: 25; (0, 1) -> a: 1
    assert chamfer_distance(a, b) == pytest.approx(27.0)
    assert chamfer_distance(b, b) == 0.0


def test_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((70, 3))
    assert chamfer_distance(a, b) == pytest.approx(chamfer_distance(b, a))


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros((3, 2)), np.zeros((3, 3))),
        (np.zeros((0, 2)), np.zeros((3, 2))),
        (np.array([[np.nan, 0.0]]), np.zeros((1, 2))),
        (np.zeros(4), np.zeros((2, 2))),
    ],
)
def test_bad_input(a, b):
    with pytest.raises(ValueError):
        chamfer_distance(a, b)
