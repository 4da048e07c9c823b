"""Named samplers: the schedulers a trained DDPM can be sampled with, built from its own scheduler config."""

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from ..pipelines.input_checks import check_scheduler_can_step
from .scheduling_ddpm_ext import ExtendedDDPMScheduler

# name -> (scheduler class, config overrides, default number of steps)
SAMPLERS = {
    "ddpm": (ExtendedDDPMScheduler, {}, None),  # None: all num_train_timesteps
    # DDIM re-derives epsilon from the clipped x0; with guidance that epsilon is far off and samples collapse (digits
    # model, s = 3, 50 steps: 17% conditional accuracy with clipping, 100% without; docs/PIPELINE.md).
    "ddim": (DDIMScheduler, {"clip_sample": False}, 50),
    "dpm_solver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}, 20),
}


def make_sampler(name: str, scheduler_config):
    """
    A scheduler of sampler `name` with the noise schedule and prediction type of `scheduler_config`.

    Args:
        name (`str`): One of `SAMPLERS`: `"ddpm"` (ancestral, the training scheduler), `"ddim"` (deterministic,
            eta 0), `"dpm_solver++"` (second-order multistep).
        scheduler_config: The `config` of the pipeline's scheduler.

    Example:
        ```py
        >>> pipe.scheduler = make_sampler("dpm_solver++", pipe.scheduler.config)
        >>> steps = default_num_steps("dpm_solver++", pipe.scheduler.config.num_train_timesteps)
        >>> images = pipe(class_labels=[3], num_inference_steps=steps).images
        ```
    """
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; choose from {list(SAMPLERS)}.")
    scheduler_class, overrides, _ = SAMPLERS[name]
    sampler = scheduler_class.from_config(scheduler_config, **overrides)
    check_scheduler_can_step(sampler)  # a posterior-mean model steps with the 'ddpm' sampler only
    return sampler


def default_num_steps(name: str, num_train_timesteps: int) -> int:
    """
    The usual number of steps of sampler `name`: all T for DDPM, 50 for DDIM, 20 for DPM-Solver++; at most T, and at
    most T // 2 for DPM-Solver++, whose evenly spaced timesteps are rounded to integers and repeat beyond that (a
    repeated timestep divides by zero: T = 20 with 20 steps gives 10 twice).
    """
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; choose from {list(SAMPLERS)}.")
    steps = SAMPLERS[name][2]
    if steps is None:
        return num_train_timesteps
    limit = max(num_train_timesteps // 2, 1) if name == "dpm_solver++" else num_train_timesteps
    return min(steps, limit)
