"""Held-out images: a seeded, stratified fraction of the training data, a split of the source, or another source,
each decoded as the training images are and checked against the training classes."""

import collections
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf.data import (
    HeldoutSettings,
    ImageDataSettings,
    dataset_splits,
    load_training_images,
    split_off_heldout,
    stratified_choice,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train_scripts"))
from test_train_image import make_image_folder  # noqa: E402


def test_stratified_choice_keeps_each_class_in_proportion_and_is_seeded():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    chosen = stratified_choice(labels, 10, len(labels), seed=3)
    assert collections.Counter(labels[row] for row in chosen) == {0: 5, 1: 3, 2: 2}
    assert np.array_equal(chosen, stratified_choice(labels, 10, len(labels), seed=3))
    assert not np.array_equal(chosen, stratified_choice(labels, 10, len(labels), seed=4))
    assert len(set(chosen.tolist())) == 10 and list(chosen) == sorted(chosen)
    # largest remainders take the rounding: 7 of [3, 3, 4] rows -> shares 2.1, 2.1, 2.8 -> 2, 2, 3
    odd = [0] * 3 + [1] * 3 + [2] * 4
    assert collections.Counter(odd[row] for row in stratified_choice(odd, 7, 10, seed=0)) == {0: 2, 1: 2, 2: 3}
    assert len(stratified_choice(None, 4, 9, seed=0)) == 4
    with pytest.raises(ValueError, match="Cannot choose 11 of 10"):
        stratified_choice(None, 11, 10, seed=0)


def test_a_fraction_leaves_the_training_data_and_matches_the_images_it_came_from():
    data = load_training_images(ImageDataSettings(dataset_name="digits", resolution=8, condition="class"))
    everything = data.decode_uint8(data.dataset.with_format(None), data.image_column)
    labels = np.array(data.dataset.with_format(None)["label"])
    heldout = split_off_heldout(data, HeldoutSettings(validation_fraction=0.1, validation_images=10_000, seed=0))
    assert len(heldout) == round(0.1 * 1797) and len(data) == 1797 - len(heldout)
    chosen = stratified_choice(labels.tolist(), len(heldout), 1797, seed=0)
    assert torch.equal(heldout.images, everything[chosen])  # the same pixels as the training transform gives
    assert torch.equal(heldout.class_labels, torch.from_numpy(labels[chosen]))
    counts = np.bincount(labels[chosen], minlength=10)
    assert counts.min() >= 17 and counts.max() <= 19  # about 10% of each class's ~180 images
    training_rows = np.setdiff1d(np.arange(1797), chosen)
    assert torch.equal(data.decode_uint8(data.dataset.with_format(None), data.image_column), everything[training_rows])
    clean, kwargs = heldout.model_inputs("cpu")
    assert torch.equal(clean, everything[chosen].float() / 127.5 - 1) and torch.equal(
        kwargs["class_labels"], heldout.class_labels
    )


def test_validation_images_caps_the_held_out_set_with_a_stratified_subset():
    data = load_training_images(ImageDataSettings(dataset_name="digits", resolution=8))
    heldout = split_off_heldout(data, HeldoutSettings(validation_fraction=0.5, validation_images=100, seed=1))
    assert len(heldout) == 100 and len(data) == 1797 - 898
    assert np.bincount(heldout.class_labels.numpy(), minlength=10).min() >= 9


def test_auto_takes_an_image_folders_test_split_and_none_without_one(tmp_path):
    make_image_folder(tmp_path / "split" / "train")
    make_image_folder(tmp_path / "split" / "test", per_class=3)
    assert dataset_splits(train_data_dir=str(tmp_path / "split")) == ["train", "test"]
    data = load_training_images(ImageDataSettings(train_data_dir=str(tmp_path / "split"), resolution=8))
    heldout = split_off_heldout(data, HeldoutSettings())
    assert len(heldout) == 6 and len(data) == 12 and "split 'test'" in heldout.source
    assert heldout.images.shape == (6, 3, 8, 8) and sorted(heldout.class_labels.tolist()) == [0, 0, 0, 1, 1, 1]
    flat = make_image_folder(tmp_path / "flat")
    assert dataset_splits(train_data_dir=str(flat)) == ["train"]
    assert (
        split_off_heldout(load_training_images(ImageDataSettings(train_data_dir=str(flat))), HeldoutSettings()) is None
    )
    assert dataset_splits(dataset_name="digits") == ["train"]
    assert split_off_heldout(load_training_images(ImageDataSettings(dataset_name="digits")), HeldoutSettings()) is None


def write_npz(path, names, count=8, size=8):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (count, size, size), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(count) % len(names), label_names=np.array(names))
    return images


def test_another_source_is_checked_against_the_training_classes(tmp_path):
    write_npz(tmp_path / "train.npz", ["a", "b"])
    test_images = write_npz(tmp_path / "test.npz", ["a", "b"], count=6)
    write_npz(tmp_path / "other.npz", ["b", "a"])
    settings = ImageDataSettings(dataset_name=str(tmp_path / "train.npz"), resolution=8)
    heldout = split_off_heldout(
        load_training_images(settings), HeldoutSettings(validation_dataset_name=str(tmp_path / "test.npz"))
    )
    assert torch.equal(heldout.images[:, 0], torch.from_numpy(test_images))  # 8x8 stays 8x8: the pixels themselves
    with pytest.raises(ValueError, match=r"classes \['b', 'a'\].*\['a', 'b'\].*same order"):
        split_off_heldout(
            load_training_images(settings), HeldoutSettings(validation_dataset_name=str(tmp_path / "other.npz"))
        )
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, images=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="no label column.*conditional"):
        split_off_heldout(load_training_images(settings), HeldoutSettings(validation_dataset_name=str(unlabelled)))
    unconditional = load_training_images(ImageDataSettings(dataset_name=str(tmp_path / "train.npz"), condition="none"))
    assert (
        split_off_heldout(unconditional, HeldoutSettings(validation_dataset_name=str(unlabelled))).class_labels is None
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(validation_fraction=0.1, validation_split="test"), "give one of them"),
        (dict(validation_fraction=0.1, validation_dataset_name="x.npz"), "give one of them"),
        (dict(validation_split="none", validation_fraction=0.2), "turns the held-out loss off"),
        (dict(validation_fraction=1.0), r"validation_fraction must be in \[0, 1\), got 1.0"),
        (dict(validation_images=0), "validation_images must be at least 1, got 0"),
    ],
)
def test_contradicting_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        HeldoutSettings(**settings)


def test_a_fraction_that_leaves_nothing_to_train_on_is_refused(tmp_path):
    write_npz(tmp_path / "few.npz", ["a", "b"], count=3)
    data = load_training_images(ImageDataSettings(dataset_name=str(tmp_path / "few.npz"), resolution=8))
    with pytest.raises(ValueError, match="0.9 of 3 images leaves none to train on"):
        split_off_heldout(data, HeldoutSettings(validation_fraction=0.9))


def test_a_missing_split_is_refused_naming_it(tmp_path):
    flat = make_image_folder(tmp_path / "flat")
    Image.new("L", (4, 4)).save(tmp_path / "x.png")
    data = load_training_images(ImageDataSettings(train_data_dir=str(flat), resolution=8))
    with pytest.raises(ValueError, match="test"):
        split_off_heldout(data, HeldoutSettings(validation_split="test"))
