from .checkpoints import (
    check_checkpoint_of_run,
    find_checkpoint_problem,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from .config_file import load_config_file, parse_args_with_config, typed_config_value
from .disk_full import DiskFullError, is_disk_full, naming_a_full_disk
from .export import PIPELINE_CONFIG, pipeline_from_checkpoint, write_pipeline_config
from .flag_types import number_in_range
from .loss import LOSS_WEIGHTINGS, diffusion_loss, resolve_loss_weighting
from .loss_log import DeferredLossLog, final_loss, read_losses
from .output_dir import (
    RUN_MARKER,
    check_output_dir,
    is_run_dir,
    open_run_folder,
    prepare_output_dir,
    read_run_id,
    staged_output_dir,
    write_run_marker,
)
from .rng import TrainingRNG
from .run_folder import clean_run_folder, save_pipeline_folder
from .run_lock import RUN_LOCK, RunFolderLock, check_run_folder_free, lock_run_folder, run_folder_holder
from .state_files import load_state_files, save_state_files
from .throughput import ThroughputRecord
from .trackers import log_images_to_trackers

__all__ = [
    "DeferredLossLog",
    "DiskFullError",
    "RUN_LOCK",
    "RunFolderLock",
    "PIPELINE_CONFIG",
    "LOSS_WEIGHTINGS",
    "RUN_MARKER",
    "ThroughputRecord",
    "TrainingRNG",
    "check_checkpoint_of_run",
    "check_output_dir",
    "check_run_folder_free",
    "clean_run_folder",
    "diffusion_loss",
    "final_loss",
    "find_checkpoint_problem",
    "is_disk_full",
    "is_run_dir",
    "list_checkpoints",
    "load_checkpoint",
    "load_config_file",
    "load_state_files",
    "lock_run_folder",
    "log_images_to_trackers",
    "naming_a_full_disk",
    "number_in_range",
    "open_run_folder",
    "parse_args_with_config",
    "pipeline_from_checkpoint",
    "prepare_output_dir",
    "read_losses",
    "read_run_id",
    "resolve_checkpoint",
    "resolve_loss_weighting",
    "run_folder_holder",
    "save_checkpoint",
    "save_pipeline_folder",
    "save_state_files",
    "staged_output_dir",
    "typed_config_value",
    "verify_checkpoint",
    "write_pipeline_config",
    "write_run_marker",
]
