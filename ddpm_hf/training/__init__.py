from .loss import diffusion_loss
from .output_dir import check_output_dir, staged_output_dir

__all__ = ["check_output_dir", "diffusion_loss", "staged_output_dir"]
