import numpy as np
import pytest
from sklearn.datasets import make_moons, make_swiss_roll

from ddpm_hf import TOY2D_DATASETS, sample_toy2d
from ddpm_hf.data import (
    COURSE_DATASET_SIZE,
    course_normalise,
    sample_course_toy2d,
    sample_raw_toy2d,
    toy2d_normalisation,
)


def course_formula(raw):
    # The course's normalisation as it writes it: one mean and one std over the whole array, times 2.
    return (raw - raw.mean()) / raw.std() * 2


def course_swiss_roll(num_points, random_state):
    return make_swiss_roll(num_points, noise=0, hole=True, random_state=random_state)[0][:, [0, 2]]


@pytest.mark.parametrize("name", TOY2D_DATASETS)
def test_training_frame_draws_have_scalar_mean_zero_and_std_two(name):
    points = sample_toy2d(name, 200_000, seed=5)
    assert points.shape == (200_000, 2) and points.dtype == np.float32
    # statistics of the whole array, the course's; the reference draw's sampling error is far below these tolerances
    assert abs(points.astype(np.float64).mean()) < 0.03
    assert points.astype(np.float64).std() == pytest.approx(2.0, rel=0.02)


@pytest.mark.parametrize("name", TOY2D_DATASETS)
def test_seeded_draws_repeat_and_differ(name):
    np.testing.assert_array_equal(sample_toy2d(name, 100, seed=1), sample_toy2d(name, 100, seed=1))
    assert not np.array_equal(sample_toy2d(name, 100, seed=1), sample_toy2d(name, 100, seed=2))
    np.testing.assert_array_equal(sample_course_toy2d(name, 100, seed=1), sample_course_toy2d(name, 100, seed=1))
    assert not np.array_equal(sample_raw_toy2d(name, 100), sample_raw_toy2d(name, 100))


def test_course_data_is_sklearn_swiss_roll_normalised_by_the_course_formula():
    # the course's data: 1,000,000 points normalised together, of which it scores the first 2048
    assert COURSE_DATASET_SIZE == 1_000_000
    raw = course_swiss_roll(1_000_000, random_state=7)
    expected = course_formula(raw)[:2048]
    np.testing.assert_array_equal(sample_raw_toy2d("swiss_roll", 1_000_000, seed=7), raw)
    np.testing.assert_allclose(course_normalise(raw)[:2048], expected, rtol=0, atol=1e-12)
    course_points = sample_course_toy2d("swiss_roll", 2048, seed=7)
    assert course_points.shape == (2048, 2) and course_points.dtype == np.float32
    # float32 rounding of values below 4 in magnitude: at most 4 * 2**-24 = 2.4e-7
    np.testing.assert_allclose(course_points, expected, rtol=0, atol=3e-7)


def test_course_data_of_a_small_dataset_is_normalised_alone():
    raw = course_swiss_roll(2048, random_state=7)
    np.testing.assert_array_equal(sample_raw_toy2d("swiss_roll", 2048, seed=7), raw)
    points = sample_course_toy2d("swiss_roll", 100, seed=7, dataset_size=2048)
    np.testing.assert_allclose(points, course_formula(raw)[:100], rtol=0, atol=3e-7)


def test_training_frame_uses_the_course_statistics_of_a_seed_0_reference_draw():
    reference = course_swiss_roll(1_000_000, random_state=0)
    mean, std = toy2d_normalisation("swiss_roll")
    assert isinstance(mean, float) and isinstance(std, float)
    assert mean == pytest.approx(reference.mean(), rel=1e-12) and std == pytest.approx(reference.std(), rel=1e-12)
    raw = course_swiss_roll(1000, random_state=3)
    np.testing.assert_allclose(sample_toy2d("swiss_roll", 1000, seed=3), (raw - mean) / std * 2, rtol=0, atol=3e-7)
    # every raw point lies on the roll: (x, z) = (t cos t, t sin t) with t in [1.5 pi, 4.5 pi]
    radius = np.hypot(raw[:, 0], raw[:, 1])
    assert radius.min() >= 1.5 * np.pi - 1e-9 and radius.max() <= 4.5 * np.pi + 1e-9


def test_training_frame_is_the_course_frame_up_to_the_draw():
    # The scalar mean of a 1,000,000-point draw varies by about 0.0015 (one standard deviation, normalised units) and
    # its std by about 0.03%, so the seed-0 statistics put another draw's points where that draw's own statistics put
    # them, to within about 0.002 + 3.5 * 0.0004 (the points reach 3.5); 0.02 is over five times that.
    raw = sample_raw_toy2d("swiss_roll", 1_000_000, seed=11)[:2048]
    mean, std = toy2d_normalisation("swiss_roll")
    np.testing.assert_allclose(
        sample_course_toy2d("swiss_roll", 2048, seed=11), (raw - mean) / std * 2, rtol=0, atol=0.02
    )


def test_normalisation_is_scalar_not_per_coordinate_on_moons():
    # Moons' coordinates have different means (0.5, 0.25) and stds (0.87, 0.50): per-coordinate statistics would
    # centre and equalise the columns, the course's scalar ones keep their offset and their ratio.
    raw = make_moons(4000, noise=0.05, random_state=9)[0]
    np.testing.assert_array_equal(sample_raw_toy2d("moons", 4000, seed=9), raw)
    per_coordinate = (raw - raw.mean(axis=0)) / raw.std(axis=0) * 2
    _, reference_std = toy2d_normalisation("moons")
    for points, scalar_std in [
        (course_normalise(raw), raw.std()),
        (sample_course_toy2d("moons", 4000, seed=9, dataset_size=4000), raw.std()),
        (sample_toy2d("moons", 4000, seed=9), reference_std),
    ]:
        points = points.astype(np.float64)
        assert np.abs(points - per_coordinate).max() > 0.5
        column_std, column_mean = points.std(axis=0), points.mean(axis=0)
        # one affine map for both columns: the std ratio and the gap between column means carry over (float32: 1e-5)
        assert column_std[0] / column_std[1] == pytest.approx(raw.std(axis=0)[0] / raw.std(axis=0)[1], rel=1e-5)
        raw_gap = raw.mean(axis=0)[0] - raw.mean(axis=0)[1]
        assert column_mean[0] - column_mean[1] == pytest.approx(raw_gap / scalar_std * 2, rel=1e-5)
    np.testing.assert_allclose(course_normalise(raw), course_formula(raw), rtol=0, atol=1e-12)


def test_course_data_refuses_more_points_than_its_dataset():
    with pytest.raises(ValueError, match=r"num_points \(11\) must not exceed dataset_size \(10\)"):
        sample_course_toy2d("moons", 11, seed=0, dataset_size=10)
    with pytest.raises(ValueError, match="dataset_size must be an integer >= 2, got '1'"):
        sample_course_toy2d("moons", 1, seed=0, dataset_size=1)


def test_course_normalise_takes_a_scale():
    raw = course_swiss_roll(500, random_state=1)
    np.testing.assert_allclose(course_normalise(raw, scale=7.0), course_formula(raw) / 2 * 7, rtol=1e-12)


def test_checkerboard_only_fills_black_squares():
    raw = sample_raw_toy2d("checkerboard", 20_000, seed=0)
    column, row = np.floor(raw[:, 0]), np.floor(raw[:, 1])
    assert np.all((column + row) % 2 == 0)
    assert len({(c, r) for c, r in zip(column, row)}) == 8


@pytest.mark.parametrize(
    "name, num_points, seed, message",
    [
        ("spiral", 10, 0, "spiral.*swiss_roll"),
        ("swiss_roll", 0, 0, "num_points must be an integer >= 1, got '0'"),
        ("moons", -1, 0, "num_points"),
        ("moons", 10, -1, r"seed must be None or an integer in 0..4294967295, got '-1'"),
        ("moons", 10, 2**32, "seed must be None"),
        ("checkerboard", 10, 1.5, "seed must be None"),
    ],
)
def test_bad_input(name, num_points, seed, message):
    for sample in (sample_toy2d, sample_course_toy2d, sample_raw_toy2d):
        with pytest.raises(ValueError, match=message):
            sample(name, num_points, seed=seed)


@pytest.mark.parametrize(
    "points, message",
    [
        (np.arange(6.0), r"Need an \(N, D\) array of at least 2 points, got shape \(6,\)"),
        (np.ones((1, 2)), r"got shape \(1, 2\)"),
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), "NaN or infinite"),
        (np.full((5, 2), 3.0), "std 0"),
    ],
)
def test_course_normalise_refuses_bad_points(points, message):
    with pytest.raises(ValueError, match=message):
        course_normalise(points)
