"""Compiled sampling: each whole DDPM step (U-Net, guidance mix, scheduler update) as one `torch.compile`d graph.

The step reads its coefficients from the scheduler's float32 tables (`step_coefficient_tables`) through a step-index
tensor, so every step replays the same graph (with `mode="reduce-overhead"` on CUDA, one CUDA graph), and applies the
scheduler's own update function (`ddpm_update`): the DDPM formula is not written here. The noise of each step is drawn
outside the graph, from the same generator in the same order as `scheduler.step` draws it, so the compiled loop gives
the plain loop's images up to float rounding. This file imports only torch and diffusers, so that it can travel with a
saved model.
"""

import functools

import torch
from diffusers.utils.torch_utils import randn_tensor

# Variance types whose noise scale is a number per step (a learned variance depends on the model output)
FIXED_VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large")
COEFFICIENT_NAMES = ("alpha_prod_t", "alpha_prod_t_prev", "alpha_prod_t_train_prev", "noise_std")


def check_compiled_sampling_support(scheduler) -> None:
    """Compiled sampling needs ExtendedDDPMScheduler's per-step coefficients, a fixed variance and no thresholding."""
    if not hasattr(scheduler, "step_coefficient_tables"):
        raise ValueError(
            f"Compiled sampling runs the DDPM update of ExtendedDDPMScheduler; this pipeline has "
            f"{type(scheduler).__name__}. For a DDPMScheduler, set pipe.scheduler = "
            f"ExtendedDDPMScheduler.from_config(pipe.scheduler.config) (the same DDPM); for other samplers use the "
            f"plain loop (disable_compiled_sampling)."
        )
    if scheduler.config.variance_type not in FIXED_VARIANCE_TYPES or scheduler.config.thresholding:
        raise ValueError(
            f"Compiled sampling needs variance_type in {list(FIXED_VARIANCE_TYPES)} and no thresholding; this "
            f"scheduler has variance_type={scheduler.config.variance_type!r}, "
            f"thresholding={scheduler.config.thresholding}."
        )


def denoising_step(pipeline, sample, step_index, noise, conditions, guidance_scale, use_guidance, tables):
    """
    One whole reverse step as tensors only (no host sync): the pipeline's guided model output, then the scheduler's
    update with the coefficients of step `step_index` (a one-element tensor, so reading the tables is a gather on the
    device, never a Python integer). Returns (prev_sample, pred_original_sample).
    """
    scheduler = pipeline.scheduler
    timestep = tables["timesteps"].index_select(0, step_index)
    model_output = pipeline.guided_model_output(sample, timestep, conditions, guidance_scale, use_guidance)
    # 0-dim float32 coefficients: the update runs in float32 and returns the sample's dtype
    coefficients = {name: tables[name].index_select(0, step_index).reshape(()) for name in COEFFICIENT_NAMES}
    clip_sample_range = scheduler.config.clip_sample_range if scheduler.config.clip_sample else None
    return scheduler.ddpm_update(
        model_output, sample, noise, coefficients, scheduler.config.prediction_type, clip_sample_range
    )


class CompiledSampler:
    """
    Runs the steps of one sampling call through a compiled `denoising_step`.

    Args:
        compiled_step: `torch.compile(functools.partial(denoising_step, pipeline))` (see `compile_denoising_step`).
        scheduler: The pipeline's scheduler, after `set_timesteps`.
        sample (`torch.Tensor`): The starting noise x_T (its shape, dtype and device are those of every step).
        guidance_scale (`float`): Passed as a tensor, so that a new scale needs no recompile.
    """

    def __init__(self, compiled_step, scheduler, sample: torch.Tensor, guidance_scale: float):
        check_compiled_sampling_support(scheduler)
        device = sample.device
        self.compiled_step = compiled_step
        self.tables = scheduler.step_coefficient_tables(device)
        self.step_indices = torch.arange(len(scheduler.timesteps), device=device)[:, None]
        self.no_noise = torch.zeros_like(sample)
        self.guidance_scale = torch.tensor(float(guidance_scale), device=device)

    def step(self, step_index: int, timestep: int, sample, conditions, use_guidance: bool, generator):
        """x_t -> (x_prev, predicted x0) for step `step_index` of the chain, at training timestep `timestep`."""
        noise = self.no_noise
        if timestep > 0:  # drawn as scheduler.step draws it: same generator, same order, none at t = 0
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        torch.compiler.cudagraph_mark_step_begin()
        prev_sample, pred_original_sample = self.compiled_step(
            sample, self.step_indices[step_index], noise, conditions, self.guidance_scale, use_guidance, self.tables
        )
        # a CUDA graph's output buffers are overwritten by its next replay
        return prev_sample.clone(), pred_original_sample.clone()


def compile_denoising_step(pipeline, mode: str | None, backend: str, fullgraph: bool):
    """`denoising_step` bound to `pipeline` and compiled with static shapes."""
    step = functools.partial(denoising_step, pipeline)
    return torch.compile(step, mode=mode, backend=backend, fullgraph=fullgraph, dynamic=False)
