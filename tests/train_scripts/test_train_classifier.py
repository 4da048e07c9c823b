"""train_classifier.py on the bundled digits: a stratified hold-out, a model that loads back, real accuracy."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ddpm_hf.models import ImageClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "train_scripts"))
import train_classifier  # noqa: E402


def test_stratified_split_holds_out_the_fraction_of_every_class():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    train, validation = train_classifier.stratified_split(labels, 0.2, torch.Generator().manual_seed(0))
    assert sorted(torch.cat([train, validation]).tolist()) == list(range(16))  # disjoint and complete
    assert [int((labels[validation] == c).sum()) for c in range(3)] == [2, 1, 0]  # a single image stays in training


def test_trains_on_digits_and_saves_a_loadable_judge(tmp_path):
    output_dir = tmp_path / "judge"
    args = train_classifier.parse_args(
        [
            "--dataset_name",
            "digits",
            "--resolution",
            "8",
            "--num_epochs",
            "15",
            "--block_channels",
            "16",
            "32",
            "--feature_dim",
            "32",
            "--output_dir",
            str(output_dir),
        ]
    )
    metrics = train_classifier.main(args)
    counts = np.bincount(load_digits().target)
    held_out = sum(round(count * 0.2) for count in counts)
    assert metrics["num_validation"] == held_out and metrics["num_train"] == 1797 - held_out
    assert metrics["validation_accuracy"] > 0.8  # 10 classes: chance is 0.1
    saved = json.loads((output_dir / "metrics.json").read_text())
    assert saved["validation_accuracy"] == metrics["validation_accuracy"]
    model = ImageClassifier.from_pretrained(output_dir)
    assert model.config.label_names == [str(d) for d in range(10)] and model.config.resolution == 8


def test_gaussian_blur_matches_scipy_in_float64():
    from scipy.ndimage import gaussian_filter

    images = torch.rand(3, 2, 9, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = torch.tensor([0.4, 0.0, 1.3], dtype=torch.float64)
    blurred = train_classifier.gaussian_blur(images, sigmas, radius=4)
    for image, sigma, result in zip(images.numpy(), sigmas.tolist(), blurred.numpy()):
        if sigma == 0:
            np.testing.assert_allclose(result, image, atol=1e-12)  # no blur
            continue
        for channel in range(2):  # scipy's "nearest" mode is edge padding; truncate so that its radius is 4 too
            expected = gaussian_filter(image[channel], sigma, mode="nearest", truncate=4 / sigma)
            np.testing.assert_allclose(result[channel], expected, atol=1e-12)


def test_random_blur_draws_sigmas_up_to_the_maximum():
    images = torch.zeros(64, 1, 9, 9)
    images[:, :, 4, 4] = 1.0  # a point: its blurred centre falls as sigma grows
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(train_classifier.random_blur(images, 0.0, generator), images)
    centres = train_classifier.random_blur(images, 1.0, generator)[:, 0, 4, 4]
    assert torch.allclose(
        images.sum(dim=(1, 2, 3)), train_classifier.random_blur(images, 1.0, generator).sum((1, 2, 3))
    )
    weakest = 1 / (2 * math.pi)  # the centre of a sigma-1 Gaussian is about 1 / (2 pi sigma^2) of the point
    assert centres.min() > weakest * 0.9 and centres.max() > 0.9 and centres.std() > 0.1


def test_scores_a_separate_test_set_with_the_saved_classifier(tmp_path):
    digits = load_digits()
    images = np.repeat(np.repeat((digits.images * 255 / 16).astype(np.uint8), 2, axis=1), 2, axis=2)  # 16x16
    train, test = slice(0, 1400), slice(1400, None)
    names = np.array([str(d) for d in range(10)])
    np.savez(tmp_path / "train.npz", images=images[train], labels=digits.target[train], label_names=names)
    np.savez(tmp_path / "test.npz", images=images[test], labels=digits.target[test], label_names=names)
    argv = [
        "--resolution",
        "16",
        "--num_epochs",
        "10",
        "--train_batch_size",
        "32",
        "--block_channels",
        "16",
        "32",
        "--feature_dim",
        "32",
    ]
    metrics = train_classifier.main(
        train_classifier.parse_args(
            [
                "--dataset_name",
                str(tmp_path / "train.npz"),
                "--test_dataset_name",
                str(tmp_path / "test.npz"),
                *argv,
                "--output_dir",
                str(tmp_path / "judge"),
            ]  # fmt: skip
        )
    )
    # the saved model, fed the test images directly, gives the same accuracy
    model = ImageClassifier.from_pretrained(tmp_path / "judge").eval()
    inputs = torch.from_numpy(images[test]).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        predicted = model(inputs).argmax(dim=1).numpy()
    assert metrics["num_test"] == 397
    assert metrics["test_accuracy"] == pytest.approx(float((predicted == digits.target[test]).mean()))
    assert metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_a_test_set_with_other_classes_is_refused_before_training(tmp_path):
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    np.savez(
        tmp_path / "test.npz", images=images, labels=np.array([0, 1, 2, 2]), label_names=np.array(["a", "b", "c"])
    )
    args = train_classifier.parse_args(
        [
            "--dataset_name",
            "digits",
            "--test_dataset_name",
            str(tmp_path / "test.npz"),
            "--output_dir",
            str(tmp_path / "judge"),
        ]  # fmt: skip
    )
    with pytest.raises(ValueError, match=r"test_dataset_name .* must have the training data's classes"):
        train_classifier.main(args)
    assert not (tmp_path / "judge").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max_blur", "-1"], "max_blur"),
        (["--validation_fraction", "1.5"], "validation_fraction"),
        (["--resolution", "0"], "resolution"),
        (["--train_data_dir", "x"], "exactly one"),
        (["--block_channels", "4", "4"], r"--block_channels must be positive multiples of 8 .*got \[4, 4\]"),
        (["--block_channels", "16", "12"], r"--block_channels must be positive multiples of 8 .*got \[16, 12\]"),
        (["--block_channels", "0"], r"--block_channels must be positive multiples of 8"),
        (["--max_shift", "-3"], r"--max_shift must be in \[0, 31\] pixels .*got -3"),
        (["--resolution", "8", "--max_shift", "8"], r"--max_shift must be in \[0, 7\] pixels .*got 8"),
        (["--learning_rate", "0"], r"argument --learning_rate: must be a number in \(0, inf\), got 0.0"),
        (["--learning_rate", "nan"], r"argument --learning_rate: must be a number in \(0, inf\), got nan"),
        (["--weight_decay", "-0.1"], r"argument --weight_decay: must be a number in \[0, inf\), got -0.1"),
        (["--resize_mode", "pad"], r"argument --resize_mode: invalid choice: 'pad' \(choose from 'crop', 'stretch'\)"),
    ],
)
def test_bad_flags(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        train_classifier.parse_args(["--dataset_name", "digits", "--output_dir", str(tmp_path / "o"), *argv])
    assert not (tmp_path / "o").exists()


def test_the_classifier_refuses_widths_its_group_norm_cannot_split():
    with pytest.raises(ValueError, match=r"block_channels must be .* multiple of 8 .*got \[4, 4\]"):
        ImageClassifier(block_channels=(4, 4))
    with pytest.raises(ValueError, match=r"block_channels must be one or more widths"):
        ImageClassifier(block_channels=())
    assert list(ImageClassifier(block_channels=(8, 16)).config.block_channels) == [8, 16]


def test_unlabelled_data_is_refused_with_the_route_that_needs_no_labels(tmp_path):
    np.savez(tmp_path / "faces.npz", images=np.zeros((6, 8, 8), np.uint8))
    args = train_classifier.parse_args(
        ["--dataset_name", str(tmp_path / "faces.npz"), "--resolution", "8", "--output_dir", str(tmp_path / "judge")]
    )
    with pytest.raises(ValueError, match=r"faces.npz' has no label column.*--label_column.*evaluate.py --inception"):
        train_classifier.main(args)
    assert not (tmp_path / "judge").exists()


def test_multi_label_judge_learns_the_synthetic_iclevr_objects(tmp_path):
    from ddpm_hf.data import make_synthetic_iclevr

    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=600, resolution=32, seed=1)
    output_dir = tmp_path / "judge"
    args = train_classifier.parse_args(
        [
            "--train_data_dir",
            folder,
            "--resolution",
            "32",
            "--num_epochs",
            "40",
            "--train_batch_size",
            "32",
            "--block_channels",
            "16",
            "32",
            "64",
            "--output_dir",
            str(output_dir),
        ]  # fmt: skip
    )
    metrics = train_classifier.main(args)
    # i-CLEVR's rule: the top-k labels of each image against its k objects; chance is about 2/24
    assert metrics["validation_accuracy"] > 0.85 and metrics["num_validation"] == 120
    model = ImageClassifier.from_pretrained(output_dir)
    assert model.config.multi_label and model.config.pooling == "mean_max" and model.config.num_labels == 24
