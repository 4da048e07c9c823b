"""The loss of every optimizer step, kept on the device and read to the host in batches."""

import json
import math
import os
from collections.abc import Callable

import torch

from .disk_full import naming_a_full_disk


class DeferredLossLog:
    """
    Collects each optimizer step's loss as a device tensor and reads a batch of them with one host sync, so that the
    GPU is never waited on between reads. A read averages each step's loss over the processes, stops the run at the
    first non-finite one, appends the finite ones to `losses.jsonl` (main process) and sends them to the trackers.
    Every process reads at the same steps, so all of them stop together; read before every checkpoint, so that no
    checkpoint holds weights a non-finite loss updated.

    Args:
        accelerator (`accelerate.Accelerator`): The run's accelerator (for gather, log and the main process).
        losses_path (`str`): The JSON-lines file of {"loss", "lr", "step", ...} records.
        read_every (`int`): Read once this many steps are pending (`due`).
        log_to_trackers (`bool`): Also `accelerator.log` each record.
        non_finite_message (`Callable[[float, int], str]`): The error message for a non-finite loss at a step.
    """

    def __init__(
        self,
        accelerator,
        losses_path: str,
        read_every: int,
        log_to_trackers: bool,
        non_finite_message: Callable[[float, int], str],
    ):
        self.accelerator = accelerator
        self.losses_path = losses_path
        self.read_every = read_every
        self.log_to_trackers = log_to_trackers
        self.non_finite_message = non_finite_message
        self.pending = []  # (step, loss tensor, logs)

    def add(self, step: int, loss: torch.Tensor, logs: dict) -> None:
        """One optimizer step's loss (a 0-dim tensor, any device) and what else to log with it."""
        self.pending.append((step, loss.detach(), logs))

    def due(self) -> bool:
        return len(self.pending) >= self.read_every

    def read(self) -> dict | None:
        """Read every pending loss (one host sync) and log them in step order; at a non-finite one, log the steps
        before it and raise `RuntimeError`. Returns the last record written, or None when nothing was pending."""
        if not self.pending:
            return None
        stacked = torch.stack([loss.float() for _, loss, _ in self.pending])[None]
        step_losses = self.accelerator.gather(stacked).mean(dim=0).tolist()
        records, bad = [], None
        for (step, _, logs), step_loss in zip(self.pending, step_losses):
            if not math.isfinite(step_loss):
                bad = (step_loss, step)
                break
            records.append({"loss": step_loss, **logs, "step": step})
        self.pending = []
        if self.log_to_trackers:
            for record in records:
                self.accelerator.log(record, step=record["step"])
        if self.accelerator.is_main_process and records:
            with naming_a_full_disk(self.losses_path, kept="the checkpoints written so far are kept"):
                with open(self.losses_path, "a") as f:
                    f.writelines(json.dumps(record) + "\n" for record in records)
        if bad is not None:  # the finite steps before it are logged; the run stops here
            raise RuntimeError(self.non_finite_message(*bad))
        return records[-1]

    def forget_after(self, step: int) -> None:
        """On resume from a checkpoint at `step`: drop the records of later steps, which run again (main process)."""
        if not self.accelerator.is_main_process or not os.path.exists(self.losses_path):
            return
        with open(self.losses_path) as f:
            kept = [line for line in f if json.loads(line)["step"] <= step]
        with open(self.losses_path, "w") as f:
            f.writelines(kept)


def read_losses(losses_path: str, up_to_step: int | None = None) -> list[float]:
    """The losses recorded in `losses_path`, in step order; only those of steps <= `up_to_step` when it is given."""
    with open(losses_path) as f:
        records = [json.loads(line) for line in f]
    return [record["loss"] for record in records if up_to_step is None or record["step"] <= up_to_step]


def final_loss(losses: list[float]) -> float:
    """metrics.json's `final_loss`: the mean loss of the last 100 steps (fewer when the run is shorter)."""
    last = losses[-100:]
    return sum(last) / len(last)
