"""train_classifier.py on the bundled digits: a stratified hold-out, a model that loads back, real accuracy."""

import json
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--validation_fraction", "1.5"], "validation_fraction"),
        (["--resolution", "0"], "resolution"),
        (["--train_data_dir", "x"], "exactly one"),
    ],
)
def test_bad_flags(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        train_classifier.parse_args(["--dataset_name", "digits", "--output_dir", str(tmp_path / "o"), *argv])


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
