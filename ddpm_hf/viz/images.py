"""Image grids and denoising animations from pipeline outputs."""

import math

import numpy as np
from PIL import Image


def tensor_to_pil(samples, upscale: int = 1) -> list[Image.Image]:
    """(N, C, H, W) tensor in [-1, 1] -> list of PIL images (L or RGB), each enlarged `upscale` times (nearest)."""
    array = ((samples.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    images = []
    for image in array:
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        pil = Image.fromarray(np.ascontiguousarray(image))
        if upscale > 1:
            pil = pil.resize((pil.width * upscale, pil.height * upscale), Image.Resampling.NEAREST)
        images.append(pil)
    return images


def image_grid(images: list[Image.Image], rows: int, cols: int, padding: int = 2) -> Image.Image:
    """Tile the first `rows * cols` equally sized images row by row, `padding` grey pixels apart."""
    if len(images) < rows * cols:
        raise ValueError(f"A {rows}x{cols} grid needs {rows * cols} images, got {len(images)}.")
    return _tile(images[: rows * cols], rows, cols, padding)


def square_grid(images: list[Image.Image], padding: int = 2) -> Image.Image:
    """Tile any number of equally sized images in ceil(sqrt(N)) columns; empty cells stay grey."""
    if not images:
        raise ValueError("square_grid needs at least one image.")
    cols = math.ceil(math.sqrt(len(images)))
    return _tile(images, math.ceil(len(images) / cols), cols, padding)


def _tile(images: list[Image.Image], rows: int, cols: int, padding: int) -> Image.Image:
    width, height = images[0].size
    grid = Image.new(
        images[0].mode,
        (cols * width + (cols + 1) * padding, rows * height + (rows + 1) * padding),
        128 if images[0].mode == "L" else (128, 128, 128),
    )
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        grid.paste(image, (padding + col * (width + padding), padding + row * (height + padding)))
    return grid


def save_grid(images: list[Image.Image], rows: int, cols: int, path: str, padding: int = 2) -> Image.Image:
    """Tile `rows * cols` images row by row into one picture and save it."""
    grid = image_grid(images, rows, cols, padding)
    grid.save(path)
    return grid


def denoising_grid(frames: list, num_samples: int = 8, num_columns: int = 8, upscale: int = 1) -> Image.Image:
    """
    The reverse process as one picture: rows = samples, columns = time from pure noise (left) to the final sample.

    Args:
        frames (`list[torch.Tensor]`): Snapshots of x_t, each (N, C, H, W) in [-1, 1], in sampling order.
        num_samples (`int`, defaults to 8): Rows: the first samples of each frame (fewer if N is smaller).
        num_columns (`int`, defaults to 8): Frames shown, evenly spaced, always with the first and the last.
        upscale (`int`, defaults to 1): Enlarge each image this many times (nearest).
    """
    if not frames:
        raise ValueError("denoising_grid needs at least one frame.")
    num_columns = min(num_columns, len(frames))
    num_samples = min(num_samples, frames[0].shape[0])
    picked = np.linspace(0, len(frames) - 1, num_columns).round().astype(int)
    columns = [tensor_to_pil(frames[index][:num_samples], upscale) for index in picked]
    images = [columns[col][row] for row in range(num_samples) for col in range(num_columns)]
    return image_grid(images, num_samples, num_columns)


def save_denoising_gif(frames: list[Image.Image], path: str, frame_ms: int = 100) -> None:
    """Save frames (e.g. grids of x_t through the reverse process) as a looping GIF holding the last frame longer."""
    if not frames:
        raise ValueError("save_denoising_gif needs at least one frame.")
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 15]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
