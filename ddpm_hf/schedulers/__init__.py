from .samplers import SAMPLERS, default_num_steps, make_sampler
from .scheduling_ddpm_ext import BETA_SCHEDULES, PREDICTION_TYPES, ExtendedDDPMScheduler

__all__ = [
    "BETA_SCHEDULES",
    "PREDICTION_TYPES",
    "SAMPLERS",
    "ExtendedDDPMScheduler",
    "default_num_steps",
    "make_sampler",
]
