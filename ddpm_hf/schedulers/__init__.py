from .scheduling_ddpm_ext import BETA_SCHEDULES, PREDICTION_TYPES, ExtendedDDPMScheduler

__all__ = ["BETA_SCHEDULES", "PREDICTION_TYPES", "ExtendedDDPMScheduler"]
