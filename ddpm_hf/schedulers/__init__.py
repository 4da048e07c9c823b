"""ddpm-hf's DDPM scheduler: diffusers' `DDPMScheduler` with the course's schedules and parameterisations.

The named samplers live with the pipelines (`ddpm_hf.pipelines.samplers`), so that a saved model folder carries them;
`ddpm_hf.sampling` gives them to the scripts with this scheduler as the "ddpm" sampler.
"""

from .scheduling_ddpm_ext import BETA_SCHEDULES, PREDICTION_TYPES, ExtendedDDPMScheduler

__all__ = ["BETA_SCHEDULES", "PREDICTION_TYPES", "ExtendedDDPMScheduler"]
