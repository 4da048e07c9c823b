"""Bad and awkward image data: unreadable and truncated files, mixed modes, odd sizes, empty folders."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf.data import (
    channel_mode,
    class_names_of,
    dataset_mode,
    decode_image,
    load_image_dataset,
    preprocess_image,
)
from ddpm_hf.data.transforms import to_mode


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noisy(mode, size=(12, 10), seed=0):
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def test_truncated_file_is_named(tmp_path):
    data = png_bytes(noisy("RGB", (64, 64)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"Cannot read image .*cut\.png: .*truncated"):
        decode_image({"path": str(path), "bytes": None})


def test_garbage_bytes_are_refused_without_a_path():
    with pytest.raises(ValueError, match=r"Cannot read image \(in-memory bytes\)"):
        decode_image({"path": None, "bytes": b"\x89PNG not really"})


@pytest.mark.parametrize(
    "make, expected_mode, expected_pixel",
    [
        (lambda: Image.new("L", (4, 4), 200), "L", [200]),
        (lambda: Image.new("RGB", (4, 4), (10, 20, 30)), "RGB", [10, 20, 30]),
        (lambda: Image.new("RGBA", (4, 4), (10, 20, 30, 0)), "RGB", [255, 255, 255]),  # transparent: on white
        (lambda: Image.new("RGBA", (4, 4), (10, 20, 30, 255)), "RGB", [10, 20, 30]),
        (lambda: Image.new("LA", (4, 4), (100, 255)), "L", [100]),
        (lambda: Image.new("RGB", (4, 4), (0, 0, 255)).convert("P"), "RGB", [0, 0, 255]),
        (lambda: Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), "L", [255]),  # 16-bit: rescaled
        (lambda: Image.new("1", (4, 4), 1), "L", [255]),
    ],
)
def test_every_mode_converts_to_one_or_three_channels(make, expected_mode, expected_pixel):
    image = make()
    converted = to_mode(image, channel_mode(image))
    assert converted.mode == expected_mode
    assert np.atleast_1d(np.asarray(converted)[0, 0]).tolist() == expected_pixel


def test_a_mixed_dataset_trains_in_colour():
    assert dataset_mode([noisy("L"), noisy("L")]) == "L"
    assert dataset_mode([noisy("L"), noisy("RGBA"), noisy("L")]) == "RGB"
    grey_as_rgb = preprocess_image(Image.new("L", (8, 8), 255), 8, "RGB")
    assert grey_as_rgb.shape == (3, 8, 8) and torch.all(grey_as_rgb == 1)


@pytest.mark.parametrize("size", [(8, 8), (3, 5), (40, 9), (100, 300)])
def test_any_size_becomes_the_training_resolution(size):
    tensor = preprocess_image(noisy("RGB", size), 8, "RGB")
    assert tensor.shape == (3, 8, 8) and tensor.dtype == torch.float32
    assert -1 <= tensor.min() and tensor.max() <= 1


def test_an_empty_folder_is_refused_by_name(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"empty holds no images"):
        load_image_dataset(train_data_dir=str(tmp_path / "empty"))


def test_an_empty_image_file_is_refused(tmp_path):
    np.savez(tmp_path / "none.npz", images=np.zeros((0, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"none\.npz' \(split 'train'\) holds no examples"):
        load_image_dataset(str(tmp_path / "none.npz"))


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0.2, 1.9, 1.0, 0.0], r"2 are not, e.g. \[0.2, 1.9\]"),
        ([0.0, float("nan"), 1.0, 1.0], r"1 are not, e.g. \[nan\]"),
        ([0, -1, 1, 1], r"1 are not, e.g. \[-1\]"),
        ([[0], [1], [1], [0]], "one class id per image"),
    ],
)
def test_npz_labels_that_are_not_class_ids_are_refused(tmp_path, labels, message):
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", images=images, labels=np.array(labels))
    with pytest.raises(ValueError, match=message):
        load_image_dataset(str(tmp_path / "data.npz"))


def test_npz_labels_stored_as_whole_floats_are_class_ids(tmp_path):
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", images=images, labels=np.array([0.0, 2.0, 1.0, 2.0]))
    assert load_image_dataset(str(tmp_path / "data.npz"))["label"] == [0, 2, 1, 2]


@pytest.mark.parametrize(
    "label_names, message",
    [
        (["", "a", "b"], r"'label_names': the name of class 0 is ''; each class needs a name that is not empty"),
        (["a", "  ", "b"], r"'label_names': the name of class 1 is '  '"),
        (["a", "b", "a"], r"'label_names': the name 'a' is given to classes 0 and 2; each class needs its own name"),
        (
            ["a", "b"],
            r"'labels' holds class id\(s\) \[2\] and 'label_names' names 2 classes \(ids 0\.\.1\); give one name per "
            r"class",
        ),
    ],
)
def test_npz_class_names_that_cannot_be_picked_are_refused_by_name(tmp_path, label_names, message):
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", images=images, labels=np.array([0, 1, 2, 2]), label_names=np.array(label_names))
    with pytest.raises(ValueError, match=message):
        load_image_dataset(str(tmp_path / "data.npz"))


def test_npz_names_may_outnumber_the_labels_used(tmp_path):
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    names = np.array(["a", "b", "c"])
    np.savez(tmp_path / "data.npz", images=images, labels=np.array([0, 1, 1, 0]), label_names=names)
    dataset = load_image_dataset(str(tmp_path / "data.npz"))
    assert class_names_of(dataset, "label") == ["a", "b", "c"]


def test_a_class_folder_named_only_with_spaces_is_refused_by_name(tmp_path):
    for name in ("cat", " "):
        (tmp_path / name).mkdir()
        for index in range(2):
            noisy("RGB", seed=index).save(tmp_path / name / f"{index}.png")
    dataset = load_image_dataset(train_data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"label column 'label'.*the name of class 0 is ' '"):
        class_names_of(dataset, "label")
