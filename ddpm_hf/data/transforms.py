"""Turning dataset images into training tensors: decode, fix the mode, resize, crop, flip, scale to [-1, 1]."""

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

GREYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")


def channel_mode(image: Image.Image) -> str:
    """`"L"` for greyscale images (kept at 1 channel), `"RGB"` for everything else (RGBA, P, CMYK, ...)."""
    return "L" if image.mode in GREYSCALE_MODES else "RGB"


def dataset_mode(images) -> str:
    """`"L"` when every image given is greyscale, else `"RGB"`: a mixed dataset trains in colour, never loses it."""
    return "L" if all(channel_mode(image) == "L" for image in images) else "RGB"


def decode_image(value, description: str = "image") -> Image.Image:
    """
    Decode a dataset cell (a PIL image, or `{"bytes", "path"}` as `datasets.Image(decode=False)` gives) into a loaded
    PIL image; an unreadable file raises a `ValueError` naming it.
    """
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        path = value.get("path")
        try:
            if value.get("bytes") is not None:
                image = Image.open(io.BytesIO(value["bytes"]))
            else:
                image = Image.open(path)
            image.load()
            return image
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise ValueError(f"Cannot read {description} {path or '(in-memory bytes)'}: {error}") from error
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    raise ValueError(f"Cannot read {description}: unsupported value of type {type(value).__name__}.")


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to `"L"` or `"RGB"`; 16-bit and float greyscale are rescaled to 8 bits, RGBA is put on white."""
    if image.mode == mode:
        return image
    if image.mode in ("I", "I;16", "F"):
        array = np.asarray(image, dtype=np.float64)
        maximum = 65535.0 if image.mode != "F" else max(float(array.max()), 1.0)
        image = Image.fromarray(np.clip(array / maximum * 255, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)


RESIZE_MODES = ("crop", "stretch")


def resize_and_crop(
    image: Image.Image,
    resolution: int,
    mode: str,
    center_crop: bool = True,
    generator: torch.Generator | None = None,
    resize_mode: str = "crop",
) -> Image.Image:
    """
    The geometric half of `preprocess_image`: convert to `mode`, resize and crop to a `resolution` square, and return
    the 8-bit PIL image (what `ddpm_hf.data.preload_images` keeps in memory).
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"Unknown resize_mode {resize_mode!r}; choose one of {list(RESIZE_MODES)}.")
    image = to_mode(image, mode)
    if resize_mode == "stretch" and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    width, height = image.size
    scale = resolution / min(width, height)
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    width, height = image.size
    if center_crop:
        left, top = (width - resolution) // 2, (height - resolution) // 2
    else:
        left = int(torch.randint(0, width - resolution + 1, (1,), generator=generator))
        top = int(torch.randint(0, height - resolution + 1, (1,), generator=generator))
    return image.crop((left, top, left + resolution, top + resolution))


def preprocess_image(
    image: Image.Image,
    resolution: int,
    mode: str,
    center_crop: bool = True,
    random_flip: bool = False,
    generator: torch.Generator | None = None,
    resize_mode: str = "crop",
) -> torch.Tensor:
    """
    Resize the shorter side to `resolution` (bicubic), crop a `resolution` square (centre, or random when
    `center_crop=False`), optionally flip left-right with probability 1/2, and return a float tensor (C, H, W) in
    [-1, 1] with C = 1 for `"L"` and 3 for `"RGB"`. With `resize_mode="stretch"` the whole image is resized to the
    square instead, aspect ratio lost and nothing cut off (i-CLEVR's 320x240 scenes, whose labels name every object).
    """
    image = resize_and_crop(image, resolution, mode, center_crop, generator, resize_mode)
    if random_flip and torch.rand(1, generator=generator).item() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))
