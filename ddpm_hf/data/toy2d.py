"""2D toy datasets of the course's first lab, normalised the course's way.

The course normalises a draw `X` of shape `(N, 2)` with ONE mean and ONE standard deviation taken over both
coordinates together, `(X - X.mean()) / X.std() * 2` (numpy's whole-array statistics), not per coordinate. Every
dataset here uses that scalar formula, with the statistics taken from one of two places:

- `course_normalise` and `sample_course_toy2d` take them from the array itself, exactly as the course writes it. This
  is how the course makes its data, and `train_2d.py` scores its samples against such a draw.
- `sample_toy2d` takes them once from a reference draw of 1,000,000 points (seed 0, `toy2d_normalisation`), so that
  every draw of a dataset, whatever its size or seed, lands in the same frame. Training data comes from it.

The two frames differ by the sampling error of a draw's own mean and std (for 2048 swiss-roll points about 0.03 in
shift and 1% in scale, in normalised units).

For the scikit-learn datasets (`swiss_roll`, `s_curve`, `moons`, `circles`) the seed is scikit-learn's
`random_state`: `sample_raw_toy2d("swiss_roll", n, seed=s)` is `make_swiss_roll(n, noise=0, random_state=s,
hole=True)[0][:, [0, 2]]`, the course's swiss roll.
"""

from functools import cache

import numpy as np
from sklearn import datasets as sk_datasets

REFERENCE_DRAW_SIZE = 1_000_000
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
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, got {str(num_points)[:50]!r}.")
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
        points (`np.ndarray` of shape `(N, D)`): Raw points, e.g. `make_swiss_roll(2048, noise=0,
            hole=True)[0][:, [0, 2]]`.
        scale (`float`, *optional*, defaults to 2.0): The course's scaling factor.

    Returns:
        `np.ndarray` of shape `(N, D)`, float64.

    Example:

    ```py
    >>> from sklearn.datasets import make_swiss_roll
    >>> from ddpm_hf import DDPM2DPipeline, chamfer_distance
    >>> from ddpm_hf.data import course_normalise

    >>> course_points = course_normalise(make_swiss_roll(2048, noise=0, hole=True)[0][:, [0, 2]])
    >>> samples = DDPM2DPipeline.from_pretrained("outputs/swiss_roll")(batch_size=2048)[0]
    >>> score = chamfer_distance(samples, course_points)
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
    The course's scalar statistics of dataset `name`, taken once over a 1,000,000-point reference draw (seed 0).

    Returns:
        `tuple[float, float]`: `(mean, std)` of all coordinates together, as `X.mean()` and `X.std()`.
    """
    reference = sample_raw_toy2d(name, REFERENCE_DRAW_SIZE, seed=0)
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
        dataset's reference draw (`toy2d_normalisation`), the same for every draw.
    """
    raw = sample_raw_toy2d(name, num_points, seed)
    mean, std = toy2d_normalisation(name)
    return ((raw - mean) / std * NORMALISATION_SCALE).astype(np.float32)


def sample_course_toy2d(name: str, num_points: int, seed: int | None = None) -> np.ndarray:
    """
    Draw `num_points` points of a 2D toy dataset normalised exactly as the course makes its data: the draw's own
    `(X - X.mean()) / X.std() * 2` (`course_normalise`).

    Args:
        name (`str`): One of `swiss_roll`, `moons`, `circles`, `s_curve`, `checkerboard`, `gaussian_mixture`.
        num_points (`int`): How many points; the course scores 2048.
        seed (`int`, *optional*): Seed of this draw, in 0..2**32 - 1; `None` draws fresh randomness.

    Returns:
        `np.ndarray` of shape `(num_points, 2)`, float32 (the course's `.float()`).
    """
    return course_normalise(sample_raw_toy2d(name, num_points, seed)).astype(np.float32)
