"""The figures of a grid of runs (train_scripts/sweep.py): every cell's samples in one matrix, one denoising strip per
cell, and every cell's loss curve on one plot."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .run_figures import grid_shape  # noqa: E402
from .sweep_report import read_json  # noqa: E402

# What each training script leaves in its run folder for the figures: its sample grid, and its denoising trajectory.
SAMPLE_FIGURES = {"train_image.py": "grid.png", "train_2d.py": "samples.png"}
TRAJECTORY_FIGURES = {"train_image.py": "denoising_grid.png", "train_2d.py": "trajectory.gif"}


def _show(axis, image: Image.Image | None) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)
    if image is None:
        axis.text(0.5, 0.5, "missing", ha="center", va="center", color="grey", transform=axis.transAxes)
        return
    pixels = np.asarray(image)
    axis.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")


def save_image_matrix(
    images: list[list[Image.Image | None]],
    row_labels: list[str],
    column_labels: list[str],
    path: str,
    title: str | None = None,
    cell_inches: float = 2.4,
) -> None:
    """
    Images in a labelled matrix, one picture (`sweep_grids.png`).

    Args:
        images (`list[list[PIL.Image.Image | None]]`): Rows of images; None shows "missing".
        row_labels (`list[str]`): One label per row, written on its left (`""`: none).
        column_labels (`list[str]`): One label per column, written above it (`", "` starts a new line).
        path (`str`): Where to write the PNG.
        title (`str`, *optional*): Figure title.
        cell_inches (`float`, defaults to 2.4): Size of each image in inches.
    """
    if not images or len(images) != len(row_labels) or any(len(row) != len(column_labels) for row in images):
        raise ValueError(
            f"save_image_matrix needs {len(row_labels)} rows of {len(column_labels)} images, one per label; got "
            f"{[len(row) for row in images]}."
        )
    num_rows, num_columns = len(row_labels), len(column_labels)
    shapes = [image.size for row in images for image in row if image is not None] or [(1, 1)]
    aspect = max(width / height for width, height in shapes)  # wide pictures (2D runs' samples.png) get wide cells
    figsize = (cell_inches * aspect * num_columns + 0.6, cell_inches * num_rows + 0.8)
    figure, axes = plt.subplots(num_rows, num_columns, figsize=figsize, squeeze=False)
    for row, (row_images, row_label) in enumerate(zip(images, row_labels)):
        for column, image in enumerate(row_images):
            axis = axes[row][column]
            _show(axis, image)
            if row == 0:
                axis.set_title(column_labels[column].replace(", ", "\n"), fontsize=8)
            if column == 0 and row_label:
                axis.set_ylabel(row_label, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def first_row_of_grid(image: Image.Image, num_rows: int, padding: int = 2) -> Image.Image:
    """
    The first row of a grid tiled by `ddpm_hf.viz.image_grid` (`num_rows` equal rows, `padding` pixels around each
    image), e.g. one sample through time from `denoising_grid.png`.

    Raises:
        `ValueError`: When the picture's height does not split into `num_rows` rows with that padding.
    """
    image_height, remainder = divmod(image.height - (num_rows + 1) * padding, num_rows)
    if remainder or image_height < 1:
        raise ValueError(
            f"A picture {image.height} pixels high is not a grid of {num_rows} rows with {padding}-pixel padding."
        )
    return image.crop((0, 0, image.width, image_height + 2 * padding))


def gif_strip(path: str, num_frames: int = 8, height: int = 120, padding: int = 2) -> Image.Image:
    """`num_frames` evenly spaced frames of a GIF (the first and the last included), each `height` pixels high, side
    by side: a 2D run's trajectory.gif as one strip."""
    with Image.open(path) as gif:
        picked = np.linspace(0, gif.n_frames - 1, min(num_frames, gif.n_frames)).round().astype(int)
        frames = []
        for index in picked:
            gif.seek(int(index))
            frame = gif.convert("RGB")
            frames.append(frame.resize((max(1, round(frame.width * height / frame.height)), height)))
    strip = Image.new("RGB", (sum(f.width for f in frames) + padding * (len(frames) + 1), height), (255, 255, 255))
    left = padding
    for frame in frames:
        strip.paste(frame, (left, 0))
        left += frame.width + padding
    return strip


def save_trajectory_strips(strips: list[tuple[str, Image.Image | None]], path: str, title: str | None = None) -> None:
    """
    One strip per cell, stacked, each labelled on its left (`sweep_trajectories.png`): the denoising of one fixed
    seed, from noise (left) to the sample (right).

    Args:
        strips (`list[tuple[str, PIL.Image.Image | None]]`): (label, strip); None shows "missing".
        path (`str`): Where to write the PNG.
        title (`str`, *optional*): Figure title.
    """
    if not strips:
        raise ValueError("save_trajectory_strips needs at least one strip.")
    shapes = [image.size for _, image in strips if image is not None] or [(10, 1)]
    aspect = max(height / width for width, height in shapes)
    width = 9.0
    figure, axes = plt.subplots(len(strips), 1, figsize=(width, len(strips) * max(width * aspect, 0.5) + 0.7))
    axes = np.atleast_1d(axes)
    for axis, (label, image) in zip(axes, strips):
        _show(axis, image)
        axis.set_ylabel(label.replace(",", "\n"), fontsize=7, rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_sweep_loss_curves(curves: list[dict], path: str, smoothing: int = 50, title: str | None = None) -> None:
    """
    Every cell's training loss on one log-scaled plot (`sweep_losses.png`): its running mean over `smoothing` steps
    (fewer for a short run), its held-out losses as squares of the same colour, or its final loss alone as a dot when
    that is all the run kept.

    Args:
        curves (`list[dict]`): One per cell: `label`, and any of `steps` with `losses` (per step, or already means
            when `smooth` is False), `heldout` (records {"step", "heldout_loss"}), `final` ((step, loss)).
        path (`str`): Where to write the PNG.
        smoothing (`int`, defaults to 50): Window of the running mean.
        title (`str`, *optional*): Figure title.
    """
    figure, axis = plt.subplots(figsize=(10, 4.8))
    for index, curve in enumerate(curves):
        color = f"C{index % 10}"
        losses = np.asarray(curve.get("losses") or [], dtype=np.float64)
        if len(losses):
            steps = np.asarray(curve.get("steps") or np.arange(1, len(losses) + 1))
            window = max(1, min(smoothing, len(losses) // 5)) if curve.get("smooth", True) else 1
            smoothed = np.convolve(losses, np.ones(window) / window, mode="valid")
            axis.plot(steps[window - 1 :], smoothed, color=color, lw=1.3, label=curve["label"])
        elif curve.get("final"):
            step, loss = curve["final"]
            axis.plot([step], [loss], "o", color=color, label=f"{curve['label']} (final loss)")
        if curve.get("heldout"):
            heldout = curve["heldout"]
            steps, values = [r["step"] for r in heldout], [r["heldout_loss"] for r in heldout]
            axis.plot(steps, values, "s--", color=color, ms=4, lw=0.8)
    if any(curve.get("heldout") for curve in curves):
        axis.plot([], [], "s--", color="grey", ms=4, lw=0.8, label="held-out loss (colour of its run)")
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title or "Training loss (running mean), held-out loss as squares")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _read_metrics(run_dir: str) -> dict:
    return read_json(os.path.join(run_dir, "metrics.json")) or {}


def _open_image(path: str) -> Image.Image | None:
    if not os.path.isfile(path):
        return None
    with Image.open(path) as image:
        return image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy()


def loss_curve_of_run(label: str, run_dir: str) -> dict:
    """A run folder's entry for `save_sweep_loss_curves`: losses.jsonl's steps and losses (train_image.py), else the
    mean training loss between held-out scores (metrics.json's held-out records), the held-out losses, and
    metrics.json's final loss at its last step (shown alone when the run kept nothing else)."""
    curve, metrics = {"label": label}, _read_metrics(run_dir)
    heldout = (metrics.get("heldout") or {}).get("per_epoch") or []
    losses_path = os.path.join(run_dir, "losses.jsonl")
    if os.path.isfile(losses_path):
        with open(losses_path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        curve["steps"], curve["losses"] = [r["step"] for r in records], [r["loss"] for r in records]
    elif heldout:
        curve["steps"], curve["losses"] = [r["step"] for r in heldout], [r["train_loss"] for r in heldout]
        curve["smooth"] = False
    curve["heldout"] = heldout
    if metrics.get("final_loss") is not None:
        curve["final"] = (metrics.get("steps") or metrics.get("max_train_steps") or 0, metrics["final_loss"])
    return curve


def trajectory_strip(run_dir: str, script: str) -> Image.Image | None:
    """A run's denoising strip: the first row of train_image.py's denoising_grid.png (its rows are the first sample of
    each grid row), or frames of train_2d.py's trajectory.gif; None when the run has none."""
    path = os.path.join(run_dir, TRAJECTORY_FIGURES[script])
    if not os.path.isfile(path):
        return None
    if script == "train_2d.py":
        return gif_strip(path)
    num_rows = grid_shape(_read_metrics(run_dir).get("num_classes"))[0]
    with Image.open(path) as image:
        return first_row_of_grid(image.copy(), num_rows)


def save_sweep_figures(
    output_dir: str, layout: tuple[list[str], list[str]], names: list[str], run_dirs: list[str], script: str
) -> tuple[dict, list[str]]:
    """
    sweep_grids.png, sweep_trajectories.png and sweep_losses.png in `output_dir`, from the cells' run folders.

    Args:
        output_dir (`str`): The sweep folder.
        layout (`tuple[list[str], list[str]]`): Labels of the rows and columns of the sample matrix
            (`ddpm_hf.sweeps.grid_layout`: rows are the first flag's values, columns the others'); cell `i` sits at row
            `i // len(columns)`, column `i % len(columns)`.
        names (`list[str]`): The cells' names in grid order (labels of the strips and curves).
        run_dirs (`list[str]`): The cells' run folders, in the same order.
        script (`str`): `"train_image.py"` or `"train_2d.py"`.

    Returns:
        `tuple[dict, list[str]]`: Caption -> file name of each figure written, and notes on what was left out.
    """
    row_labels, column_labels = layout
    figures, notes = {}, []
    samples = [_open_image(os.path.join(run_dir, SAMPLE_FIGURES[script])) for run_dir in run_dirs]
    matrix = [samples[row * len(column_labels) : (row + 1) * len(column_labels)] for row in range(len(row_labels))]
    save_image_matrix(matrix, row_labels, column_labels, os.path.join(output_dir, "sweep_grids.png"))
    figures["samples of every cell"] = "sweep_grids.png"

    strips = [(name, trajectory_strip(run_dir, script)) for name, run_dir in zip(names, run_dirs)]
    if any(strip is not None for _, strip in strips):
        save_trajectory_strips(
            strips, os.path.join(output_dir, "sweep_trajectories.png"), "Denoising of one fixed seed, noise to sample"
        )
        figures["denoising trajectory of one seed per cell"] = "sweep_trajectories.png"
    else:
        notes.append(f"No sweep_trajectories.png: no run folder holds {TRAJECTORY_FIGURES[script]}.")

    curves = [loss_curve_of_run(name, run_dir) for name, run_dir in zip(names, run_dirs)]
    save_sweep_loss_curves(curves, os.path.join(output_dir, "sweep_losses.png"))
    figures["training loss of every cell"] = "sweep_losses.png"
    if not any(os.path.isfile(os.path.join(run_dir, "losses.jsonl")) for run_dir in run_dirs):
        notes.append(
            "The runs keep no per-step losses: sweep_losses.png shows the mean training loss between held-out scores "
            "where the runs scored one, else each run's final loss."
        )
    return figures, notes
