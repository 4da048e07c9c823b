"""Image grids and denoising animations from pipeline outputs."""

import numpy as np
from diffusers.utils import make_image_grid
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


def image_grid(images: list[Image.Image], rows: int, cols: int) -> Image.Image:
    """Tile the first `rows * cols` images row by row into one picture."""
    if len(images) < rows * cols:
        raise ValueError(f"A {rows}x{cols} grid needs {rows * cols} images, got {len(images)}.")
    return make_image_grid(images[: rows * cols], rows=rows, cols=cols)


def save_grid(images: list[Image.Image], rows: int, cols: int, path: str) -> Image.Image:
    """Tile `rows * cols` images row by row into one picture and save it."""
    grid = image_grid(images, rows, cols)
    grid.save(path)
    return grid


def save_denoising_gif(frames: list[Image.Image], path: str, frame_ms: int = 100) -> None:
    """Save frames (e.g. grids of x_t through the reverse process) as a looping GIF holding the last frame longer."""
    if not frames:
        raise ValueError("save_denoising_gif needs at least one frame.")
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 15]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
