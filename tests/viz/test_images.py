import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf.viz import image_grid, save_denoising_gif, tensor_to_pil


def test_tensor_to_pil_maps_minus_one_to_black_and_one_to_white():
    samples = torch.tensor([[[[-1.0, 1.0], [0.0, 2.0]]]])
    (image,) = tensor_to_pil(samples, upscale=3)
    assert image.mode == "L" and image.size == (6, 6)
    pixels = np.asarray(image)
    assert pixels[0, 0] == 0 and pixels[0, 5] == 255 and pixels[5, 0] == 128 and pixels[5, 5] == 255


def test_grid_places_each_image_in_row_major_order():
    images = [Image.new("L", (3, 3), value) for value in (10, 20, 30, 40, 50, 60)]
    grid = np.asarray(image_grid(images, rows=2, cols=3, padding=1))
    assert grid.shape == (2 * 3 + 3, 3 * 3 + 4)
    assert grid[1, 1] == 10 and grid[1, 5] == 20 and grid[5, 1] == 40 and grid[5, 9] == 60
    assert grid[0, 0] == 128  # padding
    with pytest.raises(ValueError, match="needs 6 images"):
        image_grid(images[:5], rows=2, cols=3)


def test_gif_has_every_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), (value, 0, 0)) for value in (0, 100, 200)]
    save_denoising_gif(frames, tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 3


@pytest.mark.parametrize("count, rows, cols", [(1, 1, 1), (2, 1, 2), (5, 2, 3), (9, 3, 3), (10, 3, 4), (16, 4, 4)])
def test_square_grid_places_every_image_and_leaves_the_rest_grey(count, rows, cols):
    from ddpm_hf.viz import square_grid

    images = [Image.new("L", (3, 2), 10 * (index + 1)) for index in range(count)]
    grid = square_grid(images, padding=1)
    assert grid.size == (cols * 3 + cols + 1, rows * 2 + rows + 1)
    pixels = np.asarray(grid)
    for index in range(rows * cols):
        row, col = divmod(index, cols)
        cell = pixels[1 + row * 3 : 1 + row * 3 + 2, 1 + col * 4 : 1 + col * 4 + 3]
        assert (cell == (10 * (index + 1) if index < count else 128)).all()
