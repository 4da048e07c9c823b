"""2D toy datasets of the course's first lab, normalised the course's way.

The course normalises a draw `X` of shape `(N, 2)` with ONE mean and ONE standard deviation taken over both
coordinates together, `(X - X.mean()) / X.std() * 2` (numpy's whole-array statistics), not per coordinate
(`course_normalise`). It applies that formula to a dataset of 1,000,000 points, trains on it and scores 2048 of its
points. Every dataset here is normalised with that scalar formula:

- `sample_course_toy2d` makes the course's data: a fresh draw of 1,000,000 points (`COURSE_DATASET_SIZE`) normalised by
  its own statistics, of which it returns the first `num_points`. `train_2d.py` scores its samples against it.
- `sample_toy2d` (training data) uses the statistics of one such dataset, drawn once with seed 0
  (`toy2d_normalisation`), for every draw whatever its size or seed: the course's frame for seed 0. Another seed's
  1,000,000 points give a mean and std within about 0.1% of these.

Normalising a small draw by its own statistics is not the same: 2048 swiss-roll points miss the mean and std of the
whole distribution by about 0.03 and 1% in normalised units, which moves a Chamfer distance by several units.

For the scikit-learn datasets (`swiss_roll`, `s_curve`, `moons`, `circles`) the seed is scikit-learn's
`random_state`: `sample_raw_toy2d("swiss_roll", n, seed=s)` is `make_swiss_roll(n, noise=0, random_state=s,
hole=True)[0][:, [0, 2]]`, the course's swiss roll.
"""

from functools import cache

import numpy as np
from sklearn import datasets as sk_datasets

# The course's dataset size: it normalises 1,000,000 points together, trains on them and scores 2048 of them.
COURSE_DATASET_SIZE = 1_000_000
NORMALISATION_SCALE = 2.0
# Seeds go to scikit-learn's `random_state`, which takes 0..2**32 - 1.
MAX_SEED = 2**32 - 1


def _swiss_roll(num_points: int, seed: int) -> np.ndarray:
    # The course's convention: noise-free roll with a hole, coordinates 0 and 2.
    points, _ = sk_datasets.make_swiss_roll(num_points, noise=0.0, random_state=seed, hole=True)
    return points[:, [0, 2]]


def _s_curve(num_points: int, seed: int) -> np.ndarray:
    points, _ = sk_datasets.make_s_curve(num_points, noise=0.0, random_state=seed)
    return points[:, [0, 2]]


def _moons(num_points: int, seed: int) -> np.ndarray:
    points, _ = sk_datasets.make_moons(num_points, noise=0.05, random_state=seed)
    return points


def _circles(num_points: int, seed: int) -> np.ndarray:
    points, _ = sk_datasets.make_circles(num_points, noise=0.03, factor=0.5, random_state=seed)
    return points


def _checkerboard(num_points: int, seed: int) -> np.ndarray:
    # Uniform on the 8 black squares of a 4x4 board on [-2, 2]^2.
    rng = np.random.default_rng(seed)
    column = rng.uniform(-2, 2, num_points)
    row_in_square = rng.uniform(0, 1, num_points)
    row_block = rng.integers(0, 2, num_points) * 2 - 2 + (np.floor(column) % 2)
    return np.stack([column, row_block + row_in_square], axis=1)


def _gaussian_mixture(num_points: int, seed: int) -> np.ndarray:
    # Eight Gaussians (std 0.1) evenly spaced on the unit circle.
    rng = np.random.default_rng(seed)
    angles = rng.integers(0, 8, num_points) * (2 * np.pi / 8)
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres + 0.1 * rng.standard_normal((num_points, 2))


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
        raise ValueError(f"Unknown 2D dataset {str(name)[:50]!r}; choose one of {list(TOY2D_DATASETS)}.")


def _check_count(argument: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {str(value)[:50]!r}.")


def sample_raw_toy2d(name: str, num_points: int, seed: int | None = None) -> np.ndarray:
    """
    Draw `num_points` un-normalised points of a 2D toy dataset.

    Args:
        name (`str`): One of `swiss_roll`, `moons`, `circles`, `s_curve`, `checkerboard`, `gaussian_mixture`.
        num_points (`int`): How many points.
        seed (`int`, *optional*): Seed of this draw, in 0..2**32 - 1 (scikit-learn's `random_state` for the
            scikit-learn datasets); `None` draws fresh randomness.

    Returns:
        `np.ndarray` of shape `(num_points, 2)`, float64.
    """
    check_toy2d_name(name)
    _check_count("num_points", num_points, minimum=1)
    if seed is None:
        seed = int(np.random.default_rng().integers(MAX_SEED + 1))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be None or an integer in 0..{MAX_SEED}, got {str(seed)[:50]!r}.")
    return TOY2D_SAMPLERS[name](int(num_points), int(seed)).astype(np.float64)


def course_normalise(points: np.ndarray, scale: float = NORMALISATION_SCALE) -> np.ndarray:
    """
    Normalise points the course's way: `(points - points.mean()) / points.std() * scale`, with ONE mean and ONE
    standard deviation over all coordinates of the array (numpy's whole-array statistics, population std).

    Args:
        points (`np.ndarray` of shape `(N, D)`): Raw points, e.g. `make_swiss_roll(1_000_000, noise=0,
            hole=True)[0][:, [0, 2]]`.
        scale (`float`, *optional*, defaults to 2.0): The course's scaling factor.

    Returns:
        `np.ndarray` of shape `(N, D)`, float64.

    Example:

    ```py
    >>> from sklearn.datasets import make_swiss_roll
    >>> from ddpm_hf.data import course_normalise

    >>> # the course's dataset: 1,000,000 points normalised together; it scores the first 2048
    >>> course_points = course_normalise(make_swiss_roll(1_000_000, noise=0, hole=True)[0][:, [0, 2]])[:2048]
    ```
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) < 2:
        raise ValueError(f"Need an (N, D) array of at least 2 points, got shape {points.shape}.")
    if not np.isfinite(points).all():
        raise ValueError("Points hold NaN or infinite values; they cannot be normalised.")
    std = points.std()
    if not std > 0:
        raise ValueError("All coordinates of the points are equal (std 0); they cannot be normalised.")
    return (points - points.mean()) / std * scale


@cache
def toy2d_normalisation(name: str) -> tuple[float, float]:
    """
    The course's scalar statistics of dataset `name`, taken once over a 1,000,000-point draw (seed 0).

    Returns:
        `tuple[float, float]`: `(mean, std)` of all coordinates together, as `X.mean()` and `X.std()`.
    """
    reference = sample_raw_toy2d(name, COURSE_DATASET_SIZE, seed=0)
    return float(reference.mean()), float(reference.std())


def sample_toy2d(name: str, num_points: int, seed: int | None = None) -> np.ndarray:
    """
    Draw `num_points` points of a 2D toy dataset in the dataset's fixed training frame.

    Args:
        name (`str`): One of `swiss_roll`, `moons`, `circles`, `s_curve`, `checkerboard`, `gaussian_mixture`.
        num_points (`int`): How many points.
        seed (`int`, *optional*): Seed of this draw, in 0..2**32 - 1; `None` draws fresh randomness.

    Returns:
        `np.ndarray` of shape `(num_points, 2)`, float32: `(X - mean) / std * 2`, with the scalar mean and std of the
        dataset's seed-0 draw of 1,000,000 points (`toy2d_normalisation`), the same for every draw.
    """
    raw = sample_raw_toy2d(name, num_points, seed)
    mean, std = toy2d_normalisation(name)
    return ((raw - mean) / std * NORMALISATION_SCALE).astype(np.float32)


def sample_course_toy2d(
    name: str, num_points: int, seed: int | None = None, dataset_size: int = COURSE_DATASET_SIZE
) -> np.ndarray:
    """
    The course's data: a fresh draw of `dataset_size` points normalised by its own `(X - X.mean()) / X.std() * 2`
    (`course_normalise`), of which the first `num_points`.

    Args:
        name (`str`): One of `swiss_roll`, `moons`, `circles`, `s_curve`, `checkerboard`, `gaussian_mixture`.
        num_points (`int`): How many points to return; the course scores 2048.
        seed (`int`, *optional*): Seed of the draw, in 0..2**32 - 1; `None` draws fresh randomness.
        dataset_size (`int`, *optional*, defaults to 1,000,000): How many points are drawn and normalised together;
            the course's dataset has 1,000,000. `dataset_size=num_points` normalises the returned points alone.

    Returns:
        `np.ndarray` of shape `(num_points, 2)`, float32 (the course's `.float()`).

    Example:

    ```py
    >>> from ddpm_hf import DDPM2DPipeline, chamfer_distance
    >>> from ddpm_hf.data import sample_course_toy2d

    >>> course_points = sample_course_toy2d("swiss_roll", 2048, seed=0)
    >>> samples = DDPM2DPipeline.from_pretrained("outputs/swiss_roll")(batch_size=2048)[0]
    >>> score = chamfer_distance(samples, course_points)
    ```
    """
    check_toy2d_name(name)
    _check_count("num_points", num_points, minimum=1)
    _check_count("dataset_size", dataset_size, minimum=2)
    if num_points > dataset_size:
        raise ValueError(f"num_points ({num_points}) must not exceed dataset_size ({dataset_size}).")
    raw = sample_raw_toy2d(name, int(dataset_size), seed)
    return course_normalise(raw)[: int(num_points)].astype(np.float32)
