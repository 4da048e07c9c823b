"""The sweep's figures: the sample matrix, one denoising strip per cell, and the loss curves of every cell."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf.viz import (
    denoising_grid,
    first_row_of_grid,
    gif_strip,
    save_denoising_gif,
    save_image_matrix,
    save_sweep_figures,
    save_sweep_loss_curves,
    save_trajectory_strips,
)


def test_the_first_row_of_a_denoising_grid_is_the_first_sample_through_time():
    frames = [torch.full((3, 1, 4, 4), value) for value in (-1.0, 0.0, 1.0)]
    frames[0][0] = 1.0  # the first sample differs from the others in the first frame
    grid = denoising_grid(frames, num_samples=3, num_columns=3)
    row = first_row_of_grid(grid, num_rows=3)
    assert row.size == (grid.width, 4 + 2 * 2)
    pixels = np.asarray(row)
    assert pixels[2, 2] == 255 and pixels[2, 2 + 4 + 2] == 128  # first sample: white, then grey (0 -> 128)
    with pytest.raises(ValueError, match="not a grid of 4 rows"):
        first_row_of_grid(grid, num_rows=4)


def test_matrix_strips_and_curves_are_written(tmp_path):
    image = Image.new("L", (20, 20), 200)
    save_image_matrix([[image, None], [image, image]], ["a=1", "a=2"], ["b=x", "b=y"], tmp_path / "m.png", "t")
    assert Image.open(tmp_path / "m.png").size[0] > 100
    with pytest.raises(ValueError, match="needs 2 rows of 2 images"):
        save_image_matrix([[image, image]], ["a=1", "a=2"], ["b=x", "b=y"], tmp_path / "bad.png")

    save_denoising_gif([Image.new("RGB", (30, 20), (i * 20, 0, 0)) for i in range(10)], tmp_path / "t.gif")
    strip = gif_strip(tmp_path / "t.gif", num_frames=4, height=10)
    assert strip.size == (4 * 15 + 5 * 2, 10)
    save_trajectory_strips([("a=1", strip), ("a=2", None)], tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").size[1] > 50

    curves = [
        {"label": "a=1", "steps": list(range(1, 201)), "losses": list(np.linspace(1, 0.1, 200))},
        {"label": "a=2", "final": (30, 0.3), "heldout": [{"step": 10, "heldout_loss": 0.5}]},
    ]
    save_sweep_loss_curves(curves, tmp_path / "l.png")
    assert Image.open(tmp_path / "l.png").format == "PNG"


def test_sweep_figures_from_run_folders(tmp_path):
    runs = []
    for index in range(2):
        run = tmp_path / f"a={index}"
        run.mkdir()
        Image.new("L", (30, 30), 100).save(run / "grid.png")
        frames = [torch.zeros(10, 1, 8, 8) for _ in range(3)]
        denoising_grid([frame[::5] for frame in frames], num_samples=2, num_columns=3).save(run / "denoising_grid.png")
        (run / "metrics.json").write_text(json.dumps({"num_classes": 2, "final_loss": 0.2, "steps": 3}))
        (run / "losses.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in (1, 2, 3)))
        runs.append(str(run))
    runs.append(str(tmp_path / "a=2"))  # a cell with no folder: shown as missing
    layout = ([""], ["a=0", "a=1", "a=2"])
    figures, notes = save_sweep_figures(str(tmp_path), layout, ["a=0", "a=1", "a=2"], runs, "train_image.py")
    assert set(figures.values()) == {"sweep_grids.png", "sweep_trajectories.png", "sweep_losses.png"} and not notes
    for name in figures.values():
        assert Image.open(tmp_path / name).format == "PNG"
