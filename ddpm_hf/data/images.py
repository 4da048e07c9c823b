"""Image datasets for DDPM training, all as Hugging Face `datasets.Dataset`s.

Sources: a Hub dataset id (`load_dataset`), a local image folder (`imagefolder`: class sub-folders become labels), a
local dataset folder (`save_to_disk` output, or parquet / arrow files), a local `.npz` file with `images` (and
optionally `labels`, `label_names`) arrays, an i-CLEVR folder (objects.json, train.json and the images; multi-label),
and the offline built-in `digits` (scikit-learn's 8x8 digits).
"""

import glob
import os

import numpy as np
from PIL import Image

from ..pipelines.class_conditions import check_class_names

BUILTIN_DATASETS = ("digits",)
IMAGE_COLUMN_NAMES = ("image", "img", "images", "pixel_values")
LABEL_COLUMN_NAMES = ("label", "labels", "class", "fine_label", "y")


def _require_datasets():
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a dependency of ddpm-hf
        raise ImportError("Loading image datasets needs 🤗 datasets: pip install datasets") from error
    return datasets


def _digits_dataset():
    from sklearn.datasets import load_digits

    datasets = _require_datasets()
    digits = load_digits()
    # 0..16 intensities -> 0..255 greyscale, white strokes on black as in MNIST
    images = [Image.fromarray(np.round(image * (255 / 16)).astype(np.uint8), mode="L") for image in digits.images]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    return datasets.Dataset.from_dict({"image": images, "label": digits.target.tolist()}, features=features)


def _npz_dataset(path):
    datasets = _require_datasets()
    with np.load(path) as arrays:
        if "images" not in arrays.files:
            raise ValueError(f"{path} has no 'images' array; it holds {arrays.files}. Expected images (N, H, W[, C]).")
        images = arrays["images"]
        labels = arrays["labels"] if "labels" in arrays.files else None
        label_names = [str(name) for name in arrays["label_names"]] if "label_names" in arrays.files else None
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise ValueError(
            f"{path}: 'images' must be uint8 (N, H, W) or (N, H, W, C), got {images.dtype} {images.shape}."
        )
    columns = {"image": [Image.fromarray(image) for image in images]}
    features = {"image": datasets.Image()}
    if labels is not None:
        if len(labels) != len(images):
            raise ValueError(f"{path}: {len(labels)} labels for {len(images)} images.")
        labels = np.asarray(labels)
        if labels.ndim != 1 or not (
            np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
        ):
            raise ValueError(f"{path}: 'labels' must be one class id per image, got {labels.dtype} {labels.shape}.")
        # class ids written as floats are accepted only when they are whole numbers: 0.2 or NaN is not a class
        not_ids = (
            ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0)
            if labels.dtype.kind == "f"
            else labels < 0
        )
        if not_ids.any():
            examples = labels[not_ids][:5].tolist()
            raise ValueError(
                f"{path}: 'labels' must hold class ids 0..K-1; {int(not_ids.sum())} are not, e.g. {examples}."
            )
        names = label_names or [str(value) for value in range(int(labels.max()) + 1)]
        if label_names is not None:
            check_class_names(label_names, f"{path}: 'label_names'")
            if labels.max() >= len(label_names):
                unnamed = sorted({int(value) for value in labels[labels >= len(label_names)]})
                raise ValueError(
                    f"{path}: 'labels' holds class id(s) {unnamed[:5]} and 'label_names' names {len(label_names)} "
                    f"classes (ids 0..{len(label_names) - 1}); give one name per class."
                )
        columns["label"] = labels.astype(np.int64).tolist()
        features["label"] = datasets.ClassLabel(names=names)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _local_folder_dataset(folder, split):
    datasets = _require_datasets()
    if os.path.isfile(os.path.join(folder, "objects.json")) and os.path.isfile(os.path.join(folder, "train.json")):
        from .iclevr import iclevr_dataset

        return iclevr_dataset(folder)
    if os.path.exists(os.path.join(folder, "dataset_info.json")) or os.path.exists(
        os.path.join(folder, "dataset_dict.json")
    ):
        loaded = datasets.load_from_disk(folder)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{folder} has splits {list(loaded)}, not {split!r}.")
            loaded = loaded[split]
        return loaded
    for extension, builder in (("parquet", "parquet"), ("arrow", "arrow")):
        files = sorted(glob.glob(os.path.join(folder, "**", f"*.{extension}"), recursive=True))
        if files:
            return datasets.load_dataset(builder, data_files={split: files}, split=split)
    image_extensions = set(Image.registered_extensions())
    if not any(
        os.path.splitext(name)[1].lower() in image_extensions for _, _, names in os.walk(folder) for name in names
    ):
        raise ValueError(
            f"{folder} holds no images (png, jpg, ...), parquet or arrow files, and no save_to_disk dataset."
        )
    return datasets.load_dataset("imagefolder", data_dir=folder, split=split)


def load_image_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_data_dir: str | None = None,
    split: str = "train",
    cache_dir: str | None = None,
):
    """
    Load an image dataset from any supported source as a `datasets.Dataset`.

    Args:
        dataset_name (`str`, *optional*): `"digits"`, a path to a `.npz` file or a local dataset folder, or a Hub
            dataset id such as `"ylecun/mnist"` (downloaded through `datasets.load_dataset`).
        dataset_config_name (`str`, *optional*): Configuration of a Hub dataset.
        train_data_dir (`str`, *optional*): A local folder: `save_to_disk` output, parquet/arrow files, or images
            (class sub-folders become labels). Used when `dataset_name` is not given.
        split (`str`, defaults to `"train"`): Split to load.
        cache_dir (`str`, *optional*): Cache folder for Hub downloads.
    """
    if (dataset_name is None) == (train_data_dir is None):
        raise ValueError("Give exactly one of dataset_name and train_data_dir.")
    if train_data_dir is not None:
        if not os.path.isdir(train_data_dir):
            raise ValueError(f"train_data_dir {train_data_dir!r} is not a folder.")
        dataset = _local_folder_dataset(train_data_dir, split)
    elif dataset_name == "digits":
        dataset = _digits_dataset()
    elif dataset_name.endswith(".npz"):
        if not os.path.isfile(dataset_name):
            raise ValueError(f"No such .npz file: {dataset_name!r}.")
        dataset = _npz_dataset(dataset_name)
    elif os.path.isdir(dataset_name):
        dataset = _local_folder_dataset(dataset_name, split)
    else:
        datasets = _require_datasets()
        dataset = datasets.load_dataset(dataset_name, dataset_config_name, split=split, cache_dir=cache_dir)
    if len(dataset) == 0:
        raise ValueError(f"The dataset {dataset_name or train_data_dir!r} (split {split!r}) holds no examples.")
    return dataset


def dataset_splits(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_data_dir: str | None = None,
    cache_dir: str | None = None,
) -> list[str] | None:
    """
    The splits a source offers, as `load_image_dataset` names them: a Hub dataset's (asked of the Hub), a
    `save_to_disk` `DatasetDict`'s, an image folder's (`train/` and `test/` sub-folders, as `imagefolder` reads them);
    `["train"]` for `digits`, `.npz` files, i-CLEVR folders and other single-split sources. None when the Hub cannot
    be asked (offline).
    """
    datasets = _require_datasets()
    folder = train_data_dir
    if folder is None and dataset_name not in BUILTIN_DATASETS and not dataset_name.endswith(".npz"):
        folder = dataset_name if os.path.isdir(dataset_name) else None
        if folder is None:  # a Hub id
            try:
                return list(datasets.get_dataset_split_names(dataset_name, dataset_config_name, cache_dir=cache_dir))
            except Exception:  # offline, or not a dataset the Hub knows: no split to offer
                return None
    if folder is None or os.path.isfile(os.path.join(folder, "objects.json")):
        return ["train"]
    if os.path.exists(os.path.join(folder, "dataset_dict.json")):
        return list(datasets.load_from_disk(folder))
    table_files = [glob.glob(os.path.join(folder, "**", f"*.{ext}"), recursive=True) for ext in ("parquet", "arrow")]
    has_table_files = any(table_files)
    if os.path.exists(os.path.join(folder, "dataset_info.json")) or has_table_files:
        return ["train"]  # load_image_dataset reads every table file as the one split
    try:
        return [str(split) for split in datasets.data_files.get_data_patterns(folder)]
    except Exception:  # no data files at all: load_image_dataset names the problem
        return ["train"]


def _find_column(dataset, given: str | None, flag: str, feature_type, usual_names) -> str | None:
    """`given` when it is a column (else refused naming the flag and the columns), or the first column whose feature
    is of `feature_type`, or the first of `usual_names` the dataset has, or None."""
    columns = list(dataset.column_names)
    if given is not None:
        if given not in columns:
            raise ValueError(f"{flag} {given!r} is not a column of the dataset; columns: {columns}.")
        return given
    for name, feature in dataset.features.items():
        if isinstance(feature, feature_type):
            return name
    return next((name for name in usual_names if name in columns), None)


def find_image_column(dataset, image_column: str | None = None) -> str:
    """The image column: `image_column` if given, else the first `Image` feature or a usual name."""
    found = _find_column(dataset, image_column, "--image_column", _require_datasets().Image, IMAGE_COLUMN_NAMES)
    if found is None:
        raise ValueError(f"No image column found; columns: {list(dataset.column_names)}. Name it with --image_column.")
    return found


def find_label_column(dataset, label_column: str | None = None) -> str | None:
    """The label column: `label_column` if given, else the first `ClassLabel` feature or a usual name, else None."""
    return _find_column(dataset, label_column, "--label_column", _require_datasets().ClassLabel, LABEL_COLUMN_NAMES)


def is_multi_label(dataset, label_column: str) -> bool:
    """Whether the label column holds a list of class labels per image (e.g. i-CLEVR's objects)."""
    datasets = _require_datasets()
    feature = dataset.features[label_column]
    list_types = (datasets.Sequence, getattr(datasets, "List", datasets.Sequence))
    return isinstance(feature, list_types) and isinstance(getattr(feature, "feature", None), datasets.ClassLabel)


def class_names_of(dataset, label_column: str) -> list[str]:
    """Class names in id order: the `ClassLabel` names, or the sorted distinct integer labels as strings. Names that
    are empty (or only spaces) or given to two classes are refused by name: the model's classes are picked by name."""
    datasets = _require_datasets()
    feature = dataset.features[label_column]
    if isinstance(feature, datasets.ClassLabel) or is_multi_label(dataset, label_column):
        names = list(feature.names if isinstance(feature, datasets.ClassLabel) else feature.feature.names)
        check_class_names(names, f"The class names of label column {label_column!r}")
        return names
    values = sorted(set(dataset[label_column]))
    if not all(isinstance(value, (int, np.integer)) for value in values) or values[0] < 0:
        raise ValueError(
            f"Label column {label_column!r} must hold class ids 0..K-1 or be a ClassLabel, "
            f"got values like {values[:5]}."
        )
    return [str(index) for index in range(int(values[-1]) + 1)]


def checked_labels(dataset, label_column: str) -> tuple[list, list[str], bool]:
    """
    The labels of `label_column`, every one checked to name a class: (values, class names, multi-label or not).

    The class names are `class_names_of`'s; a value outside 0..K-1 (`datasets` writes -1 for a missing `ClassLabel`)
    or, for multi-label data (`is_multi_label`: a list of labels per image), an empty list or an id outside that
    range is refused, naming the column, how many values and a few of them.
    """
    class_names = class_names_of(dataset, label_column)
    multi_label = is_multi_label(dataset, label_column)
    labels, num_classes = dataset[label_column], len(class_names)
    if multi_label:
        bad = [value for value in labels if not value or not all(0 <= v < num_classes for v in value)]
    else:
        bad = [value for value in labels if not isinstance(value, int) or not 0 <= value < num_classes]
    if bad:
        raise ValueError(
            f"Label column {label_column!r} holds {len(bad)} values outside 0..{num_classes - 1}"
            f"{' or empty label lists' if multi_label else ''}, e.g. {bad[:5]}."
        )
    return labels, class_names, multi_label
