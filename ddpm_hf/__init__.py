"""ddpm-hf: DDPMs on diffusers, for the DDPM course labs and beyond."""

from .data import TOY2D_DATASETS, sample_toy2d
from .metrics import chamfer_distance
from .models import UNET_PRESETS, MLP2DModel, make_unet
from .pipelines import DDPM2DPipeline, DDPM2DPipelineOutput, DDPMCFGPipeline, DDPMCFGPipelineOutput
from .schedulers import BETA_SCHEDULES, PREDICTION_TYPES, ExtendedDDPMScheduler

__version__ = "0.1.0"

__all__ = [
    "BETA_SCHEDULES",
    "DDPM2DPipeline",
    "DDPM2DPipelineOutput",
    "DDPMCFGPipeline",
    "DDPMCFGPipelineOutput",
    "ExtendedDDPMScheduler",
    "MLP2DModel",
    "PREDICTION_TYPES",
    "TOY2D_DATASETS",
    "UNET_PRESETS",
    "chamfer_distance",
    "make_unet",
    "sample_toy2d",
]
