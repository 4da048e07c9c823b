"""An independent judge for the digits demo: a scikit-learn SVC trained on the real 8x8 digits."""

import numpy as np
import torch


def train_digits_classifier(seed: int = 0, test_fraction: float = 0.25):
    """
    Fit an RBF SVC (gamma=0.001, C=10) on scikit-learn's 8x8 digits, holding out `test_fraction` of them.

    Returns:
        `tuple`: (classifier, accuracy on the held-out real digits).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        digits.data, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    classifier = SVC(gamma=0.001, C=10.0).fit(train_x, train_y)
    return classifier, float((classifier.predict(test_x) == test_y).mean())


def images_to_digits_features(images: torch.Tensor) -> np.ndarray:
    """
    (N, 1, H, W) images in [0, 1] (H and W multiples of 8) -> (N, 64) features on the digits' 0..16 scale,
    downscaled to 8x8 by area averaging.
    """
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] % 8 or images.shape[3] % 8:
        raise ValueError(f"Need greyscale (N, 1, H, W) images with H and W multiples of 8, got {tuple(images.shape)}.")
    small = torch.nn.functional.adaptive_avg_pool2d(images.float(), (8, 8))
    return (small.reshape(len(images), 64) * 16.0).cpu().numpy()
