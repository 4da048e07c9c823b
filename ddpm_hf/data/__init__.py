from .iclevr import ICLEVR_OBJECTS, iclevr_dataset, make_synthetic_iclevr, read_iclevr_conditions, read_iclevr_objects
from .images import (
    BUILTIN_DATASETS,
    class_names_of,
    find_image_column,
    find_label_column,
    is_multi_label,
    load_image_dataset,
)
from .preload import IndexDataset, preload_images, uint8_to_model_input
from .tensors import load_image_tensors, multi_hot
from .toy2d import (
    COURSE_DATASET_SIZE,
    TOY2D_DATASETS,
    check_toy2d_name,
    course_normalise,
    sample_course_toy2d,
    sample_raw_toy2d,
    sample_toy2d,
    toy2d_normalisation,
)
from .transforms import RESIZE_MODES, channel_mode, dataset_mode, decode_image, preprocess_image, resize_and_crop

__all__ = [
    "COURSE_DATASET_SIZE",
    "IndexDataset",
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
    "course_normalise",
    "dataset_mode",
    "decode_image",
    "find_image_column",
    "find_label_column",
    "load_image_dataset",
    "load_image_tensors",
    "multi_hot",
    "preload_images",
    "preprocess_image",
    "resize_and_crop",
    "sample_course_toy2d",
    "sample_raw_toy2d",
    "sample_toy2d",
    "toy2d_normalisation",
    "uint8_to_model_input",
]
