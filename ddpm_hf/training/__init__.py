from .checkpoints import (
    find_checkpoint_problem,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from .config_file import load_config_file, parse_args_with_config, typed_config_value
from .export import PIPELINE_CONFIG, pipeline_from_checkpoint, write_pipeline_config
from .flag_types import number_in_range
from .loss import LOSS_WEIGHTINGS, diffusion_loss, resolve_loss_weighting
from .loss_log import DeferredLossLog, final_loss, read_losses
from .output_dir import (
    RUN_MARKER,
    check_output_dir,
    is_run_dir,
    prepare_output_dir,
    staged_output_dir,
    write_run_marker,
)
from .rng import TrainingRNG
from .run_folder import save_pipeline_folder
from .state_files import load_state_files, save_state_files
from .throughput import ThroughputRecord
from .trackers import log_images_to_trackers

__all__ = [
    "DeferredLossLog",
    "PIPELINE_CONFIG",
    "LOSS_WEIGHTINGS",
    "RUN_MARKER",
    "ThroughputRecord",
    "TrainingRNG",
    "check_output_dir",
    "diffusion_loss",
    "final_loss",
    "find_checkpoint_problem",
    "is_run_dir",
    "list_checkpoints",
    "load_checkpoint",
    "load_config_file",
    "load_state_files",
    "log_images_to_trackers",
    "number_in_range",
    "parse_args_with_config",
    "pipeline_from_checkpoint",
    "prepare_output_dir",
    "read_losses",
    "resolve_checkpoint",
    "resolve_loss_weighting",
    "save_checkpoint",
    "save_pipeline_folder",
    "save_state_files",
    "staged_output_dir",
    "typed_config_value",
    "verify_checkpoint",
    "write_pipeline_config",
    "write_run_marker",
]
