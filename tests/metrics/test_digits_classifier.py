import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ddpm_hf.metrics.digits_classifier import images_to_digits_features, train_digits_classifier


def test_features_of_real_digits_round_trip_at_8_and_16_pixels():
    digits = load_digits()
    images = torch.from_numpy(digits.images[:50] / 16.0).float()[:, None]
    np.testing.assert_allclose(images_to_digits_features(images), digits.data[:50], atol=1e-5)
    upscaled = images.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest 2x: area average undoes it
    np.testing.assert_allclose(images_to_digits_features(upscaled), digits.data[:50], atol=1e-5)


def test_classifier_is_an_accurate_judge_of_real_digits():
    classifier, held_out_accuracy = train_digits_classifier()
    assert held_out_accuracy > 0.97
    digits = load_digits()
    images = torch.from_numpy(digits.images / 16.0).float()[:, None]
    assert (classifier.predict(images_to_digits_features(images)) == digits.target).mean() > 0.98


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="multiples of 8"):
        images_to_digits_features(torch.zeros(2, 1, 12, 12))
    with pytest.raises(ValueError, match="greyscale"):
        images_to_digits_features(torch.zeros(2, 3, 8, 8))
