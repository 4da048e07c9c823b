"""Named samplers: the schedulers a trained DDPM can be sampled with, built from its own scheduler config.

This is the one table of them. `DDPMCFGPipeline.set_sampler` uses it, the scripts reach it through `ddpm_hf.sampling`
(with ddpm_hf's `ExtendedDDPMScheduler` as the "ddpm" sampler), and the Gradio demo uses the copy that a saved model
folder carries. This file imports only diffusers and the input checks beside it, so that it can travel with a saved
model.
"""

from typing import NamedTuple

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from .input_checks import check_scheduler_can_step


class Sampler(NamedTuple):
    """One named sampler: the scheduler class and config overrides it is built with, and its usual steps."""

    title: str  # how the demo names it
    scheduler_class: type | None  # None: the model's own DDPM scheduler class
    config_overrides: dict
    num_steps: int | None  # the usual number of steps; None: all num_train_timesteps


SAMPLERS = {
    "ddpm": Sampler("DDPM", None, {}, None),
    # DDIM re-derives epsilon from the clipped x0; with guidance that epsilon is far off and samples collapse (digits
    # model, s = 3, 50 steps: 17% conditional accuracy with clipping, 100% without; docs/PIPELINE.md).
    "ddim": Sampler("DDIM", DDIMScheduler, {"clip_sample": False}, 50),
    "dpm_solver++": Sampler(
        "DPM-Solver++", DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}, 20
    ),
}


def check_sampler_name(name) -> None:
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; choose from {list(SAMPLERS)}.")


def make_sampler(name: str, scheduler_config, ddpm_scheduler_class: type = DDPMScheduler):
    """
    A scheduler of sampler `name` with the noise schedule and prediction type of `scheduler_config`.

    Args:
        name (`str`): One of `SAMPLERS`: `"ddpm"` (ancestral, the training scheduler), `"ddim"` (deterministic,
            eta 0), `"dpm_solver++"` (second-order multistep).
        scheduler_config: The `config` of the model's own (training) scheduler.
        ddpm_scheduler_class (`type`, defaults to diffusers' `DDPMScheduler`): The class of the `"ddpm"` sampler: the
            model's own DDPM scheduler class (ddpm_hf's `ExtendedDDPMScheduler` steps every prediction type).

    Example:
        ```py
        >>> pipe.scheduler = make_sampler("dpm_solver++", pipe.scheduler.config)
        >>> steps = default_num_steps("dpm_solver++", pipe.scheduler.config.num_train_timesteps)
        >>> images = pipe(class_labels=[3], num_inference_steps=steps).images
        ```
    """
    check_sampler_name(name)
    sampler = SAMPLERS[name]
    scheduler_class = sampler.scheduler_class or ddpm_scheduler_class
    scheduler = scheduler_class.from_config(scheduler_config, **sampler.config_overrides)
    check_scheduler_can_step(scheduler)  # a posterior-mean model steps with the 'ddpm' sampler only
    return scheduler


def default_num_steps(name: str, num_train_timesteps: int) -> int:
    """
    The usual number of steps of sampler `name`: all T for DDPM, 50 for DDIM, 20 for DPM-Solver++; at most T, and at
    most T // 2 for DPM-Solver++, whose evenly spaced timesteps are rounded to integers and repeat beyond that (a
    repeated timestep divides by zero: T = 20 with 20 steps gives 10 twice).
    """
    check_sampler_name(name)
    steps = SAMPLERS[name].num_steps
    if steps is None:
        return num_train_timesteps
    limit = max(num_train_timesteps // 2, 1) if name == "dpm_solver++" else num_train_timesteps
    return min(steps, limit)


def samplers_for(scheduler_config) -> list[str]:
    """The samplers that can step a model of `scheduler_config`: a posterior-mean model only its own DDPM scheduler."""
    if scheduler_config.get("prediction_type") == "mean":
        return ["ddpm"]
    return list(SAMPLERS)
