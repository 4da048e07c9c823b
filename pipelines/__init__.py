from .pipeline_ddpm_2d import DDPM2DPipeline, DDPM2DPipelineOutput
from .pipeline_ddpm_cfg import DDPMCFGPipeline, DDPMCFGPipelineOutput

__all__ = ["DDPM2DPipeline", "DDPM2DPipelineOutput", "DDPMCFGPipeline", "DDPMCFGPipelineOutput"]
