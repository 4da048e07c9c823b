"""2D toy datasets of the course's first lab, with one fixed normalisation per dataset.

Every dataset is normalised as (X - mean) / std * 2, with the per-coordinate mean and std taken once over a
reference draw of 1,000,000 points (seed 0), so that all draws of a dataset share the same normalisation.
"""

from functools import cache

import numpy as np
from sklearn import datasets as sk_datasets

REFERENCE_DRAW_SIZE = 1_000_000
NORMALISATION_SCALE = 2.0


def _swiss_roll(num_points: int, rng: np.random.Generator) -> np.ndarray:
    # The course's convention: noise-free roll with a hole, coordinates 0 and 2.
    points, _ = sk_datasets.make_swiss_roll(num_points, noise=0.0, random_state=_sk_seed(rng), hole=True)
    return points[:, [0, 2]]


def _s_curve(num_points: int, rng: np.random.Generator) -> np.ndarray:
    points, _ = sk_datasets.make_s_curve(num_points, noise=0.0, random_state=_sk_seed(rng))
    return points[:, [0, 2]]


def _moons(num_points: int, rng: np.random.Generator) -> np.ndarray:
    points, _ = sk_datasets.make_moons(num_points, noise=0.05, random_state=_sk_seed(rng))
    return points


def _circles(num_points: int, rng: np.random.Generator) -> np.ndarray:
    points, _ = sk_datasets.make_circles(num_points, noise=0.03, factor=0.5, random_state=_sk_seed(rng))
    return points


def _checkerboard(num_points: int, rng: np.random.Generator) -> np.ndarray:
    # Uniform on the 8 black squares of a 4x4 board on [-2, 2]^2.
    column = rng.uniform(-2, 2, num_points)
    row_in_square = rng.uniform(0, 1, num_points)
    row_block = rng.integers(0, 2, num_points) * 2 - 2 + (np.floor(column) % 2)
    return np.stack([column, row_block + row_in_square], axis=1)


def _gaussian_mixture(num_points: int, rng: np.random.Generator) -> np.ndarray:
    # Eight Gaussians (std 0.1) evenly spaced on the unit circle.
    angles = rng.integers(0, 8, num_points) * (2 * np.pi / 8)
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres + 0.1 * rng.standard_normal((num_points, 2))


def _sk_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


TOY2D_SAMPLERS = {
    "swiss_roll": _swiss_roll,
    "moons": _moons,
    "circles": _circles,
    "s_curve": _s_curve,
    "checkerboard": _checkerboard,
    "gaussian_mixture": _gaussian_mixture,
}
TOY2D_DATASETS = tuple(TOY2D_SAMPLERS)


def check_toy2d_name(name: str) -> None:
    """Raise a `ValueError` naming the allowed datasets if `name` is not one of them."""
    if name not in TOY2D_SAMPLERS:
        raise ValueError(f"Unknown 2D dataset {name!r}; choose one of {list(TOY2D_DATASETS)}.")


def sample_raw_toy2d(name: str, num_points: int, seed: int | None = None) -> np.ndarray:
    """Draw `num_points` un-normalised points of dataset `name` (float64, shape [num_points, 2])."""
    check_toy2d_name(name)
    if not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, got {num_points!r}.")
    return TOY2D_SAMPLERS[name](int(num_points), np.random.default_rng(seed)).astype(np.float64)


@cache
def toy2d_normalisation(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate (mean, std) of a 1,000,000-point reference draw (seed 0) of dataset `name`."""
    reference = sample_raw_toy2d(name, REFERENCE_DRAW_SIZE, seed=0)
    return reference.mean(axis=0), reference.std(axis=0)


def sample_toy2d(name: str, num_points: int, seed: int | None = None) -> np.ndarray:
    """
    Draw `num_points` normalised points of a 2D toy dataset.

    Args:
        name (`str`): One of `swiss_roll`, `moons`, `circles`, `s_curve`, `checkerboard`, `gaussian_mixture`.
        num_points (`int`): How many points.
        seed (`int`, *optional*): Seed of this draw; `None` draws fresh randomness.

    Returns:
        `np.ndarray` of shape `(num_points, 2)`, float32: (X - mean) / std * 2 with the dataset's fixed statistics.
    """
    raw = sample_raw_toy2d(name, num_points, seed)
    mean, std = toy2d_normalisation(name)
    return ((raw - mean) / std * NORMALISATION_SCALE).astype(np.float32)
