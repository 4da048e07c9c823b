"""DiffusionPipeline for image DDPMs: unconditional, class-conditional or multi-label, with classifier-free guidance.

This file and the modules it imports relatively (class_conditions, compiled_sampling, input_checks, portable_folder,
samplers) import only torch, numpy, PIL, diffusers and huggingface_hub, so that they can travel next to a saved model.
"""

import inspect
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import DDPMPipeline, DDPMScheduler, DiffusionPipeline, UNet2DModel
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor

from .class_conditions import check_id2label, encode_class_labels, null_conditions
from .compiled_sampling import CompiledSampler, check_compiled_sampling_support, compile_denoising_step
from .input_checks import (
    callback_sample,
    check_batch_size,
    check_callback,
    check_finite,
    check_generator,
    check_num_inference_steps,
    check_output_type,
    check_scheduler_can_step,
    check_unet_output_channels,
    image_size,
)
from .portable_folder import PortableFolderMixin, check_safe_serialization, module_source_files, upload_saved_folder
from .samplers import make_sampler

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "numpy", "pt")  # "numpy" is "np", as diffusers' DDPMPipeline takes it


@dataclass
class DDPMCFGPipelineOutput(BaseOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` (N, H, W, C) in [0, 1], or `torch.Tensor` (N, C, H, W) in
            [0, 1]): The generated images.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class DDPMCFGPipeline(PortableFolderMixin, DiffusionPipeline):
    """
    Samples images from a `UNet2DModel` DDPM. A class-conditional U-Net (`num_class_embeds = K + 1`) was trained
    with the last id K as the null condition; a multi-label U-Net (`MultiLabelUNet2DModel`, `num_labels = K`) takes a
    multi-hot vector with a row of zeros as the null condition. Sampling then uses classifier-free guidance,
    eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond), with both passes in one batched forward. The
    course's omega is guidance_scale - 1. Saved folders carry their source and load in plain diffusers with
    `trust_remote_code=True` (`PortableFolderMixin`); an unconditional model of diffusers' own U-Net and DDPM
    schedule can also be saved as diffusers' `DDPMPipeline` (`save_pretrained(..., as_ddpm_pipeline=True)`).

    Args:
        unet (`UNet2DModel`): The noise network; its `sample_size` (one side, or [height, width]) is the image size.
        scheduler: `ddpm_hf.ExtendedDDPMScheduler` or any diffusers scheduler made with `from_config`.
        id2label (`dict[int, str]`, *optional*): Class names by id, saved in model_index.json: one name for each id
            0..K-1 of the U-Net's K classes (labels), each given once and not empty; none for an unconditional U-Net.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["sample", "pred_original_sample"]

    def __init__(self, unet, scheduler, id2label: dict | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        if unet is not None:  # checked against the U-Net it describes: a hand-edited model_index.json is refused here
            image_size(unet.config.sample_size)
            check_unet_output_channels(unet.config)
            id2label = check_id2label(id2label, self.num_classes, self.is_multi_label)
        self.register_to_config(id2label=id2label or None)
        self._compiled_step = None
        self._ddpm_scheduler = scheduler  # the model's own DDPM scheduler, which set_sampler builds every sampler from

    @property
    def is_multi_label(self) -> bool:
        """True for a U-Net conditioned on a multi-hot vector (several labels per image, e.g. i-CLEVR)."""
        return "num_labels" in self.unet.config

    @property
    def num_classes(self) -> int | None:
        """K, the number of real classes (of labels, for a multi-label model), or None for an unconditional model."""
        if self.is_multi_label:
            return self.unet.config.num_labels
        num_class_embeds = self.unet.config.num_class_embeds
        return None if num_class_embeds is None else num_class_embeds - 1

    @property
    def id2label(self) -> dict[int, str]:
        stored = self.config.id2label
        if stored:  # in id order (model_index.json sorts its keys as strings: "0", "1", "10", "11", ..., "2")
            return {int(key): stored[key] for key in sorted(stored, key=int)}
        return {index: str(index) for index in range(self.num_classes or 0)}

    def encode_conditions(self, class_labels, batch_size: int) -> torch.Tensor | None:
        """The U-Net's condition for `class_labels` (ids or names; label lists for a multi-label model): class ids
        (batch_size,), or multi-hot rows (batch_size, K). None when `class_labels` is None."""
        return encode_class_labels(class_labels, batch_size, self.id2label, self.num_classes, self.is_multi_label)

    def enable_compiled_sampling(
        self,
        mode: str | None = "reduce-overhead",
        backend: str = "inductor",
        channels_last: bool | None = None,
        fullgraph: bool = False,
    ):
        """
        Sample through one `torch.compile`d denoising step (U-Net, guidance mix and the scheduler's DDPM update), so
        that every step replays the same compiled graph; with `mode="reduce-overhead"` on CUDA, one CUDA graph. Gives
        the plain loop's images up to float rounding. Needs `ExtendedDDPMScheduler` with a fixed variance and no
        dynamic thresholding; other schedulers keep the plain loop. The first call pays the compile time, and so does
        the first call with a new batch size or with guidance switched on or off.

        Args:
            mode (`str`, *optional*, defaults to `"reduce-overhead"`): `torch.compile` mode.
            backend (`str`, defaults to `"inductor"`): `torch.compile` backend.
            channels_last (`bool`, *optional*): Put the U-Net in channels_last memory format; default: on CUDA.
            fullgraph (`bool`, defaults to `False`): Raise instead of splitting the step where torch.compile cannot
                trace it (a check to find out whether a model compiles into one graph).
        """
        check_compiled_sampling_support(self.scheduler)
        if channels_last is None:
            channels_last = self._execution_device.type == "cuda"
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self._compiled_step = compile_denoising_step(self, mode=mode, backend=backend, fullgraph=fullgraph)

    def disable_compiled_sampling(self):
        """Go back to the plain loop (`scheduler.step` after each U-Net call)."""
        self._compiled_step = None

    def set_sampler(self, name: str):
        """
        Sample with the named sampler (`samplers.SAMPLERS`): `"ddpm"` (the model's own DDPM scheduler, ancestral),
        `"ddim"` (eta 0, no x0 clipping) or `"dpm_solver++"` (second order), built from the model's own scheduler
        config, whatever sampler was set before. A posterior-mean model can only be stepped by `"ddpm"`.

        Example:
            ```py
            >>> pipe.set_sampler("dpm_solver++")
            >>> images = pipe(class_labels=["3"], num_inference_steps=20).images
            ```
        """
        if isinstance(self.scheduler, DDPMScheduler):  # the model's DDPM scheduler, or a DDPM one put in its place
            self._ddpm_scheduler = self.scheduler
        ddpm_class = type(self._ddpm_scheduler)
        if not issubclass(ddpm_class, DDPMScheduler):
            ddpm_class = DDPMScheduler
        self.scheduler = make_sampler(name, self._ddpm_scheduler.config, ddpm_class)

    def ddpm_pipeline_obstacle(self) -> str | None:
        """Why diffusers' own `DDPMPipeline` could not sample this model as this pipeline does, or None when it can:
        it runs an unconditional `UNet2DModel` with diffusers' `DDPMScheduler`, which knows every prediction type but
        the posterior mean."""
        scheduler = self._ddpm_scheduler
        if type(self.unet) is not UNet2DModel:
            return f"its U-Net is a {type(self.unet).__name__}, not diffusers' UNet2DModel"
        if self.num_classes is not None or self.unet.config.class_embed_type is not None:
            return "it is class-conditional"
        if not isinstance(scheduler, DDPMScheduler):
            return f"its scheduler is a {type(scheduler).__name__}, not a DDPM scheduler"
        if scheduler.config.prediction_type not in ("epsilon", "sample", "v_prediction"):
            return f"it predicts {scheduler.config.prediction_type!r}, which diffusers' DDPMScheduler cannot step"
        return None

    def to_ddpm_pipeline(self) -> DDPMPipeline:
        """
        diffusers' own `DDPMPipeline` with this U-Net (shared, not copied) and the model's DDPM schedule as diffusers'
        `DDPMScheduler`: for the same seed and steps it gives this pipeline's images bit for bit in float32. Only for
        an unconditional `UNet2DModel` that does not predict the posterior mean; otherwise a `ValueError` says why.
        """
        obstacle = self.ddpm_pipeline_obstacle()
        if obstacle is not None:
            raise ValueError(f"This model cannot be a diffusers DDPMPipeline: {obstacle}. Save it as it is instead.")
        return DDPMPipeline(unet=self.unet, scheduler=DDPMScheduler.from_config(self._ddpm_scheduler.config))

    def save_pretrained(
        self,
        save_directory,
        safe_serialization: bool = True,
        variant: str | None = None,
        push_to_hub: bool = False,
        as_ddpm_pipeline: bool = False,
        **kwargs,
    ):
        """
        Saves the pipeline with its source copies (`PortableFolderMixin.save_pretrained`), or with
        `as_ddpm_pipeline=True` as diffusers' own `DDPMPipeline` (`to_ddpm_pipeline`): a folder with no code that
        `DDPMPipeline.from_pretrained` and `DiffusionPipeline.from_pretrained` load as it is, and this class too.

        Args:
            save_directory (`str` or `os.PathLike`): The folder to write.
            safe_serialization (`bool`, defaults to `True`): Must stay `True`: weights are saved as safetensors only.
            variant (`str`, *optional*): Weights variant, as in diffusers.
            push_to_hub (`bool`, defaults to `False`): Also upload the folder (`repo_id`, `token`, `private`,
                `commit_message` and `create_pr` are read from the keyword arguments).
            as_ddpm_pipeline (`bool`, defaults to `False`): Write diffusers' `DDPMPipeline` layout; a model that needs
                this pipeline (`ddpm_pipeline_obstacle`) is refused with the reason.
        """
        if not as_ddpm_pipeline:
            return super().save_pretrained(save_directory, safe_serialization, variant, push_to_hub, **kwargs)
        check_safe_serialization(safe_serialization)
        self.to_ddpm_pipeline().save_pretrained(save_directory, safe_serialization=True, variant=variant)
        # the sampler table beside it (diffusers ignores it), so that the Space offers DDIM and DPM-Solver++ for it
        for source_file in module_source_files(inspect.getsourcefile(make_sampler)):
            shutil.copy(source_file, os.path.join(save_directory, os.path.basename(source_file)))
        if push_to_hub:
            upload_saved_folder(save_directory, "DDPMPipeline", **kwargs)

    def guided_model_output(self, sample, timestep, conditions, guidance_scale, use_guidance: bool):
        """The U-Net's output at x_t; with guidance, eps_uncond + s * (eps_cond - eps_uncond) from one batched forward
        whose second half holds the null conditions."""
        model_input = torch.cat([sample, sample]) if use_guidance else sample
        model_output = self.unet(model_input, timestep, class_labels=conditions).sample
        if not use_guidance:
            return model_output
        conditional, unconditional = model_output.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    def check_inputs(
        self,
        batch_size,
        num_inference_steps,
        guidance_scale,
        output_type,
        generator=None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=None,
    ):
        check_batch_size(batch_size)
        check_num_inference_steps(num_inference_steps, self.scheduler.config.num_train_timesteps)
        if not isinstance(guidance_scale, (int, float)) or isinstance(guidance_scale, bool):
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {type(guidance_scale).__name__}.")
        if not 0 <= guidance_scale < float("inf"):
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}.")
        check_output_type(output_type, OUTPUT_TYPES)
        check_generator(generator, batch_size)
        check_scheduler_can_step(self.scheduler)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)

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
                the whole batch or one per image. For a multi-label model: one list of label names or ids per image
                (or a single list in a list, for all images), or a multi-hot tensor (N, K). Leave out for
                unconditional sampling.
            batch_size (`int`, *optional*): Number of images; defaults to len(class_labels) or 1.
            guidance_scale (`float`, defaults to 3.0): s in eps_uncond + s * (eps_cond - eps_uncond); the course's
                omega is s - 1. With s = 1 (or 0, or no labels) only one pass runs per step.
            num_inference_steps (`int`, *optional*): Reverse steps; defaults to the scheduler's num_train_timesteps.
            generator (`torch.Generator` or a list of one per image, *optional*): Makes sampling deterministic.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (or `"numpy"`; N, H, W, C in [0, 1]), or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`DDPMCFGPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): Called as `callback(pipe, step_index, timestep,
                callback_kwargs)` after every step with the tensors named in `callback_on_step_end_tensor_inputs`
                (`"sample"`: x_t after the step, `"pred_original_sample"`: the x0 prediction). Returns None or a dict
                whose keys are among those names; a `"sample"` there (a tensor of x_t's shape, dtype and device)
                replaces x_t. Anything else is refused with a `ValueError`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): Defaults to `["sample"]`.

        Example:
            ```py
            >>> import torch
            >>> from ddpm_hf import DDPMCFGPipeline

            >>> pipe = DDPMCFGPipeline.from_pretrained("outputs/digits")
            >>> images = pipe(class_labels=["3", "7"], guidance_scale=3.0, generator=torch.manual_seed(0)).images
            ```
        """
        # 0. inputs
        if batch_size is None:
            is_sequence = isinstance(class_labels, (list, tuple)) or getattr(class_labels, "ndim", 0) >= 1
            batch_size = len(class_labels) if is_sequence else 1
        if num_inference_steps is None:
            num_inference_steps = self.scheduler.config.num_train_timesteps
        self.check_inputs(
            batch_size,
            num_inference_steps,
            guidance_scale,
            output_type,
            generator,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        tensor_inputs = callback_on_step_end_tensor_inputs or ["sample"]

        # 1. conditions: the labels, then the null conditions for the guidance pass
        device = self._execution_device
        conditions = self.encode_conditions(class_labels, batch_size)
        if self.num_classes is not None and (conditions is None or guidance_scale == 0):
            conditions = null_conditions(batch_size, self.num_classes, self.is_multi_label)
            guidance_scale = 1.0  # unconditional: one pass with the null condition
        use_guidance = conditions is not None and guidance_scale != 1.0
        if conditions is not None:
            if use_guidance:
                conditions = torch.cat(
                    [conditions, null_conditions(batch_size, self.num_classes, self.is_multi_label)]
                )
            conditions = conditions.to(device, self.unet.dtype if conditions.is_floating_point() else torch.long)

        # 2. x_T and the chain of timesteps
        shape = (batch_size, self.unet.config.in_channels, *image_size(self.unet.config.sample_size))
        sample = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        sample = sample * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        compiled = self._compiled_sampler(sample, guidance_scale)

        # 3. the reverse process: model output, then the scheduler's update (one compiled graph, or step by step)
        for step_index, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            if compiled is not None:
                sample, pred_original_sample = compiled.step(
                    step_index, timestep, sample, conditions, use_guidance, generator
                )
            else:
                model_input = self.scheduler.scale_model_input(sample, timestep)
                model_output = self.guided_model_output(
                    model_input, timestep, conditions, guidance_scale, use_guidance
                )
                step = self.scheduler.step(model_output, timestep, sample, generator=generator)
                sample, pred_original_sample = step.prev_sample, getattr(step, "pred_original_sample", None)
            if callback_on_step_end is not None:
                available = {"sample": sample, "pred_original_sample": pred_original_sample}
                returned = callback_on_step_end(
                    self, step_index, timestep, {name: available[name] for name in tensor_inputs}
                )
                sample = callback_sample(returned, sample, step_index, self._callback_tensor_inputs)

        # 4. images
        check_finite(sample, guidance_scale if use_guidance else None)
        images = (sample / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return DDPMCFGPipelineOutput(images=images)

    def _compiled_sampler(self, sample: torch.Tensor, guidance_scale: float) -> CompiledSampler | None:
        """The compiled sampler for this call, when compiled sampling is on and the scheduler supports it."""
        if self._compiled_step is None:
            return None
        try:
            return CompiledSampler(self._compiled_step, self.scheduler, sample, guidance_scale)
        except ValueError as reason:
            logger.warning(f"{reason} Sampling with the plain loop.")
            return None
