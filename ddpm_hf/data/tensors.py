"""A whole image dataset as tensors, for the scripts that need all of it at once (classifier training, evaluation)."""

import torch
from tqdm.auto import tqdm

from .images import checked_labels, find_image_column, find_label_column, load_image_dataset
from .transforms import dataset_mode, decode_image, preprocess_image


def multi_hot(label_ids: list[list[int]], num_labels: int) -> torch.Tensor:
    """Lists of label ids (one list per image) as a multi-hot float tensor (N, num_labels)."""
    rows = torch.zeros(len(label_ids), num_labels)
    for row, ids in enumerate(label_ids):
        rows[row, ids] = 1.0
    return rows


def load_image_tensors(
    dataset_name: str | None = None,
    train_data_dir: str | None = None,
    resolution: int = 32,
    mode: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    split: str = "train",
    dataset_config_name: str | None = None,
    resize_mode: str = "crop",
    progress: bool = False,
    cache_dir: str | None = None,
):
    """
    Load a dataset (any source `load_image_dataset` takes) as images (N, C, H, W) in [-1, 1], resized and
    centre-cropped to `resolution`, and labels when it has a label column: class ids (N,), or multi-hot (N, K) floats
    for multi-label data such as i-CLEVR. Labels that name no class are refused (`checked_labels`), as in training.

    Args:
        mode (`str`, *optional*): `"L"` or `"RGB"`; by default from the images (`dataset_mode` of the first 64).
        resize_mode (`str`, defaults to `"crop"`): `"crop"` (shorter side, centre crop) or `"stretch"` (whole
            image to the square), as in `preprocess_image`.
        progress (`bool`, defaults to `False`): Show tqdm progress bars while decoding and resizing the images.
        cache_dir (`str`, *optional*): Cache folder for Hub downloads.

    Returns:
        `(images, labels or None, class_names or None)`
    """
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be 'L', 'RGB' or None, got {mode!r}.")
    dataset = load_image_dataset(dataset_name, dataset_config_name, train_data_dir, split=split, cache_dir=cache_dir)
    image_column = find_image_column(dataset, image_column)
    label_column = find_label_column(dataset, label_column)
    labels = class_names = None
    if label_column is not None:  # checked before the images are decoded
        label_values, class_names, multi_label = checked_labels(dataset, label_column)
        if multi_label:
            labels = multi_hot(label_values, len(class_names))
        else:
            labels = torch.tensor(label_values, dtype=torch.long)
    # row by row, so that each image is decoded as the progress bar advances (a column read decodes them all at once)
    rows = tqdm(dataset.select_columns([image_column]), desc="decode images", unit="img", disable=not progress)
    decoded = [decode_image(row[image_column], f"image {index}") for index, row in enumerate(rows)]
    mode = mode or dataset_mode(decoded[:64])
    resizing = tqdm(decoded, desc="resize images", unit="img", disable=not progress)
    images = torch.stack([preprocess_image(image, resolution, mode, resize_mode=resize_mode) for image in resizing])
    return images, labels, class_names
