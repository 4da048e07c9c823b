import numpy as np
import pytest
from sklearn.datasets import make_swiss_roll

from ddpm_hf import TOY2D_DATASETS, sample_toy2d
from ddpm_hf.data.toy2d import sample_raw_toy2d, toy2d_normalisation


@pytest.mark.parametrize("name", TOY2D_DATASETS)
def test_normalised_draws_have_scale_two(name):
    points = sample_toy2d(name, 200_000, seed=5)
    assert points.shape == (200_000, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(points.std(axis=0), 2.0, rtol=0.02)


@pytest.mark.parametrize("name", TOY2D_DATASETS)
def test_seeded_draws_repeat_and_differ(name):
    np.testing.assert_array_equal(sample_toy2d(name, 100, seed=1), sample_toy2d(name, 100, seed=1))
    assert not np.array_equal(sample_toy2d(name, 100, seed=1), sample_toy2d(name, 100, seed=2))


def test_swiss_roll_is_sklearn_columns_0_and_2_normalised_by_fixed_statistics():
    raw = sample_raw_toy2d("swiss_roll", 1000, seed=3)
    # Every raw point lies on the roll: (x, z) = (t cos t, t sin t) with t in [1.5 pi, 4.5 pi].
    radius = np.hypot(raw[:, 0], raw[:, 1])
    assert radius.min() >= 1.5 * np.pi - 1e-9 and radius.max() <= 4.5 * np.pi + 1e-9
    reference, _ = make_swiss_roll(1_000_000, noise=0.0, random_state=123, hole=True)
    mean, std = toy2d_normalisation("swiss_roll")
    np.testing.assert_allclose(mean, reference[:, [0, 2]].mean(axis=0), atol=0.02)
    np.testing.assert_allclose(std, reference[:, [0, 2]].std(axis=0), rtol=0.002)
    np.testing.assert_allclose(sample_toy2d("swiss_roll", 1000, seed=3), ((raw - mean) / std * 2), rtol=1e-5)


def test_checkerboard_only_fills_black_squares():
    raw = sample_raw_toy2d("checkerboard", 20_000, seed=0)
    column, row = np.floor(raw[:, 0]), np.floor(raw[:, 1])
    assert np.all((column + row) % 2 == 0)
    assert len({(c, r) for c, r in zip(column, row)}) == 8


@pytest.mark.parametrize("name, num_points", [("spiral", 10), ("swiss_roll", 0), ("moons", -1)])
def test_bad_input(name, num_points):
    with pytest.raises(ValueError, match="spiral.*swiss_roll|num_points"):
        sample_toy2d(name, num_points)
