"""The training-data object of image runs: sources, columns, conditioning, label checks, the transform, the
preload onto the device, condition dropping and the rows of the sample grids."""

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf.data import (
    ICLEVR_OBJECTS,
    ImageDataSettings,
    load_image_tensors,
    load_training_images,
    make_synthetic_iclevr,
)


def make_image_folder(root, classes=("cat", "dog"), per_class=6, mode="RGB", size=(10, 12)):
    rng = np.random.default_rng(0)
    for class_index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 255, shape, dtype=np.uint8) // (class_index + 1)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{index}.png")
    return root


def load(**settings):
    return load_training_images(ImageDataSettings(**{"resolution": 8, **settings}))


def test_an_npz_source_keeps_its_label_names_and_pixels(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 0, 1, 0, 1]), label_names=np.array(["x", "y"]))
    data = load(dataset_name=str(tmp_path / "d.npz"))
    assert (data.mode, data.channels, data.class_names, data.num_classes, len(data)) == ("L", 1, ["x", "y"], 2, 6)
    example = data.dataset[3]
    assert example["pixel_values"].shape == (1, 8, 8) and example["class_labels"] == 1
    expected = torch.from_numpy(images[3].astype(np.float32) / 127.5 - 1)
    torch.testing.assert_close(example["pixel_values"][0], expected)


def test_settings_are_read_from_flags_by_name_and_checked():
    class Flags:
        pass

    flags = Flags()
    for name, value in vars(ImageDataSettings(dataset_name="digits")).items():
        setattr(flags, name, value)
    flags.learning_rate = 1e-4  # not a data flag: left out
    assert ImageDataSettings.from_flags(flags) == ImageDataSettings(dataset_name="digits")
    for bad, message in (
        ({"condition": "labels"}, r"Unknown condition 'labels'; choose one of \['auto', 'none', 'class'"),
        ({"resize_mode": "pad"}, r"Unknown resize_mode 'pad'; choose one of \['crop', 'stretch'\]"),
        ({"cond_drop_prob": 1.0}, r"cond_drop_prob must be in \[0, 1\), got 1.0"),
    ):
        with pytest.raises(ValueError, match=message):
            ImageDataSettings(dataset_name="digits", **bad)


def test_unreadable_images_are_skipped_with_a_count_when_asked(tmp_path, caplog):
    data_dir = make_image_folder(tmp_path / "data")
    (data_dir / "cat" / "3.png").write_bytes(b"not an image")
    truncated = (data_dir / "dog" / "4.png").read_bytes()
    (data_dir / "dog" / "4.png").write_bytes(truncated[: len(truncated) // 2])
    data = load(train_data_dir=str(data_dir), skip_bad_images=True)
    assert len(data) == 10 and data.class_names == ["cat", "dog"]
    assert "skipped 2 unreadable image(s) of 12" in caplog.text and "3.png" in caplog.text and "4.png" in caplog.text


def test_mixed_modes_and_sizes_train_in_colour(tmp_path):
    data_dir = make_image_folder(tmp_path / "data", mode="L", size=(9, 14))
    Image.new("RGBA", (20, 11), (255, 0, 0, 128)).save(data_dir / "cat" / "rgba.png")
    Image.new("RGB", (8, 8), (0, 0, 255)).convert("P").save(data_dir / "dog" / "palette.png")
    data = load(train_data_dir=str(data_dir))
    assert data.mode == "RGB" and data.channels == 3
    assert {tuple(data.dataset[index]["pixel_values"].shape) for index in range(len(data))} == {(3, 8, 8)}


def test_a_folder_of_one_class_says_it_trains_unconditionally(tmp_path, caplog):
    data = load(train_data_dir=str(make_image_folder(tmp_path / "data", classes=("only",))))
    assert data.class_names is None and data.label_column is None
    assert "one class folder ('only')" in caplog.text


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"dataset_name": "digits", "label_column": "digit"}, r"'digit'.*columns: \['image', 'label'\]"),
        ({"dataset_name": "digits", "condition": "multi_label"}, "one label per image"),
    ],
)
def test_columns_and_conditions_the_data_cannot_give_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        load(**settings)


def test_a_missing_label_column_lists_the_columns(tmp_path):
    make_image_folder(tmp_path / "data", classes=("only",))
    shutil.move(str(tmp_path / "data" / "only"), str(tmp_path / "flat"))
    with pytest.raises(ValueError, match=r"--condition class needs a label column.*columns: \['image'\]"):
        load(train_data_dir=str(tmp_path / "flat"), condition="class")


def test_labels_that_name_no_class_are_refused_for_training_and_for_tensors(tmp_path):
    images = [Image.fromarray(np.full((8, 8), value, dtype=np.uint8)) for value in range(4)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    dataset = datasets.Dataset.from_dict({"image": images, "label": [0, 1, -1, 1]}, features=features)
    dataset.save_to_disk(str(tmp_path / "missing_label"))  # datasets writes -1 for a missing ClassLabel
    for refuse in (
        lambda: load(dataset_name=str(tmp_path / "missing_label")),
        lambda: load_image_tensors(str(tmp_path / "missing_label"), resolution=8),
    ):
        with pytest.raises(ValueError, match=r"Label column 'label' holds 1 values outside 0\.\.1, e\.g\. \[-1\]"):
            refuse()
    plain = datasets.Dataset.from_dict({"image": images, "label": [0, 1, -1, 2]})
    plain.save_to_disk(str(tmp_path / "negative"))
    with pytest.raises(ValueError, match="class ids 0..K-1"):
        load(dataset_name=str(tmp_path / "negative"))


def test_multi_label_data_gives_multi_hot_rows_and_can_be_trained_unconditionally(tmp_path):
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=8, resolution=16, num_test=3)
    with pytest.raises(ValueError, match="--condition multi_label"):
        load(train_data_dir=folder, condition="class")
    unconditional = load(train_data_dir=folder, condition="none")
    assert (unconditional.mode, unconditional.class_names, unconditional.multi_label) == ("RGB", None, False)
    assert "class_labels" not in unconditional.dataset[0]

    data = load(train_data_dir=folder)
    assert data.multi_label and data.class_names == ICLEVR_OBJECTS and len(data) == 8
    train_names = json.loads((Path(folder) / "train.json").read_text())
    first = sorted(train_names)[0]  # the dataset lists train.json's files in sorted order
    expected = torch.zeros(24)
    expected[[ICLEVR_OBJECTS.index(name) for name in train_names[first]]] = 1
    torch.testing.assert_close(data.dataset[0]["class_labels"], expected)
    batch = data.collate([data.dataset[0], data.dataset[1]])
    assert batch["class_labels"].shape == (2, 24) and batch["pixel_values"].shape == (2, 3, 8, 8)


def test_conditions_are_dropped_to_the_null_condition_from_the_generator(tmp_path):
    data = load(dataset_name="digits", cond_drop_prob=0.5)
    batch = data.collate([data.dataset[index] for index in range(64)])
    images, kwargs = data.training_inputs(batch, torch.Generator().manual_seed(3))
    drop = torch.rand(64, generator=torch.Generator().manual_seed(3)) < 0.5
    assert torch.equal(images, batch["pixel_values"])
    assert torch.equal(kwargs["class_labels"], torch.where(drop, 10, batch["class_labels"]))  # id K = 10: null
    assert 0 < int(drop.sum()) < 64
    kept = load(dataset_name="digits", cond_drop_prob=0.0).training_inputs(batch, torch.Generator())[1]
    assert torch.equal(kept["class_labels"], batch["class_labels"])
    unconditional = load(dataset_name="digits", condition="none")
    assert unconditional.training_inputs({"pixel_values": images}, torch.Generator()) == (images, {})

    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=8, resolution=16, num_test=3)
    multi = load(train_data_dir=folder, cond_drop_prob=0.5)
    batch = multi.collate([multi.dataset[index] for index in range(8)])
    _, kwargs = multi.training_inputs(batch, torch.Generator().manual_seed(0), channels_last=True)
    drop = torch.rand(8, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(kwargs["class_labels"][drop], torch.zeros(int(drop.sum()), 24))  # all-zero: null
    assert torch.equal(kwargs["class_labels"][~drop], batch["class_labels"][~drop])


@pytest.mark.parametrize("source", ["digits", "iclevr"])
def test_preloaded_rows_give_the_same_training_inputs(tmp_path, source):
    if source == "digits":
        settings = {"dataset_name": "digits"}
    else:
        folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=6, resolution=16, num_test=2)
        settings = {"train_data_dir": folder, "resize_mode": "stretch"}
    plain, preloaded = load(**settings), load(**settings)
    preloaded.preload("cpu", num_workers=0)
    assert preloaded.images.dtype == torch.uint8 and preloaded.images.shape[0] == len(plain)
    assert preloaded.preload_seconds >= 0 and plain.images is None
    rows = [3, 0, 5]
    plain_batch = plain.collate([plain.rows()[index] for index in rows])
    preloaded_batch = preloaded.collate([preloaded.rows()[index] for index in rows])
    assert preloaded_batch["index"].tolist() == rows
    plain_inputs = plain.training_inputs(plain_batch, torch.Generator().manual_seed(1))
    preloaded_inputs = preloaded.training_inputs(preloaded_batch, torch.Generator().manual_seed(1))
    assert torch.equal(plain_inputs[0], preloaded_inputs[0])  # bit for bit
    assert torch.equal(plain_inputs[1]["class_labels"], preloaded_inputs[1]["class_labels"])
    random_crops = load(**settings, center_crop=False)
    with pytest.raises(ValueError, match="center_crop"):
        random_crops.preload("cpu")


def test_sample_grid_rows_ask_for_classes_or_label_sets(tmp_path):
    assert load(dataset_name="digits").sample_conditions(10) == list(range(10))
    assert load(dataset_name="digits", condition="none").sample_conditions(5) is None
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=4, resolution=16, num_test=3)
    data = load(train_data_dir=folder)
    test_conditions = json.loads((Path(folder) / "test.json").read_text())
    assert data.sample_conditions(5) == [test_conditions[row % 3] for row in range(5)]  # test.json beside the data
    conditions_file = tmp_path / "mine.json"
    conditions_file.write_text(json.dumps([["red cube"], ["blue sphere", "gray cylinder"]]))
    mine = [["red cube"], ["blue sphere", "gray cylinder"]]
    assert data.sample_conditions(3, str(conditions_file)) == [mine[0], mine[1], mine[0]]
    (Path(folder) / "test.json").unlink()
    train_names = json.loads((Path(folder) / "train.json").read_text())
    first_labels = [train_names[name] for name in sorted(train_names)]
    assert [sorted(condition) for condition in data.sample_conditions(2)] == [sorted(c) for c in first_labels[:2]]


def test_max_train_samples_keeps_the_first_images_of_the_source():
    full = load_training_images(ImageDataSettings(dataset_name="digits", resolution=8))
    first = load_training_images(ImageDataSettings(dataset_name="digits", resolution=8, max_train_samples=50))
    assert len(first) == 50 and torch.equal(first.dataset[49]["pixel_values"], full.dataset[49]["pixel_values"])
    assert first.class_names == full.class_names
    assert len(load_training_images(ImageDataSettings(dataset_name="digits", max_train_samples=10_000))) == 1797
    with pytest.raises(ValueError, match="max_train_samples must be at least 1, got 0"):
        ImageDataSettings(dataset_name="digits", max_train_samples=0)
