# Importing the scheduler module makes ExtendedDDPMScheduler known to DDPMCFGPipeline.from_pretrained, which resolves
# the scheduler a saved folder names among the classes already imported.
import ddpm_hf.schedulers  # noqa: F401

from .pipeline_ddpm_2d import DDPM2DPipeline, DDPM2DPipelineOutput
from .pipeline_ddpm_cfg import DDPMCFGPipeline, DDPMCFGPipelineOutput

__all__ = ["DDPM2DPipeline", "DDPM2DPipelineOutput", "DDPMCFGPipeline", "DDPMCFGPipelineOutput"]
