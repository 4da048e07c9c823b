from .iclevr import ICLEVR_OBJECTS, iclevr_dataset, make_synthetic_iclevr, read_iclevr_conditions, read_iclevr_objects
from .images import (
    BUILTIN_DATASETS,
    class_names_of,
    find_image_column,
    find_label_column,
    is_multi_label,
    load_image_dataset,
)
from .tensors import load_image_tensors, multi_hot
from .toy2d import TOY2D_DATASETS, check_toy2d_name, sample_toy2d, toy2d_normalisation
from .transforms import RESIZE_MODES, channel_mode, dataset_mode, decode_image, preprocess_image

__all__ = [
    "RESIZE_MODES",
    "BUILTIN_DATASETS",
    "ICLEVR_OBJECTS",
    "iclevr_dataset",
    "is_multi_label",
    "make_synthetic_iclevr",
    "read_iclevr_conditions",
    "read_iclevr_objects",
    "TOY2D_DATASETS",
    "channel_mode",
    "check_toy2d_name",
    "class_names_of",
    "dataset_mode",
    "decode_image",
    "find_image_column",
    "find_label_column",
    "load_image_dataset",
    "load_image_tensors",
    "multi_hot",
    "preprocess_image",
    "sample_toy2d",
    "toy2d_normalisation",
]
