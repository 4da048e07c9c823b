"""Sending a run's sample grids to its trackers (TensorBoard, wandb), beside the losses accelerate logs."""

import numpy as np


def log_images_to_trackers(accelerator, name: str, image, step: int) -> None:
    """
    Log one PIL image (a sample grid) under `name` at `step` to every tracker of `accelerator` that takes images:
    TensorBoard (`add_image`, HWC) and wandb (`wandb.Image`). Main process only; no tracker, no effect.
    """
    if not accelerator.is_main_process:
        return
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            array = np.asarray(image.convert("RGB"))
            tracker.writer.add_image(name, array, global_step=step, dataformats="HWC")
            tracker.writer.flush()
        elif tracker.name == "wandb":
            import wandb

            tracker.run.log({name: wandb.Image(image)}, step=step)
