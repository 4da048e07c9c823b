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


def image_size(sample_size) -> tuple[int, int]:
    """(height, width) of a U-Net's `sample_size`: one side for square images, or [height, width] as diffusers allows;
    anything else is refused."""
    if is_integer(sample_size) and sample_size >= 1:
        return int(sample_size), int(sample_size)
    if (
        isinstance(sample_size, (list, tuple))
        and len(sample_size) == 2
        and all(is_integer(side) and side >= 1 for side in sample_size)
    ):
        return int(sample_size[0]), int(sample_size[1])
    raise ValueError(
        f"The U-Net's sample_size is {short_repr(sample_size)}; the pipeline needs the image size there: an integer "
        ">= 1 (square images) or [height, width]."
    )


def check_unet_output_channels(config) -> None:
    """The U-Net must predict one value per input channel: a model that also predicts its variance (out_channels =
    2 * in_channels, as in improved DDPM) is not one these pipelines can guide or step with other samplers."""
    out_channels = config.get("out_channels", config.in_channels)
    if out_channels != config.in_channels:
        raise ValueError(
            f"The U-Net has out_channels={out_channels} for in_channels={config.in_channels}; this pipeline "
            "samples U-Nets whose out_channels equal their in_channels (one prediction per channel; a learned "
            "variance, out_channels = 2 * in_channels, is not supported)."
        )


def check_callback(callback, tensor_inputs, allowed: list[str]) -> None:
    """`callback_on_step_end` is None or callable, and `callback_on_step_end_tensor_inputs` a list of known names."""
    if callback is not None and not callable(callback):
        raise ValueError(
            "callback_on_step_end must be a function called as callback(pipe, step_index, timestep, "
            f"callback_kwargs), got {short_repr(callback)} ({type(callback).__name__})."
        )
    if tensor_inputs is None:
        return
    if not isinstance(tensor_inputs, (list, tuple)):
        raise ValueError(
            f"callback_on_step_end_tensor_inputs must be a list of names from {allowed}, got "
            f"{short_repr(tensor_inputs)}."
        )
    unknown = [name for name in tensor_inputs if name not in allowed]
    if unknown:
        raise ValueError(f"Unknown callback tensor inputs {short_repr(unknown)}; choose from {allowed}.")


def callback_sample(returned, sample: torch.Tensor, step_index: int, allowed: list[str]) -> torch.Tensor:
    """
    The x_t to continue from after `callback_on_step_end` returned `returned`: its `"sample"`, else `sample`. As in
    diffusers, a callback returns a dict of tensors (None counts as an empty one); its keys must be among the tensor
    inputs it could be given, and a returned `"sample"` must be a tensor of the sample's shape, dtype and device.
    """
    if returned is None:
        return sample
    if not isinstance(returned, dict):
        raise ValueError(
            f"callback_on_step_end returned {short_repr(returned)} ({type(returned).__name__}) at step {step_index}; "
            f"it must return a dict (keys from {allowed}; 'sample' replaces x_t) or None."
        )
    unknown = [key for key in returned if key not in allowed]
    if unknown:
        raise ValueError(
            f"callback_on_step_end returned the key(s) {short_repr(unknown)} at step {step_index}; allowed keys are "
            f"{allowed} ('sample' replaces x_t)."
        )
    if "sample" not in returned:
        return sample
    new_sample = returned["sample"]
    if not isinstance(new_sample, torch.Tensor):
        raise ValueError(
            f"callback_on_step_end returned a 'sample' of type {type(new_sample).__name__} at step {step_index}; it "
            f"must be a torch.Tensor of shape {tuple(sample.shape)}, {sample.dtype}, on {sample.device}."
        )
    if new_sample.shape != sample.shape or new_sample.dtype != sample.dtype or new_sample.device != sample.device:
        raise ValueError(
            f"callback_on_step_end returned a 'sample' of shape {tuple(new_sample.shape)}, {new_sample.dtype}, on "
            f"{new_sample.device} at step {step_index}; it must have x_t's shape {tuple(sample.shape)}, dtype "
            f"{sample.dtype} and device {sample.device}."
        )
    return new_sample
