"""The checks the pipelines run on their inputs, each written once.

This file imports only torch, so that it can travel with a saved model.
"""

import numbers

import torch


def short_repr(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: error messages name a bad value without echoing a huge one."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def is_integer(value) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_batch_size(batch_size) -> None:
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")


def check_num_inference_steps(num_inference_steps, num_train_timesteps: int) -> None:
    if not is_integer(num_inference_steps) or not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(
            f"num_inference_steps must be an integer in 1..{num_train_timesteps} (the scheduler's "
            f"num_train_timesteps), got {num_inference_steps!r}."
        )


def check_output_type(output_type, allowed: tuple[str, ...]) -> None:
    if not isinstance(output_type, str) or output_type not in allowed:
        raise ValueError(f"output_type must be one of {list(allowed)}, got {output_type!r}.")


def check_generator(generator, batch_size: int) -> None:
    """One `torch.Generator`, or a list of them with one per image."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch_size or not all(isinstance(item, torch.Generator) for item in generator):
            raise ValueError(
                f"A list of generators must hold one torch.Generator per image: got {len(generator)} item(s) for "
                f"batch_size {batch_size}."
            )
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}.")


def check_scheduler_can_step(scheduler) -> None:
    """A model that predicts the posterior mean can be stepped only by the scheduler that defines that
    parameterisation (ddpm_hf's ExtendedDDPMScheduler, recognised by its per-step coefficients)."""
    if scheduler.config.get("prediction_type") == "mean" and not hasattr(scheduler, "step_coefficients"):
        raise ValueError(
            f"This model predicts the posterior mean (prediction_type='mean'), which {type(scheduler).__name__} "
            f"cannot step; sample it with ExtendedDDPMScheduler (the 'ddpm' sampler)."
        )


def check_finite(sample: torch.Tensor, guidance_scale: float | None = None) -> None:
    """Refuse to turn non-finite samples into (black) images: say what usually causes them."""
    if not torch.isfinite(sample).all():
        scale = "" if guidance_scale is None else f"guidance_scale={guidance_scale:g} may be too large for it, or "
        raise ValueError(
            f"Sampling produced non-finite values (NaN or inf), so there are no images to return: {scale}the model "
            f"or its dtype ({sample.dtype}) overflowed. Try a smaller guidance_scale, float32, or another sampler."
        )
