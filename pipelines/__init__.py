"""The DiffusionPipelines of ddpm-hf, installed as `ddpm_hf.pipelines`. Each imports only torch, diffusers and the
modules beside it, so that a saved model folder can carry them and load in plain diffusers."""

from .pipeline_ddpm_2d import DDPM2DPipeline, DDPM2DPipelineOutput
from .pipeline_ddpm_cfg import DDPMCFGPipeline, DDPMCFGPipelineOutput

__all__ = ["DDPM2DPipeline", "DDPM2DPipelineOutput", "DDPMCFGPipeline", "DDPMCFGPipelineOutput"]
