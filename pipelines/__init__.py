from .pipeline_ddpm_2d import DDPM2DPipeline, DDPM2DPipelineOutput

__all__ = ["DDPM2DPipeline", "DDPM2DPipelineOutput"]
