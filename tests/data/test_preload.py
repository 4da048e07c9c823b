"""preload_images / uint8_to_model_input / IndexDataset against the per-image path of preprocess_image."""

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf.data import (
    IndexDataset,
    decode_image,
    preload_images,
    preprocess_image,
    resize_and_crop,
    uint8_to_model_input,
)


def make_images(count=7, mode="RGB", size=(13, 10)):
    rng = np.random.default_rng(0)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode) for _ in range(count)]


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_preloaded_images_scale_to_exactly_what_preprocess_image_gives(mode, num_workers):
    images = make_images(mode=mode)
    dataset = datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image(decode=False))

    def to_uint8_array(row):
        return np.asarray(resize_and_crop(decode_image(row["image"]), 8, mode))

    cached = preload_images(dataset, to_uint8_array, num_workers=num_workers, batch_size=3)
    assert cached.dtype == torch.uint8 and cached.shape == (7, 1 if mode == "L" else 3, 8, 8)
    expected = torch.stack([preprocess_image(image, 8, mode) for image in images])
    assert torch.equal(uint8_to_model_input(cached), expected)  # bit for bit


def test_flips_follow_the_generator_and_flip_only_the_width():
    images = torch.arange(4 * 3 * 2 * 5, dtype=torch.uint8).reshape(4, 3, 2, 5)
    flipped = uint8_to_model_input(images, random_flip=True, generator=torch.Generator().manual_seed(1))
    draws = torch.rand(4, generator=torch.Generator().manual_seed(1)) < 0.5
    plain = images.double() / 127.5 - 1
    for index in range(4):
        expected = plain[index].flip(-1) if draws[index] else plain[index]
        torch.testing.assert_close(flipped[index].double(), expected, rtol=0, atol=1e-6)
    assert 0 < int(draws.sum()) < 4  # this seed exercises both branches


def test_an_unreadable_image_is_named_by_the_preload():
    dataset = datasets.Dataset.from_dict({"image": [{"bytes": b"not an image", "path": "broken.png"}]})
    with pytest.raises(ValueError, match="broken.png"):
        preload_images(dataset, lambda row: np.asarray(decode_image(row["image"])))


def test_non_uint8_arrays_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        preload_images([0], lambda row: np.zeros((4, 4), dtype=np.float32))


def test_index_dataset_rows_and_label_count_check():
    rows = IndexDataset(3, labels=[2, 0, 1])
    assert len(rows) == 3 and rows[1] == {"index": 1, "class_labels": 0}
    assert IndexDataset(2)[1] == {"index": 1}
    with pytest.raises(ValueError, match="2 labels for 3 rows"):
        IndexDataset(3, labels=[0, 1])
