"""DiffusionPipeline for image DDPMs, unconditional or class-conditional with classifier-free guidance.

This file imports only torch, numpy, PIL and diffusers so that it can travel next to a saved model.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class DDPMCFGPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` (N, H, W, C) in [0, 1], or `torch.Tensor` (N, C, H, W) in
            [0, 1]): The generated images.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class DDPMCFGPipeline(DiffusionPipeline):
    """
    Samples images from a `UNet2DModel` DDPM. A class-conditional U-Net (`num_class_embeds = K + 1`) was trained
    with the last id K as the null condition; sampling then uses classifier-free guidance,
    eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond), with both passes in one batched forward. The
    course's omega is guidance_scale - 1.

    Args:
        unet (`UNet2DModel`): The noise network.
        scheduler: `ddpm_hf.ExtendedDDPMScheduler` or any diffusers scheduler made with `from_config`.
        id2label (`dict[int, str]`, *optional*): Class names by id, saved in model_index.json.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["sample", "pred_original_sample"]

    def __init__(self, unet, scheduler, id2label: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        id2label = {int(key): str(value) for key, value in id2label.items()} if id2label else None
        self.register_to_config(id2label=id2label)

    @property
    def num_classes(self) -> int | None:
        """K, the number of real classes, or None for an unconditional model."""
        num_class_embeds = self.unet.config.num_class_embeds
        return None if num_class_embeds is None else num_class_embeds - 1

    @property
    def id2label(self) -> dict[int, str]:
        stored = self.config.id2label
        if stored:
            return {int(key): value for key, value in stored.items()}
        return {index: str(index) for index in range(self.num_classes or 0)}

    def class_ids(self, class_labels, batch_size: int) -> torch.Tensor | None:
        """Turn ids or class names (one for all images, or one per image) into a tensor of ids."""
        if class_labels is None:
            return None
        if self.num_classes is None:
            raise ValueError(
                "This model is unconditional (its U-Net has no class embedding); call it without class_labels."
            )
        values = class_labels.tolist() if isinstance(class_labels, torch.Tensor) else class_labels
        if isinstance(values, (int, str)):
            values = [values] * batch_size
        values = list(values)
        if len(values) != batch_size:
            raise ValueError(f"Got {len(values)} class_labels for batch_size {batch_size}; give one or {batch_size}.")
        label2id = {name: index for index, name in self.id2label.items()}
        ids = []
        for value in values:
            if isinstance(value, str) and value in label2id:
                ids.append(label2id[value])
            elif (
                isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < self.num_classes
            ):
                ids.append(int(value))
            else:
                raise ValueError(
                    f"Unknown class {value!r}; valid ids are 0..{self.num_classes - 1} and valid names are "
                    f"{list(label2id)}."
                )
        return torch.tensor(ids, dtype=torch.long)

    def check_inputs(self, batch_size, num_inference_steps, guidance_scale, output_type):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        num_train_timesteps = self.scheduler.config.num_train_timesteps
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be an integer in 1..{num_train_timesteps} (the scheduler's "
                f"num_train_timesteps), got {num_inference_steps!r}."
            )
        if not isinstance(guidance_scale, (int, float)) or not guidance_scale >= 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {guidance_scale!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {list(OUTPUT_TYPES)}, got {output_type!r}.")
        if self.scheduler.config.get("prediction_type") == "mean" and not hasattr(
            self.scheduler, "get_x0_and_epsilon"
        ):
            raise ValueError(
                f"This model predicts the posterior mean (prediction_type='mean'), which "
                f"{type(self.scheduler).__name__} cannot step; sample it with ExtendedDDPMScheduler."
            )

    @torch.no_grad()
    def __call__(
        self,
        class_labels: int | str | list[int | str] | torch.Tensor | None = None,
        batch_size: int | None = None,
        guidance_scale: float = 3.0,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> DDPMCFGPipelineOutput | tuple:
        """
        Args:
            class_labels (`int`, `str`, list of them, or `torch.Tensor`, *optional*): Class ids or names, one for
                the whole batch or one per image. Leave out for unconditional sampling.
            batch_size (`int`, *optional*): Number of images; defaults to len(class_labels) or 1.
            guidance_scale (`float`, defaults to 3.0): s in eps_uncond + s * (eps_cond - eps_uncond); the course's
                omega is s - 1. With s = 1 (or 0, or no labels) only one pass runs per step.
            num_inference_steps (`int`, *optional*): Reverse steps; defaults to the scheduler's num_train_timesteps.
            generator (`torch.Generator`, *optional*): Makes sampling deterministic.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (N, H, W, C) in [0, 1], or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`DDPMCFGPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): Called as `callback(pipe, step_index, timestep,
                callback_kwargs)` after every step with the tensors named in `callback_on_step_end_tensor_inputs`
                (`"sample"`: x_t after the step, `"pred_original_sample"`: the x0 prediction); may return a dict
                that replaces `"sample"`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Defaults to `["sample"]`.

        Example:
            ```py
            >>> import torch
            >>> from ddpm_hf import DDPMCFGPipeline

            >>> pipe = DDPMCFGPipeline.from_pretrained("outputs/digits")
            >>> images = pipe(class_labels=["3", "7"], guidance_scale=3.0, generator=torch.manual_seed(0)).images
            ```
        """
        if batch_size is None:
            is_sequence = isinstance(class_labels, (list, tuple, torch.Tensor))
            batch_size = len(class_labels) if is_sequence else 1
        if num_inference_steps is None:
            num_inference_steps = self.scheduler.config.num_train_timesteps
        self.check_inputs(batch_size, num_inference_steps, guidance_scale, output_type)
        tensor_inputs = callback_on_step_end_tensor_inputs or ["sample"]
        unknown = [name for name in tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"Unknown callback tensor inputs {unknown}; choose from {self._callback_tensor_inputs}.")

        device = self._execution_device
        class_ids = self.class_ids(class_labels, batch_size)
        if class_ids is None and self.num_classes is not None:
            class_ids = torch.full((batch_size,), self.num_classes, dtype=torch.long)  # the null class
            guidance_scale = 1.0
        use_guidance = class_ids is not None and guidance_scale != 1.0
        if use_guidance and guidance_scale == 0:
            class_ids = torch.full_like(class_ids, self.num_classes)
            use_guidance = False
        if class_ids is not None:
            class_ids = class_ids.to(device)
            model_class_ids = (
                torch.cat([class_ids, torch.full_like(class_ids, self.num_classes)]) if use_guidance else class_ids
            )

        config = self.unet.config
        shape = (batch_size, config.in_channels, config.sample_size, config.sample_size)
        sample = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        sample = sample * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=device)

        for step_index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = self.scheduler.scale_model_input(sample, timestep)
            if use_guidance:
                model_input = torch.cat([model_input, model_input])
            model_output = self.unet(
                model_input, timestep, class_labels=model_class_ids if class_ids is not None else None
            ).sample
            if use_guidance:
                conditional, unconditional = model_output.chunk(2)
                model_output = unconditional + guidance_scale * (conditional - unconditional)
            step = self.scheduler.step(model_output, timestep, sample, generator=generator)
            sample = step.prev_sample
            if callback_on_step_end is not None:
                available = {"sample": sample, "pred_original_sample": getattr(step, "pred_original_sample", None)}
                callback_kwargs = {name: available[name] for name in tensor_inputs}
                returned = callback_on_step_end(self, step_index, timestep, callback_kwargs) or {}
                sample = returned.get("sample", sample)

        images = (sample / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return DDPMCFGPipelineOutput(images=images)
