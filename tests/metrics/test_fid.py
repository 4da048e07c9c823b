"""FID, KID and IS (torchmetrics) against independent float64 computations; feature extraction; the reference cache."""

import sys

import numpy as np
import pytest
import torch
from scipy import linalg

from ddpm_hf.metrics import (
    cached_tensors,
    extract_features,
    frechet_distance,
    inception_feature_network,
    inception_score,
    kernel_distance,
)
from ddpm_hf.models import ImageClassifier


def gaussians(seed=0, n=2000, d=16):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    real = rng.normal(size=(n, d)) @ mixing
    fake = rng.normal(size=(n, d)) @ (mixing * 1.3) + 0.4
    return real, fake


def reference_fid(real, fake):
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(cov_r @ cov_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * covmean))


@pytest.mark.parametrize("seed", [0, 1])
def test_fid_matches_scipy_sqrtm_in_float64(seed):
    real, fake = gaussians(seed)
    ours = frechet_distance(torch.from_numpy(real), torch.from_numpy(fake))
    assert ours == pytest.approx(reference_fid(real, fake), rel=1e-3)
    same = frechet_distance(torch.from_numpy(real), torch.from_numpy(real))
    assert abs(same) < 1e-6


def test_kid_matches_the_unbiased_polynomial_mmd():
    real, fake = gaussians(2, n=300, d=8)
    mean, std = kernel_distance(torch.from_numpy(real), torch.from_numpy(fake), subsets=3, subset_size=300)

    def kernel(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    m = len(real)
    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    expected = (
        (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1)) + (k_ff.sum() - np.trace(k_ff)) / (m * (m - 1)) - 2 * k_rf.mean()
    )
    # with subsets of all samples every subset is the whole set: the same value each time
    assert mean == pytest.approx(expected, rel=1e-6) and std == pytest.approx(0, abs=1e-9)


def test_inception_score_matches_the_kl_formula():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(500, 10)) * 3
    mean, _ = inception_score(torch.from_numpy(logits), splits=1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    marginal = p.mean(0)
    expected = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1)))
    assert mean == pytest.approx(expected, rel=1e-6)
    assert inception_score(torch.zeros(100, 10), splits=1)[0] == pytest.approx(1.0)  # no information: IS 1


def test_classifier_features_and_logits_of_pipeline_images():
    torch.manual_seed(0)
    classifier = ImageClassifier(in_channels=1, resolution=8, num_labels=4, block_channels=(8, 16), feature_dim=12)
    images = torch.rand(5, 1, 16, 16)  # another size than the classifier's: resized
    features, logits = extract_features(classifier, images, batch_size=2)
    assert features.shape == (5, 12) and logits.shape == (5, 4) and features.dtype == torch.float64
    with torch.no_grad():
        expected = classifier(torch.nn.functional.interpolate(images * 2 - 1, size=(8, 8), mode="bilinear",
                                                              antialias=True))  # fmt: skip
    torch.testing.assert_close(logits.float(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"3 channel\(s\) and the classifier takes 1"):  # never greyed silently
        extract_features(classifier, images.expand(-1, 3, -1, -1))


def test_inception_without_torch_fidelity_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # the import fails as it does where it is missing
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(ImportError, match=r'pip install "ddpm-hf\[inception\]".*--feature_network PATH'):
        inception_feature_network()


def test_a_missing_inception_weights_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"Inception weights file '.*nope.pth' does not exist"):
        inception_feature_network(str(tmp_path / "nope.pth"))


def test_reference_features_are_computed_once_then_read_from_the_cache(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"features": torch.arange(6, dtype=torch.float64).reshape(3, 2)}

    key = {"dataset": "digits", "split": "A", "network": "abc"}
    first, from_cache = cached_tensors(key, compute, str(tmp_path))
    assert not from_cache and len(calls) == 1
    again, from_cache = cached_tensors(dict(reversed(list(key.items()))), compute, str(tmp_path))
    assert from_cache and len(calls) == 1
    torch.testing.assert_close(again["features"], first["features"])
    cached_tensors({**key, "network": "retrained"}, compute, str(tmp_path))
    assert len(calls) == 2 and not list(tmp_path.glob("*.tmp"))
