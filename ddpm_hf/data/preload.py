"""A whole image dataset decoded once into one uint8 tensor, for training without a per-step data pipeline."""

import numpy as np
import torch


def preload_images(dataset, to_uint8_array, num_workers: int = 0, batch_size: int = 256) -> torch.Tensor:
    """
    Decode every image of `dataset` once and stack them into a uint8 tensor (N, C, H, W) in the dataset's order.

    Args:
        dataset (`torch.utils.data.Dataset`): Indexable; `to_uint8_array(dataset[i])` turns one row into a uint8 array
            (H, W) or (H, W, C), the same size for every row.
        to_uint8_array (`Callable`): Decodes, resizes and crops one row (e.g. with `resize_and_crop`). Its errors, such
            as an unreadable file, propagate.
        num_workers (`int`, defaults to 0): DataLoader worker processes that decode in parallel.
        batch_size (`int`, defaults to 256): Rows decoded per worker task.

    Returns:
        `torch.Tensor`: uint8, (N, C, H, W), contiguous, on the CPU; 1 byte per pixel and channel, so CIFAR-10's
        50,000 training images take 150 MiB.
    """
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=lambda rows: np.stack([_channels_first(to_uint8_array(row)) for row in rows]),
    )
    return torch.from_numpy(np.concatenate(list(loader))).contiguous()


def _channels_first(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image array, got {array.dtype}.")
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def uint8_to_model_input(
    images: torch.Tensor, random_flip: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """
    The training-time half of the pipeline on the images' own device: uint8 (N, C, H, W) to float32 in [-1, 1] by
    x / 127.5 - 1 (the arithmetic of `preprocess_image`, so the values are the same bit for bit), and with
    `random_flip` each image flipped left-right with probability 1/2, drawn from `generator` (on that device).
    """
    pixels = images.float() / 127.5 - 1.0
    if random_flip:
        flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
        pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
    return pixels


class IndexDataset(torch.utils.data.Dataset):
    """
    Rows `{"index": i}` (plus `"class_labels": labels[i]` when labels are given) for i in 0..length-1: what a
    DataLoader shuffles and shards when the images themselves sit preloaded on the training device.
    """

    def __init__(self, length: int, labels=None):
        if labels is not None and len(labels) != length:
            raise ValueError(f"Got {len(labels)} labels for {length} rows.")
        self.length = length
        self.labels = labels

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        row = {"index": index}
        if self.labels is not None:
            row["class_labels"] = self.labels[index]
        return row
