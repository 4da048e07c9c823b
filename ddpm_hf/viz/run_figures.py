"""The figures of an image training run: sample grids (a row per class or condition), the denoising GIF and grid, and
the loss curve."""

import os

import torch

from .images import denoising_grid, image_grid, save_denoising_gif, save_grid, tensor_to_pil
from .loss_curve import save_loss_curve


def grid_shape(num_classes: int | None) -> tuple[int, int]:
    """5x5 for unconditional models; one row per class or condition (up to 10) by 5 columns for conditional ones."""
    return (5, 5) if num_classes is None else (min(num_classes, 10), 5)


def sample_grid(
    pipeline,
    row_conditions: list | None,
    guidance_scale: float,
    num_inference_steps: int,
    seed: int,
    num_frames: int = 0,
    progress_desc: str | None = None,
):
    """
    The samples of a run's grid from a fixed seed, and `num_frames` snapshots of x_t through the reverse process.

    Args:
        pipeline (`DDPMCFGPipeline`): The model to sample (with the sampler it holds).
        row_conditions (`list`, *optional*): What each row asks for (class ids, or label-name lists); None for an
            unconditional model.
        guidance_scale (`float`): Classifier-free guidance scale s.
        num_inference_steps (`int`): Steps of the pipeline's sampler.
        seed (`int`): Seed of a CPU generator, so the grid is the same on any device.
        num_frames (`int`, defaults to 0): Snapshots of x_t to keep (evenly spaced, and the last step).
        progress_desc (`str`, *optional*): Show a progress bar with this label; None hides it.

    Returns:
        `tuple[torch.Tensor, list[torch.Tensor]]`: samples (N, C, H, W) in [-1, 1], and the snapshots.
    """
    rows, cols = grid_shape(pipeline.num_classes)
    class_labels = (
        None if row_conditions is None else [row_conditions[row] for row in range(rows) for _ in range(cols)]
    )
    frames, keep_every = [], max(num_inference_steps // max(num_frames, 1), 1)

    def keep_frame(pipe, step_index, timestep, callback_kwargs):
        if num_frames and (step_index % keep_every == 0 or step_index == num_inference_steps - 1):
            frames.append(callback_kwargs["sample"].clone())
        return {}

    pipeline.set_progress_bar_config(disable=progress_desc is None, desc=progress_desc, leave=False)
    images = pipeline(
        class_labels=class_labels,
        batch_size=rows * cols,
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        generator=torch.Generator(device="cpu").manual_seed(seed),
        output_type="pt",
        callback_on_step_end=keep_frame if num_frames else None,
    ).images
    return images * 2 - 1, frames


def save_epoch_grid(output_dir: str, samples: torch.Tensor, num_classes: int | None, epoch: int):
    """The grid of `samples` at their own size, as samples/epoch_NNNN.png; returns the grid image."""
    os.makedirs(os.path.join(output_dir, "samples"), exist_ok=True)
    rows, cols = grid_shape(num_classes)
    path = os.path.join(output_dir, "samples", f"epoch_{epoch:04d}.png")
    return save_grid(tensor_to_pil(samples), rows, cols, path)


def save_run_figures(
    output_dir: str,
    samples: torch.Tensor,
    frames: list[torch.Tensor],
    num_classes: int | None,
    losses: list[float],
    loss_title: str,
    heldout: list[dict] | None = None,
) -> None:
    """
    grid.png (enlarged to about 64 px per image), denoising.gif (the grid through the reverse process),
    denoising_grid.png (the first sample of each row through time: rows = samples, columns = time) and
    loss_curve.png (with the held-out loss of each `heldout` record {"step", "heldout_loss"}, when given), in
    `output_dir`.
    """
    rows, cols = grid_shape(num_classes)
    upscale = max(1, 64 // samples.shape[-1])
    save_loss_curve(losses, os.path.join(output_dir, "loss_curve.png"), title=loss_title, heldout=heldout)
    save_grid(tensor_to_pil(samples, upscale), rows, cols, os.path.join(output_dir, "grid.png"))
    gif_frames = [image_grid(tensor_to_pil(frame, upscale), rows, cols) for frame in frames]
    save_denoising_gif(gif_frames, os.path.join(output_dir, "denoising.gif"))
    first_of_rows = [frame[::cols] for frame in frames]
    denoising_grid(first_of_rows, num_samples=rows, num_columns=10, upscale=upscale).save(
        os.path.join(output_dir, "denoising_grid.png")
    )
