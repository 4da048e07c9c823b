"""The held-out noise loss: the training loss on samples never trained on, at noise and timesteps drawn once, so that
the figures of different epochs (and of different weights) compare."""

import json
import os

import torch

from .loss import diffusion_loss_at

HELDOUT_LOG = "heldout.jsonl"


class HeldoutLoss:
    """
    The training objective (`diffusion_loss_at`, same prediction target and loss weighting) on fixed held-out samples,
    each with one noise draw eps and one timestep t drawn once from `seed` on a CPU generator (the same on any device,
    and no draw taken from the training randomness).

    Args:
        clean_samples (`torch.Tensor`): The held-out x0 (N, ...) as the model takes them (images in [-1, 1]).
        model_kwargs (`dict`): The model's other inputs for all N samples (e.g. `class_labels`), never dropped.
        num_train_timesteps (`int`): T; each t is drawn uniformly from 0..T-1.
        seed (`int`): Seed of the noise and timesteps.
        batch_size (`int`, defaults to 256): Samples per forward pass.
        source (`str`, defaults to `""`): Where the samples come from, in words (for the records).
    """

    def __init__(
        self,
        clean_samples: torch.Tensor,
        model_kwargs: dict,
        num_train_timesteps: int,
        seed: int,
        batch_size: int = 256,
        source: str = "",
    ):
        if clean_samples.shape[0] == 0:
            raise ValueError("The held-out set holds no samples.")
        generator = torch.Generator(device="cpu").manual_seed(seed)
        self.clean_samples = clean_samples.float()
        self.model_kwargs = model_kwargs
        self.noise = torch.randn(clean_samples.shape, generator=generator).to(clean_samples.device)
        timesteps = torch.randint(0, num_train_timesteps, (clean_samples.shape[0],), generator=generator)
        self.timesteps = timesteps.to(clean_samples.device)
        self.batch_size = batch_size
        self.source = source

    def __len__(self) -> int:
        return self.clean_samples.shape[0]

    @torch.no_grad()
    def __call__(self, model, scheduler, loss_weighting: str = "auto") -> float:
        """
        The loss of `model` (called as in training, in float32 without autocast) over the held-out samples: the mean
        over all samples, summed in float64 from each batch's mean weighted by its size.
        """
        was_training = getattr(model, "training", False)
        if hasattr(model, "eval"):
            model.eval()
        total = 0.0
        for start in range(0, len(self), self.batch_size):
            batch = slice(start, start + self.batch_size)
            kwargs = {name: value[batch] for name, value in self.model_kwargs.items()}
            loss = diffusion_loss_at(
                model,
                scheduler,
                self.clean_samples[batch],
                self.noise[batch],
                self.timesteps[batch],
                loss_weighting,
                **kwargs,
            )
            total += loss.double().item() * self.clean_samples[batch].shape[0]
        if was_training:
            model.train()
        return total / len(self)


def read_heldout_log(output_dir: str, up_to_step: int | None = None) -> list[dict]:
    """The per-epoch records of `OUTPUT_DIR/heldout.jsonl` ({"epoch", "step", "train_loss", "heldout_loss"}), only
    those of steps <= `up_to_step` when it is given; [] when there is none."""
    path = os.path.join(output_dir, HELDOUT_LOG)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [record for record in records if up_to_step is None or record["step"] <= up_to_step]


def keep_heldout_log(output_dir: str, up_to_step: int) -> list[dict]:
    """On resume from a checkpoint at `up_to_step`: drop the records of later steps (they run again); returns the
    rest."""
    records = read_heldout_log(output_dir, up_to_step)
    with open(os.path.join(output_dir, HELDOUT_LOG), "w") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)
    return records


def append_heldout_log(output_dir: str, record: dict) -> None:
    with open(os.path.join(output_dir, HELDOUT_LOG), "a") as f:
        f.write(json.dumps(record) + "\n")
