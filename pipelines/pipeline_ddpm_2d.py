"""DiffusionPipeline for DDPMs on low-dimensional points (the course's 2D toy lab).

This file and the modules it imports relatively (input_checks, portable_folder) import only torch, numpy, diffusers and
huggingface_hub, so that they can travel next to a saved model.
"""

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from .input_checks import (
    check_batch_size,
    check_finite,
    check_generator,
    check_num_inference_steps,
    check_output_type,
    check_scheduler_can_step,
)
from .portable_folder import PortableFolderMixin

OUTPUT_TYPES = ("np", "numpy", "pt")  # "numpy" is "np", as in diffusers


@dataclass
class DDPM2DPipelineOutput(BaseOutput):
    """
    Args:
        samples (`np.ndarray` or `torch.Tensor` of shape `(batch_size, sample_dim)`): The generated points.
        trajectory (`np.ndarray` or `torch.Tensor` of shape `(num_inference_steps + 1, batch_size, sample_dim)`,
            *optional*): x_T, then the sample after every reverse step (the last entry equals `samples`); only
            when `return_trajectory=True`.
    """

    samples: np.ndarray | torch.Tensor
    trajectory: np.ndarray | torch.Tensor | None = None


class DDPM2DPipeline(PortableFolderMixin, DiffusionPipeline):
    """
    Samples points from a DDPM whose noise network works on vectors, such as the 2D toy MLP. Saved folders carry the
    source of the pipeline, the model and the scheduler, and load in plain diffusers with `trust_remote_code=True`;
    `from_pretrained` never runs it and reads safetensors weights only (`PortableFolderMixin`).

    Args:
        model: Network called as `model(x_t, t).sample`, e.g. `ddpm_hf.MLP2DModel`; its config holds `sample_dim`.
        scheduler: A diffusers scheduler, e.g. `ddpm_hf.ExtendedDDPMScheduler` (any prediction type) or a DDIM /
            DPM-Solver scheduler made with `from_config` (epsilon, sample and v_prediction models).
    """

    model_cpu_offload_seq = "model"

    def __init__(self, model, scheduler):
        super().__init__()
        self.register_modules(model=model, scheduler=scheduler)

    def check_inputs(self, batch_size, num_inference_steps, output_type, generator=None):
        check_batch_size(batch_size)
        check_num_inference_steps(num_inference_steps, self.scheduler.config.num_train_timesteps)
        check_output_type(output_type, OUTPUT_TYPES)
        check_generator(generator, batch_size)
        check_scheduler_can_step(self.scheduler)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 2048,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        output_type: str = "np",
        return_trajectory: bool = False,
        return_dict: bool = True,
    ) -> DDPM2DPipelineOutput | tuple:
        """
        Args:
            batch_size (`int`, defaults to 2048): Number of points to generate.
            generator (`torch.Generator`, *optional*): Makes sampling deterministic.
            num_inference_steps (`int`, *optional*): Reverse steps; defaults to the scheduler's num_train_timesteps.
            output_type (`str`, defaults to `"np"`): `"np"` (or `"numpy"`) for numpy arrays or `"pt"` for tensors.
            return_trajectory (`bool`, defaults to `False`): Also return every intermediate x_t.
            return_dict (`bool`, defaults to `True`): Return a [`DDPM2DPipelineOutput`] instead of a tuple.

        Returns:
            [`DDPM2DPipelineOutput`] or `tuple`: samples first, then the trajectory if asked for.

        Example:
            ```py
            >>> import torch
            >>> from ddpm_hf import DDPM2DPipeline

            >>> pipe = DDPM2DPipeline.from_pretrained("outputs/swiss_roll")
            >>> points = pipe(batch_size=2048, generator=torch.Generator().manual_seed(0))[0]
            >>> points.shape
            (2048, 2)
            ```
        """
        if num_inference_steps is None:
            num_inference_steps = self.scheduler.config.num_train_timesteps
        self.check_inputs(batch_size, num_inference_steps, output_type, generator)

        parameter = next(self.model.parameters())
        shape = (batch_size, self.model.config.sample_dim)
        sample = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=parameter.dtype)
        sample = sample * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)

        trajectory = [sample] if return_trajectory else None
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(sample, timestep)
            model_output = self.model(model_input, timestep).sample
            sample = self.scheduler.step(model_output, timestep, sample, generator=generator).prev_sample
            if return_trajectory:
                trajectory.append(sample)

        check_finite(sample)
        if return_trajectory:
            trajectory = torch.stack(trajectory)
        if output_type != "pt":
            sample = sample.float().cpu().numpy()
            trajectory = trajectory.float().cpu().numpy() if return_trajectory else None

        self.maybe_free_model_hooks()
        if not return_dict:
            return (sample, trajectory) if return_trajectory else (sample,)
        return DDPM2DPipelineOutput(samples=sample, trajectory=trajectory)
