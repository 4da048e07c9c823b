"""The time and throughput record of a training run: what metrics.json reports about speed."""

import time
from contextlib import contextmanager

import torch


class ThroughputRecord:
    """
    Times a training loop: images seen, the first step apart (compile and other warm-up), the sampling of figures
    during training apart (it is not training), and on CUDA the peak memory of the loop.

    Call `start()` before the loop, `add_images(n)` per batch, `first_step_done()` once the first step's work is known
    to be done (after its loss was read), wrap figure sampling in `with record.excluded():`, and `finish()` once the
    last step's work is done. `metrics()` then gives the fields of metrics.json.

    Args:
        device (`torch.device`): The training device; on CUDA, queued work is waited for before each reading.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.images_seen = 0
        self.steps = 0
        self.first_step_seconds = None
        self.first_step_images = 0
        self.excluded_seconds = 0.0
        self.train_seconds = None
        self.peak_memory_bytes = None

    def _now(self) -> float:
        if self.device.type == "cuda":  # queued work belongs to the span it was queued in
            torch.cuda.synchronize(self.device)
        return time.time()

    def start(self) -> None:
        self.start_time = self._now()

    def add_images(self, count: int) -> None:
        self.images_seen += count

    def step_done(self) -> None:
        self.steps += 1

    def first_step_done(self) -> None:
        """Record the time to the end of this run's first step (call when its loss has been read)."""
        if self.first_step_seconds is None:
            self.first_step_seconds = self._now() - self.start_time - self.excluded_seconds
            self.first_step_images = self.images_seen

    @contextmanager
    def excluded(self):
        """Time spent in the block (sampling figures during training) is not training time."""
        begin = self._now()
        try:
            yield
        finally:
            self.excluded_seconds += self._now() - begin

    def finish(self) -> None:
        self.train_seconds = self._now() - self.start_time - self.excluded_seconds
        if self.device.type == "cuda":  # the training loop's peak, before the final sampling
            self.peak_memory_bytes = torch.cuda.max_memory_allocated(self.device)

    def metrics(self) -> dict:
        """train_seconds, sample_grid_seconds, images_per_second, first_step_seconds,
        images_per_second_after_first_step (None for a run of one step) and peak_gpu_memory_gib (None off CUDA). Before
        `finish()` (a save during training), the training time so far."""
        train_seconds = self.train_seconds
        if train_seconds is None:
            train_seconds = self._now() - self.start_time - self.excluded_seconds
        after_first = train_seconds - (self.first_step_seconds or 0)
        return {
            "train_seconds": round(train_seconds, 2),
            "sample_grid_seconds": round(self.excluded_seconds, 2),
            "images_per_second": round(self.images_seen / max(train_seconds, 1e-9), 1),
            "first_step_seconds": None if self.first_step_seconds is None else round(self.first_step_seconds, 2),
            "images_per_second_after_first_step": (
                round((self.images_seen - self.first_step_images) / after_first, 1)
                if self.steps > 1 and after_first > 0
                else None
            ),
            "peak_gpu_memory_gib": None
            if self.peak_memory_bytes is None
            else round(self.peak_memory_bytes / 2**30, 3),
        }
