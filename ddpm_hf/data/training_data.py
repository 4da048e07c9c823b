"""The training images of an image DDPM run: the dataset with its columns, classes and transform, optionally preloaded
onto the training device, and each batch turned into the model's inputs with the condition dropped for
classifier-free guidance."""

import dataclasses
import logging
import os
import time

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from .iclevr import read_iclevr_conditions
from .images import checked_labels, find_image_column, find_label_column, is_multi_label, load_image_dataset
from .preload import IndexDataset, preload_images, uint8_to_model_input
from .tensors import multi_hot
from .transforms import RESIZE_MODES, dataset_mode, decode_image, preprocess_image, resize_and_crop

logger = logging.getLogger(__name__)

CONDITIONS = ("auto", "none", "class", "multi_label")
# The colour mode is read from the first images: greyscale only if these all are.
MODE_SAMPLE_SIZE = 64


@dataclasses.dataclass(frozen=True)
class ImageDataSettings:
    """
    What to train on and how each image becomes a tensor; the fields are the data flags of train_image.py, by the same
    names (`from_flags` reads them from parsed flags).

    Args:
        dataset_name, train_data_dir, dataset_config_name, cache_dir: The source, as `load_image_dataset` takes it.
        image_column, label_column (`str`, *optional*): The columns; found by feature type or usual name if unset.
        condition (`str`, defaults to `"auto"`): `"class"` (one label per image), `"multi_label"` (a list of labels
            per image), `"none"`, or `"auto"` (whichever the label column holds; none without one).
        resolution (`int`, defaults to 32): Side of the square training images.
        resize_mode (`str`, defaults to `"crop"`): `"crop"` or `"stretch"`, as in `preprocess_image`.
        center_crop (`bool`, defaults to `True`): Centre crop, else a random crop per epoch.
        random_flip (`bool`, defaults to `False`): Flip images left-right with probability 1/2.
        skip_bad_images (`bool`, defaults to `False`): Decode every image first and drop the unreadable ones.
        cond_drop_prob (`float`, defaults to 0.1): Probability of training a condition as the null condition.
        max_train_samples (`int`, *optional*): Train on the first this many images of the source only (diffusers'
            flag, for quicker runs).
    """

    dataset_name: str | None = None
    train_data_dir: str | None = None
    dataset_config_name: str | None = None
    cache_dir: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    condition: str = "auto"
    resolution: int = 32
    resize_mode: str = "crop"
    center_crop: bool = True
    random_flip: bool = False
    skip_bad_images: bool = False
    cond_drop_prob: float = 0.1
    max_train_samples: int | None = None

    def __post_init__(self):
        if self.condition not in CONDITIONS:
            raise ValueError(f"Unknown condition {self.condition!r}; choose one of {list(CONDITIONS)}.")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"Unknown resize_mode {self.resize_mode!r}; choose one of {list(RESIZE_MODES)}.")
        if not 0 <= self.cond_drop_prob < 1:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob!r}.")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"max_train_samples must be at least 1, got {self.max_train_samples!r}.")

    @classmethod
    def from_flags(cls, flags) -> "ImageDataSettings":
        """The settings from parsed flags (an `argparse.Namespace` holding at least these names)."""
        return cls(**{field.name: getattr(flags, field.name) for field in dataclasses.fields(cls)})


@dataclasses.dataclass
class ImageData:
    """
    The images a run trains on (`load_training_images` makes it).

    Attributes:
        settings (`ImageDataSettings`): What it was loaded with.
        dataset (`datasets.Dataset`): Rows `{"pixel_values", "class_labels"}` through the training transform.
        image_column (`str`), label_column (`str` or None): The columns; no label column for an unconditional run.
        class_names (`list[str]` or None): The K class (or label) names in id order; None for an unconditional run.
        multi_label (`bool`): Whether each image has a list of labels (a multi-hot condition).
        mode (`str`): `"L"` (1 channel) or `"RGB"`.
        images (`torch.Tensor` or None): With `preload`, every image as uint8 (N, C, H, W) on the training device.
        preload_seconds (`float` or None): How long `preload` took.
    """

    settings: ImageDataSettings
    dataset: object
    image_column: str
    label_column: str | None
    class_names: list[str] | None
    multi_label: bool
    mode: str
    images: torch.Tensor | None = None
    preload_seconds: float | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def num_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def preload(self, device, num_workers: int = 0) -> None:
        """Decode, resize and crop every image once into `images` (uint8, on `device`); flips and scaling then happen
        per batch on the device. Needs `center_crop` (a preloaded image has one crop). Unreadable images fail here."""
        if not self.settings.center_crop:
            raise ValueError("Preloaded images keep one crop each; they need center_crop (no random crops).")
        start = time.time()
        images = self.decode_uint8(self.dataset.with_format(None), self.image_column, num_workers=num_workers)
        self.images = images.to(device)
        self.preload_seconds = time.time() - start

    def decode_uint8(self, dataset, image_column: str, num_workers: int = 0) -> torch.Tensor:
        """The images of `dataset` (undecoded rows, e.g. held-out ones) decoded, resized and centre-cropped as the
        training images are, into one uint8 tensor (N, C, H, W) on the CPU."""
        settings = self.settings

        def to_uint8_array(row):
            image = decode_image(row[image_column], f"image in column {image_column!r}")
            return np.asarray(resize_and_crop(image, settings.resolution, self.mode, resize_mode=settings.resize_mode))

        return preload_images(dataset, to_uint8_array, num_workers=num_workers)

    def rows(self) -> torch.utils.data.Dataset:
        """What a DataLoader draws from: the dataset, or after `preload` an `IndexDataset` of row numbers and labels
        (shuffled and sharded as the images would be)."""
        if self.images is None:
            return self.dataset
        labels = None
        if self.class_names is not None:
            labels = self.dataset.with_format(None)[self.label_column]
            if self.multi_label:
                labels = multi_hot(labels, len(self.class_names))
        return IndexDataset(len(self.dataset), labels)

    @staticmethod
    def collate(examples: list[dict]) -> dict:
        """A batch of `rows()`: `pixel_values` (or `index` after `preload`) and `class_labels`, stacked."""
        batch = {}
        if "pixel_values" in examples[0]:
            batch["pixel_values"] = torch.stack([example["pixel_values"] for example in examples])
        if "index" in examples[0]:
            batch["index"] = torch.tensor([example["index"] for example in examples], dtype=torch.long)
        if "class_labels" in examples[0]:
            labels = [example["class_labels"] for example in examples]
            is_multi_hot = isinstance(labels[0], torch.Tensor)
            batch["class_labels"] = torch.stack(labels) if is_multi_hot else torch.tensor(labels, dtype=torch.long)
        return batch

    def training_inputs(
        self, batch: dict, generator: torch.Generator, channels_last: bool = False
    ) -> tuple[torch.Tensor, dict]:
        """
        The batch's clean images in [-1, 1] and the model's keyword inputs: its conditions, each dropped to the null
        condition (class id K, or the all-zero multi-hot row) with probability `cond_drop_prob`, so that one model
        learns the conditional and the unconditional prediction (classifier-free guidance). Flips of preloaded
        images and the drops are drawn from `generator`, on the batch's device.
        """
        if self.images is None:
            clean_images = batch["pixel_values"]
        else:
            clean_images = uint8_to_model_input(self.images[batch["index"]], self.settings.random_flip, generator)
        if channels_last:
            clean_images = clean_images.contiguous(memory_format=torch.channels_last)
        if self.class_names is None:
            return clean_images, {}
        draws = torch.rand(clean_images.shape[0], generator=generator, device=clean_images.device)
        drop = draws < self.settings.cond_drop_prob
        if self.multi_label:
            return clean_images, {"class_labels": batch["class_labels"] * ~drop[:, None]}
        return clean_images, {"class_labels": torch.where(drop, len(self.class_names), batch["class_labels"])}

    def sample_conditions(self, rows: int, conditions_file: str | None = None) -> list | None:
        """
        What each of `rows` rows of a sample grid asks for: class ids 0..rows-1, or for multi-label data the first
        conditions of `conditions_file` (a test.json-style list of label-name lists; by default test.json beside the
        data, when there is one), else the label sets of the first training images. None when unconditional.
        """
        if self.class_names is None:
            return None
        if not self.multi_label:
            return list(range(rows))
        folder = self.settings.train_data_dir or self.settings.dataset_name
        if conditions_file is None and os.path.isfile(os.path.join(folder, "test.json")):
            conditions_file = os.path.join(folder, "test.json")
        if conditions_file is not None:
            label_ids = read_iclevr_conditions(conditions_file, self.class_names)
        else:
            label_ids = self.dataset.with_format(None).select(range(min(rows, len(self))))[self.label_column]
        conditions = [[self.class_names[index] for index in ids] for ids in label_ids]
        return [conditions[row % len(conditions)] for row in range(rows)]


def load_training_images(settings: ImageDataSettings) -> ImageData:
    """
    Load the training images: the dataset (`load_image_dataset`), its columns and classes, the conditioning the data
    and `settings.condition` give, every label checked (`checked_labels`), the colour mode, and the training transform.
    Reads, never writes; bad data (a missing or wrong label column, labels that name no class, an unreadable image
    among the first ones) is refused here, naming it.
    """
    dataset = load_image_dataset(
        settings.dataset_name, settings.dataset_config_name, settings.train_data_dir, cache_dir=settings.cache_dir
    )
    if settings.max_train_samples is not None and settings.max_train_samples < len(dataset):
        dataset = dataset.select(range(settings.max_train_samples))
    image_column = find_image_column(dataset, settings.image_column)
    label_column = find_label_column(dataset, settings.label_column)
    condition = settings.condition
    if condition in ("class", "multi_label") and label_column is None:
        raise ValueError(
            f"--condition {condition} needs a label column, and none was found; columns: {dataset.column_names}. "
            "Name it with --label_column."
        )
    lone_class = single_class_folder(settings.train_data_dir)
    if label_column is None and condition == "auto" and lone_class is not None:
        logger.warning(
            f"{settings.train_data_dir} holds one class folder ({lone_class!r}), so there are no labels to learn: "
            "training an unconditional model. Add a folder per class for a class-conditional one (--condition none "
            "hides this)."
        )
    multi_label_data = label_column is not None and is_multi_label(dataset, label_column)
    if condition == "class" and multi_label_data:
        raise ValueError(
            f"Label column {label_column!r} holds a list of labels per image (multi-label data such as i-CLEVR), and "
            "--condition class takes one label per image. Use --condition multi_label (or auto)."
        )
    if condition == "multi_label" and not multi_label_data:
        raise ValueError(
            f"--condition multi_label needs a label column that holds a list of labels per image (a Sequence of "
            f"ClassLabel, as in i-CLEVR folders); {label_column!r} holds one label per image. Use --condition class."
        )
    if condition == "none":
        label_column = None
    class_names = None if label_column is None else checked_labels(dataset, label_column)[1]
    if isinstance(dataset.features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    if settings.skip_bad_images:
        dataset = drop_unreadable_images(dataset, image_column)
    first_images = dataset.select(range(min(MODE_SAMPLE_SIZE, len(dataset))))[image_column]
    mode = dataset_mode(
        decode_image(value, f"image {index} of column {image_column!r}") for index, value in enumerate(first_images)
    )
    multi_label = label_column is not None and multi_label_data

    def transform(batch):
        pixel_values = [
            preprocess_image(
                decode_image(value, f"image in column {image_column!r}"),
                settings.resolution,
                mode,
                settings.center_crop,
                settings.random_flip,
                resize_mode=settings.resize_mode,
            )
            for value in batch[image_column]
        ]
        output = {"pixel_values": pixel_values}
        if multi_label:
            output["class_labels"] = list(multi_hot(batch[label_column], len(class_names)))
        elif label_column is not None:
            output["class_labels"] = batch[label_column]
        return output

    dataset.set_transform(transform)
    return ImageData(settings, dataset, image_column, label_column, class_names, multi_label, mode)


def single_class_folder(folder: str | None) -> str | None:
    """The one sub-folder of an image folder that has exactly one (datasets then gives it no label column)."""
    if folder is None or not os.path.isdir(folder):
        return None
    subfolders = [name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))]
    return subfolders[0] if len(subfolders) == 1 else None


def drop_unreadable_images(dataset, image_column: str):
    """Decode every image once and drop those that fail, saying how many and which (`--skip_bad_images`)."""

    def readable(value):
        try:
            decode_image(value)
            return True
        except ValueError:
            return False

    keep = [readable(value) for value in tqdm(dataset[image_column], desc="checking images", leave=False)]
    bad = [index for index, ok in enumerate(keep) if not ok]
    if bad:
        names = [(dataset[index][image_column] or {}).get("path") or f"#{index}" for index in bad[:10]]
        logger.warning(f"--skip_bad_images: skipped {len(bad)} unreadable image(s) of {len(dataset)}, e.g. {names}")
        dataset = dataset.select([index for index, ok in enumerate(keep) if ok])
    if len(dataset) == 0:
        raise ValueError("--skip_bad_images: no readable image is left in the dataset.")
    return dataset
