"""The held-out images of an image training run: the dataset's own test split, another source, or a seeded, stratified
fraction of the training images, decoded once at the training size, for the held-out noise loss."""

import dataclasses

import datasets
import numpy as np
import torch

from .images import checked_labels, dataset_splits, find_image_column, find_label_column, load_image_dataset
from .preload import uint8_to_model_input
from .tensors import multi_hot

# What `validation_split="auto"` takes, in this order, when the source has it.
HELDOUT_SPLITS = ("test", "validation")


@dataclasses.dataclass(frozen=True)
class HeldoutSettings:
    """
    Where the held-out images come from; the fields are train_image.py's flags of the same names.

    Args:
        validation_split (`str`, defaults to `"auto"`): A split of the training source (`"test"`, `"validation"`),
            `"none"`, or `"auto"`: the first of `HELDOUT_SPLITS` the source has, else no held-out set.
        validation_dataset_name (`str`, *optional*): Another source, in the forms `dataset_name` takes (e.g. a
            `test.npz` beside `train.npz`); its split `"train"` unless `validation_split` names one.
        validation_fraction (`float`, defaults to 0): Hold out this fraction of the training images instead (a seeded
            draw stratified by class; never trained on).
        validation_images (`int`, defaults to 1000): Score at most this many held-out images (a seeded, stratified
            subset).
        seed (`int`, defaults to 0): Seed of the fraction and of the subset.
    """

    validation_split: str = "auto"
    validation_dataset_name: str | None = None
    validation_fraction: float = 0.0
    validation_images: int = 1000
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}.")
        if self.validation_images < 1:
            raise ValueError(f"validation_images must be at least 1, got {self.validation_images!r}.")
        named_split = self.validation_split not in ("auto", "none")
        if self.validation_fraction > 0 and (named_split or self.validation_dataset_name is not None):
            raise ValueError(
                f"validation_fraction {self.validation_fraction} holds out training images, and validation_split "
                f"{self.validation_split!r} / validation_dataset_name {self.validation_dataset_name!r} name another "
                "held-out set; give one of them."
            )
        if self.validation_split == "none" and (self.validation_fraction > 0 or self.validation_dataset_name):
            raise ValueError(
                "validation_split 'none' turns the held-out loss off; drop validation_fraction and "
                "validation_dataset_name, or the 'none'."
            )

    @classmethod
    def from_flags(cls, flags) -> "HeldoutSettings":
        """The settings from parsed flags (an `argparse.Namespace` holding at least these names)."""
        return cls(**{field.name: getattr(flags, field.name) for field in dataclasses.fields(cls)})


@dataclasses.dataclass
class HeldoutImages:
    """
    Held-out images at the training size and their conditions.

    Attributes:
        images (`torch.Tensor`): uint8 (N, C, H, W) on the CPU.
        class_labels (`torch.Tensor` or None): Class ids (N,), or multi-hot rows (N, K); None for an unconditional run.
        source (`str`): Where they come from, in words (for metrics.json and the console).
    """

    images: torch.Tensor
    class_labels: torch.Tensor | None
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def model_inputs(self, device) -> tuple[torch.Tensor, dict]:
        """The clean images in [-1, 1] (float32, as the training batches are made) and the model's keyword inputs
        (the conditions, never dropped), on `device`."""
        clean_images = uint8_to_model_input(self.images.to(device))
        if self.class_labels is None:
            return clean_images, {}
        return clean_images, {"class_labels": self.class_labels.to(device)}


def stratified_choice(labels: list | None, count: int, size: int, seed: int) -> np.ndarray:
    """
    `count` of the row numbers 0..size-1, drawn from a `numpy` generator seeded with `seed`, each class in proportion
    to its rows (largest remainders get the rounding); a plain seeded draw without labels. Sorted.

    Args:
        labels (`list`, *optional*): One hashable label per row (e.g. a class id); None: no strata.
        count (`int`): How many rows, 0..size.
        size (`int`): The number of rows.
        seed (`int`): Seed of the draw.
    """
    if not 0 <= count <= size:
        raise ValueError(f"Cannot choose {count} of {size} rows.")
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.permutation(size)[:count])
    strata: dict = {}
    for row, label in enumerate(labels):
        strata.setdefault(label, []).append(row)
    groups = [np.asarray(rows) for _, rows in sorted(strata.items(), key=lambda item: str(item[0]))]
    shares = np.array([len(rows) * count / size for rows in groups])
    taken = np.floor(shares).astype(int)
    for index in np.argsort(-(shares - taken), kind="stable")[: count - taken.sum()]:
        taken[index] += 1
    chosen = [rng.permutation(rows)[:take] for rows, take in zip(groups, taken)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)


def _strata(dataset, label_column: str | None, multi_label: bool) -> list | None:
    if label_column is None:
        return None
    labels = dataset.with_format(None)[label_column]
    return [tuple(sorted(value)) for value in labels] if multi_label else labels


def split_off_heldout(data, settings: HeldoutSettings) -> HeldoutImages | None:
    """
    The held-out images of a run on `data` (an `ImageData`), as `settings` asks, or None (no held-out set). With a
    `validation_fraction`, those images leave `data.dataset` (call before `data.preload` and before anything is drawn
    from the data). A held-out source's class names must be the training data's, in the same order; refused by name
    otherwise. Reads, never writes.
    """
    if settings.validation_split == "none":
        return None
    train = data.settings
    if settings.validation_fraction > 0:
        count = max(1, round(settings.validation_fraction * len(data)))
        if count >= len(data):
            raise ValueError(
                f"validation_fraction {settings.validation_fraction} of {len(data)} images leaves none to train on."
            )
        strata = _strata(data.dataset, data.label_column, data.multi_label)
        heldout_rows = stratified_choice(strata, count, len(data), settings.seed)
        kept = np.setdiff1d(np.arange(len(data)), heldout_rows)
        heldout = data.dataset.select(heldout_rows.tolist())
        data.dataset = data.dataset.select(kept.tolist())
        source = f"{settings.validation_fraction:g} of the training images (stratified by class, seed {settings.seed})"
        return _decoded(data, heldout, data.image_column, data.label_column, source, settings)
    split = settings.validation_split
    if settings.validation_dataset_name is None:
        if split == "auto":
            offered = dataset_splits(
                train.dataset_name, train.dataset_config_name, train.train_data_dir, train.cache_dir
            )
            split = next((name for name in HELDOUT_SPLITS if name in (offered or [])), None)
            if split is None:
                return None
        source_name = train.dataset_name or train.train_data_dir
        dataset = load_image_dataset(
            train.dataset_name, train.dataset_config_name, train.train_data_dir, split=split, cache_dir=train.cache_dir
        )
    else:
        split = "train" if split == "auto" else split
        source_name = settings.validation_dataset_name
        dataset = load_image_dataset(settings.validation_dataset_name, split=split, cache_dir=train.cache_dir)
    image_column = find_image_column(dataset, train.image_column)
    label_column = None
    if data.class_names is not None:
        label_column = find_label_column(dataset, train.label_column)
        if label_column is None:
            raise ValueError(
                f"The held-out set ({source_name!r}, split {split!r}) has no label column (columns: "
                f"{dataset.column_names}), and the model is conditional: its held-out loss needs the labels."
            )
        _, names, multi_label = checked_labels(dataset, label_column)
        if names != list(data.class_names) or multi_label != data.multi_label:
            raise ValueError(
                f"The held-out set ({source_name!r}, split {split!r}) has classes {names[:20]}, and the training data "
                f"{list(data.class_names)[:20]}; they must be the same, in the same order."
            )
    if isinstance(dataset.features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    return _decoded(data, dataset, image_column, label_column, f"{source_name!r}, split {split!r}", settings)


def _decoded(data, dataset, image_column, label_column, source, settings) -> HeldoutImages:
    """At most `validation_images` rows of `dataset` (stratified, seeded), decoded as the training images are."""
    dataset = dataset.with_format(None)
    if len(dataset) > settings.validation_images:
        strata = _strata(dataset, label_column, data.multi_label)
        rows = stratified_choice(strata, settings.validation_images, len(dataset), settings.seed)
        dataset = dataset.select(rows.tolist())
    images = data.decode_uint8(dataset, image_column)
    class_labels = None
    if label_column is not None:
        labels = dataset[label_column]
        if data.multi_label:
            class_labels = multi_hot(labels, len(data.class_names))
        else:
            class_labels = torch.tensor(labels, dtype=torch.long)
    return HeldoutImages(images, class_labels, f"{source}: {images.shape[0]} images")
