from .checkpoints import list_checkpoints, resolve_checkpoint, save_checkpoint
from .config_file import load_config_file, parse_args_with_config
from .loss import LOSS_WEIGHTINGS, diffusion_loss, resolve_loss_weighting
from .output_dir import check_output_dir, staged_output_dir
from .rng import TrainingRNG

__all__ = [
    "LOSS_WEIGHTINGS",
    "TrainingRNG",
    "check_output_dir",
    "diffusion_loss",
    "list_checkpoints",
    "load_config_file",
    "parse_args_with_config",
    "resolve_checkpoint",
    "resolve_loss_weighting",
    "save_checkpoint",
    "staged_output_dir",
]
