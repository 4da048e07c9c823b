"""Train an image DDPM (UNet2DModel), unconditional or class-conditional for classifier-free guidance.

    accelerate launch train_scripts/train_image.py --dataset_name digits --resolution 16 --output_dir outputs/digits
    accelerate launch train_scripts/train_image.py --config train_scripts/configs/digits.yaml

Writes to --output_dir: the DDPMCFGPipeline (model_index.json, unet/ with the EMA weights when EMA is on,
scheduler/, its source files), README.md (the model card), loss_curve.png, grid.png, denoising.gif,
denoising_grid.png, metrics.json, losses.jsonl, run_config.json, logs/ (TensorBoard or wandb), samples/ (a grid every
--save_images_epochs) and checkpoints/ (for --resume_from_checkpoint).
"""

import argparse
import functools
import json
import logging
import math
import os
import time

import datasets
import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, DynamoBackend, ProjectConfiguration, TorchDynamoPlugin, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ddpm_hf import BETA_SCHEDULES, PREDICTION_TYPES, UNET_PRESETS, DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.data import (
    RESIZE_MODES,
    IndexDataset,
    class_names_of,
    dataset_mode,
    decode_image,
    find_image_column,
    find_label_column,
    is_multi_label,
    load_image_dataset,
    multi_hot,
    preload_images,
    preprocess_image,
    read_iclevr_conditions,
    resize_and_crop,
    uint8_to_model_input,
)
from ddpm_hf.hub import make_run_card, push_run_folder
from ddpm_hf.models import LABEL_CONDITIONINGS, check_resolution
from ddpm_hf.models.pretrained import (
    load_pretrained_unet,
    pretrained_folder,
    pretrained_num_classes,
    pretrained_resolution,
    pretrained_scheduler_settings,
    read_pretrained_configs,
)
from ddpm_hf.schedulers import SAMPLERS, default_num_steps, make_sampler
from ddpm_hf.training import (
    LOSS_WEIGHTINGS,
    DeferredLossLog,
    ThroughputRecord,
    TrainingRNG,
    check_output_dir,
    diffusion_loss,
    final_loss,
    list_checkpoints,
    load_checkpoint,
    log_images_to_trackers,
    open_run_folder,
    parse_args_with_config,
    read_losses,
    read_run_id,
    resolve_checkpoint,
    save_checkpoint,
    save_pipeline_folder,
    write_pipeline_config,
)
from ddpm_hf.viz import grid_shape, sample_grid, save_epoch_grid, save_run_figures

logger = get_logger(__name__, log_level="INFO")

LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
CONDITIONS = ("auto", "none", "class", "multi_label")
LOGGERS = ("tensorboard", "wandb", "none")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = tuple(backend.value.lower() for backend in DynamoBackend if backend != DynamoBackend.NO)
DATA_ON_DEVICE_AUTO_GIB = 4.0
LOSS_READ_STEPS_CUDA = 50
# Flags of the diffusion, taken from the pretrained scheduler when --pretrained_model_name_or_path is given.
DIFFUSION_DEFAULTS = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}
# Flags that may change when a run is resumed: how long it trains (the LR schedule is then recomputed for the new
# length), and how it is saved, logged, shown and sped up; not what it trains on or how.
CHANGEABLE_ON_RESUME = (
    "max_train_steps",
    "num_epochs",
    "config",
    "output_dir",
    "overwrite_output_dir",
    "resume_from_checkpoint",
    "cache_dir",
    "dataloader_num_workers",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "logger",
    "save_images_epochs",
    "save_model_epochs",
    "epoch_sampler",
    "num_inference_steps",
    "guidance_scale",
    "sample_conditions_file",
    "push_to_hub",
    "hub_model_id",
    "hub_token",
    "hub_private_repo",
    "hub_license",
    "channels_last",
    "fused_adamw",
    "foreach_ema",
    "torch_compile",
    "torch_compile_mode",
    "compile_backend",
    "data_on_device",
    "loss_read_steps",
)


def build_parser():
    parser = argparse.ArgumentParser(description="Train an image DDPM with accelerate.")
    add = parser.add_argument
    add("--config", type=str, default=None, help="YAML/JSON preset whose keys are flags of this script.")
    # data
    add(
        "--dataset_name",
        type=str,
        default=None,
        help="'digits', a .npz file, a local dataset folder, or a Hub dataset id (e.g. ylecun/mnist, cifar10).",
    )
    add("--dataset_config_name", type=str, default=None, help="Config name of a Hub dataset.")
    add("--train_data_dir", type=str, default=None, help="Local images (class sub-folders = labels) or dataset files.")
    add("--cache_dir", type=str, default=None, help="Cache folder for Hub datasets and models.")
    add("--image_column", type=str, default=None, help="Image column; found automatically if unset.")
    add("--label_column", type=str, default=None, help="Label column; found automatically if unset.")
    add(
        "--condition",
        type=str,
        default="auto",
        help="'class' (one label per image, a null class for CFG), 'multi_label' (a list of labels per image, e.g. "
        "i-CLEVR; a multi-hot condition whose all-zero row is the null condition), 'none', or 'auto' (whichever the "
        "label column holds, none without one).",
    )
    add(
        "--sample_conditions_file",
        type=str,
        default=None,
        help="Multi-label models: a test.json-style file (a list of lists of label names) whose first conditions make "
        "the rows of the sample grids; defaults to test.json beside --train_data_dir, else the first training labels.",
    )
    add(
        "--resolution",
        type=int,
        default=None,
        help="Training image side in pixels; default: the pretrained model's sample_size, else 32.",
    )
    add(
        "--resize_mode",
        type=str,
        default="crop",
        help="'crop': shorter side to --resolution, then a square crop; 'stretch': the whole image to the square "
        "(nothing cut off; for scenes whose labels name every object, such as i-CLEVR).",
    )
    add("--center_crop", action=argparse.BooleanOptionalAction, default=True, help="Centre (else random) crop.")
    add("--random_flip", action="store_true", help="Flip images left-right at random.")
    add(
        "--skip_bad_images",
        action="store_true",
        help="Decode every image before training and skip unreadable ones (with a count); default: stop at the first.",
    )
    add("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")
    # model and diffusion
    add(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Start from a saved pipeline (folder or Hub id): diffusers' DDPMPipeline layout (UNet2DModel + "
        "DDPMScheduler, e.g. google/ddpm-cifar10-32) or a ddpm-hf run. Its U-Net and diffusion settings are kept; an "
        "unconditional UNet2DModel gets a zero-initialised class embedding for class-conditional data.",
    )
    add("--model_preset", type=str, default=None, help=f"U-Net size, one of {list(UNET_PRESETS)}; default small.")
    add(
        "--label_conditioning",
        type=str,
        default="projection",
        help="Multi-label models: 'projection' (the multi-hot vector projected into the time embedding) or 'tokens' "
        "(that, plus cross-attention to one token per requested label at the preset's attention levels).",
    )
    add("--num_train_timesteps", type=int, default=None, help="Diffusion steps T (default 1000).")
    add("--beta_schedule", type=str, default=None, help=f"One of {list(BETA_SCHEDULES)} (default linear).")
    add("--beta_start", type=float, default=None, help="First beta (linear/quad; default 1e-4).")
    add("--beta_end", type=float, default=None, help="Last beta (linear/quad; default 0.02).")
    add("--prediction_type", type=str, default=None, help=f"One of {list(PREDICTION_TYPES)} (default epsilon).")
    add(
        "--loss_weighting",
        type=str,
        default="auto",
        help=f"One of {list(LOSS_WEIGHTINGS)}: 'uniform' is MSE on the prediction target, 'epsilon' weights it into "
        "the MSE of the implied noise; 'auto' is 'epsilon' for --prediction_type mean and 'uniform' otherwise.",
    )
    add("--cond_drop_prob", type=float, default=0.1, help="Probability of training a label as the null class.")
    add("--guidance_scale", type=float, default=3.0, help="Guidance s for the saved sample images.")
    # optimisation
    add("--train_batch_size", type=int, default=64, help="Batch size per process.")
    add("--num_epochs", type=int, default=100, help="Epochs, unless --max_train_steps is set.")
    add("--max_train_steps", type=int, default=None, help="Optimizer steps; overrides --num_epochs.")
    add("--gradient_accumulation_steps", type=int, default=1, help="Batches per optimizer step.")
    add("--learning_rate", type=float, default=1e-4, help="Peak learning rate of AdamW.")
    add("--lr_scheduler", type=str, default="cosine", help=f"One of {list(LR_SCHEDULERS)}.")
    add("--lr_warmup_steps", type=int, default=500, help="Warm-up optimizer steps.")
    add("--adam_beta1", type=float, default=0.95, help="AdamW beta1.")
    add("--adam_beta2", type=float, default=0.999, help="AdamW beta2.")
    add("--adam_weight_decay", type=float, default=1e-6, help="AdamW weight decay.")
    add("--adam_epsilon", type=float, default=1e-8, help="AdamW epsilon.")
    add("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm (0 disables).")
    add("--use_ema", action=argparse.BooleanOptionalAction, default=True, help="Keep an EMA of weights.")
    add("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    add("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")
    add("--ema_max_decay", type=float, default=0.9999, help="Largest EMA decay.")
    add("--mixed_precision", type=str, default=None, help="'no', 'fp16' or 'bf16'; default: accelerate's config.")
    add("--seed", type=int, default=0, help="Seed of training and of the saved samples.")
    # speed: None means "auto", on where it is known to pay (CUDA) and off elsewhere
    add(
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Train in channels_last memory format (default: on CUDA).",
    )
    add(
        "--fused_adamw",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="AdamW's fused implementation, one kernel for all parameters (default: on CUDA).",
    )
    add(
        "--foreach_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Update the EMA weights with multi-tensor (foreach) operations.",
    )
    add(
        "--torch_compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Compile the U-Net with torch.compile (through accelerate; default: on CUDA). The first steps then "
        "include the compile warm-up, which torch caches on disk for later runs of the same model.",
    )
    add(
        "--torch_compile_mode",
        type=str,
        default=None,
        help=f"torch.compile mode, one of {list(COMPILE_MODES)}; default: torch's default.",
    )
    add(
        "--compile_backend",
        type=str,
        default="inductor",
        help=f"torch.compile backend, one of accelerate's: {list(COMPILE_BACKENDS)}.",
    )
    add(
        "--data_on_device",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Decode, resize and crop every image once before training and keep them as uint8 on the training device; "
        "flips and scaling then happen there. Needs --center_crop. Default: on CUDA when the images take at most "
        f"{DATA_ON_DEVICE_AUTO_GIB:g} GiB and 1/4 of the GPU's memory.",
    )
    add(
        "--loss_read_steps",
        type=int,
        default=None,
        help="Copy the loss to the host (to log it and check that it is finite) every N steps instead of every step, "
        "so the GPU is never waited on in between; always before a checkpoint. Default: 1 on the CPU, "
        f"{LOSS_READ_STEPS_CUDA} on CUDA.",
    )
    # outputs
    add("--output_dir", type=str, default=None, help="Run folder (required).")
    add(
        "--overwrite_output_dir",
        action="store_true",
        help="Replace the folder of an earlier run (only a folder a run marked; never the training data).",
    )
    add("--checkpointing_steps", type=int, default=500, help="Save a checkpoint every N steps.")
    add("--checkpoints_total_limit", type=int, default=2, help="Keep at most N checkpoints.")
    add("--resume_from_checkpoint", type=str, default=None, help="'latest' or a checkpoint folder to resume from.")
    add(
        "--logger",
        type=str,
        default="tensorboard",
        help=f"One of {list(LOGGERS)}: where the losses and the sample grids go (wandb: pip install wandb).",
    )
    add("--save_images_epochs", type=int, default=10, help="Save a sample grid every N epochs.")
    add(
        "--epoch_sampler",
        type=str,
        default="ddpm",
        help=f"Sampler of the per-epoch grids, one of {list(SAMPLERS)} (dpm_solver++: 20 steps, fast); the final "
        "grid and GIF always use DDPM.",
    )
    add(
        "--save_model_epochs",
        type=int,
        default=None,
        help="Also save the loadable pipeline (and model card) into --output_dir every N epochs, and push it with "
        "--push_to_hub; default: only at the end.",
    )
    add("--num_inference_steps", type=int, default=None, help="DDPM steps for saved images; default T.")
    add("--push_to_hub", action="store_true", help="Upload the pipeline to the Hub (at the end, and at each save).")
    add("--hub_model_id", type=str, default=None, help="Hub repository for --push_to_hub.")
    add("--hub_token", type=str, default=None, help="Hub token (default: the logged-in one).")
    add("--hub_private_repo", action="store_true", help="Create the Hub repository as private.")
    add("--hub_license", type=str, default="apache-2.0", help="License id written in the model card.")
    return parser


def parse_args(argv=None):
    args = parse_args_with_config(build_parser(), argv)
    check_args(args)
    return args


def data_paths(args) -> tuple:
    """Local paths the run reads: the output folder must never be, hold or lie inside one of them."""
    return (
        args.train_data_dir,
        args.dataset_name,
        args.cache_dir,
        args.sample_conditions_file,
        args.pretrained_model_name_or_path,
    )


def check_args(args):
    """Reject bad flags, and fill in the defaults that depend on other flags, before anything is read or written."""
    if args.output_dir is None:
        raise ValueError("--output_dir is required (on the command line or in --config).")
    if (args.dataset_name is None) == (args.train_data_dir is None):
        raise ValueError("Give exactly one of --dataset_name and --train_data_dir.")
    resolve_model_flags(args)
    choices = {
        "condition": CONDITIONS,
        "model_preset": tuple(UNET_PRESETS),
        "label_conditioning": LABEL_CONDITIONINGS,
        "beta_schedule": BETA_SCHEDULES,
        "prediction_type": PREDICTION_TYPES,
        "loss_weighting": LOSS_WEIGHTINGS,
        "resize_mode": RESIZE_MODES,
        "lr_scheduler": LR_SCHEDULERS,
        "logger": LOGGERS,
        "mixed_precision": (None, "no", "fp16", "bf16"),
        "torch_compile_mode": COMPILE_MODES,
        "compile_backend": COMPILE_BACKENDS,
        "epoch_sampler": tuple(SAMPLERS),
    }
    if args.pretrained_model_name_or_path is not None:
        del choices["model_preset"]  # the architecture is the pretrained one
    for name, allowed in choices.items():
        if getattr(args, name) not in allowed:
            raise ValueError(f"Unknown --{name} {str(getattr(args, name))[:60]!r}; choose one of {list(allowed)}.")
    # [low, high] (None: unbounded), or "(" / ")" where the bound itself is refused
    ranges = {
        "train_batch_size": (1, None),
        "num_epochs": (1, None),
        "gradient_accumulation_steps": (1, None),
        "num_train_timesteps": (1, None),
        "checkpointing_steps": (1, None),
        "checkpoints_total_limit": (1, None),
        "save_images_epochs": (1, None),
        "save_model_epochs": (1, None),
        "resolution": (1, None),
        "max_train_steps": (1, None),
        "loss_read_steps": (1, None),
        "lr_warmup_steps": (0, None),
        "dataloader_num_workers": (0, None),
        "seed": (0, 2**32 - 1),
        "cond_drop_prob": (0, 1, ")"),
        "guidance_scale": (0, None),
        "learning_rate": (0, None, "("),
        "adam_beta1": (0, 1, ")"),
        "adam_beta2": (0, 1, ")"),
        "adam_weight_decay": (0, None),
        "adam_epsilon": (0, None),
        "max_grad_norm": (0, None),
        "ema_inv_gamma": (0, None, "("),
        "ema_power": (0, None, "("),
        "ema_max_decay": (0, 1),
        "num_inference_steps": (1, args.num_train_timesteps),
    }
    for name, (low, high, *open_bound) in ranges.items():
        check_range(name, getattr(args, name), low, high, open_bound[0] if open_bound else "")
    if args.data_on_device and not args.center_crop:
        raise ValueError(
            "--data_on_device keeps one crop of each image, and --no-center_crop asks for a new random crop every "
            "epoch; drop one of the two."
        )
    if args.prediction_type == "mean" and args.epoch_sampler != "ddpm":
        raise ValueError("--prediction_type mean samples with the ddpm sampler only; drop --epoch_sampler.")
    if args.logger == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError as error:
            raise ImportError(
                '--logger wandb needs wandb: pip install "ddpm-hf[wandb]" (or pip install wandb).'
            ) from error
    if args.model_preset is not None:
        check_resolution(args.model_preset, args.resolution)
    resuming = args.resume_from_checkpoint is not None
    check_output_dir(args.output_dir, args.overwrite_output_dir, data_paths(args), resume=resuming)
    if resuming:
        check_same_run(args)
        if args.resume_from_checkpoint != "latest":  # this run's own, and whole, before anything is written
            checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
            resolve_checkpoint(checkpoints_dir, args.resume_from_checkpoint, run_id=read_run_id(args.output_dir))
    if args.sample_conditions_file is not None and not os.path.isfile(args.sample_conditions_file):
        raise ValueError(f"--sample_conditions_file {args.sample_conditions_file!r} is not a file.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/ddpm-digits).")


def check_range(name, value, low, high, open_bound=""):
    """`value` (None: not set) must be a finite number in [low, high]; open_bound "(" or ")" excludes that end."""
    if value is None:
        return
    too_low = value <= low if open_bound == "(" else value < low
    too_high = high is not None and (value >= high if open_bound == ")" else value > high)
    if not math.isfinite(value) or too_low or too_high:
        allowed = f"{'(' if open_bound == '(' else '['}{low}, {'inf)' if high is None else high}"
        allowed += "" if high is None else (")" if open_bound == ")" else "]")
        raise ValueError(f"--{name} must be a number in {allowed}, got {value!r}.")


def resolve_model_flags(args):
    """The model preset, resolution and diffusion flags: from a pretrained pipeline when one is given (explicit values
    that differ from it are refused), else the defaults."""
    pretrained = {}
    if args.pretrained_model_name_or_path is not None:
        if args.model_preset is not None:
            raise ValueError(
                "--model_preset builds a new U-Net, and with --pretrained_model_name_or_path it is the "
                "pretrained one. Drop one of the two."
            )
        folder = pretrained_folder(args.pretrained_model_name_or_path, cache_dir=args.cache_dir)
        unet_config, scheduler_config, _ = read_pretrained_configs(folder)
        pretrained = {name: scheduler_config.get(name, default) for name, default in DIFFUSION_DEFAULTS.items()}
        pretrained["prediction_type"] = {"sample": "x0"}.get(
            pretrained["prediction_type"], pretrained["prediction_type"]
        )
        pretrained["beta_schedule"] = {"scaled_linear": "quad", "squaredcos_cap_v2": "cosine"}.get(
            pretrained["beta_schedule"], pretrained["beta_schedule"]
        )
        pretrained["resolution"] = pretrained_resolution(unet_config)
    for name, default in {**DIFFUSION_DEFAULTS, "resolution": 32}.items():
        if getattr(args, name) is None:
            setattr(args, name, pretrained.get(name, default))
        elif name in pretrained and getattr(args, name) != pretrained[name]:
            raise ValueError(
                f"--{name} {getattr(args, name)!r} differs from the pretrained model's {pretrained[name]!r}; a "
                "fine-tune keeps the model's diffusion and size. Drop the flag."
            )
    if args.model_preset is None and args.pretrained_model_name_or_path is None:
        args.model_preset = "small"


def check_same_run(args):
    """Resuming: refuse settings that differ from the run's own (run_config.json), except its length and the ones that
    only change how it is saved, logged, shown or sped up, which are applied and recorded there."""
    path = os.path.join(args.output_dir, "run_config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        saved = json.load(f)
    changed = {
        key: (saved.get(key), value)
        for key, value in vars(args).items()
        if key not in CHANGEABLE_ON_RESUME and key in saved and saved[key] != value
    }
    if changed:
        changes = ", ".join(
            f"--{key}: {str(old)[:60]!r} there, {str(new)[:60]!r} now" for key, (old, new) in changed.items()
        )
        raise ValueError(
            f"{args.output_dir} holds a run trained with other settings ({changes}). Resume it with its own settings "
            "(only its length and the saving, logging, sampling and speed flags may change), or train into another "
            "output_dir."
        )
    if (saved.get("max_train_steps"), saved.get("num_epochs")) != (args.max_train_steps, args.num_epochs):
        logging.getLogger(__name__).warning(
            f"Resuming with another length (--max_train_steps {args.max_train_steps}, --num_epochs {args.num_epochs}; "
            f"was {saved.get('max_train_steps')}, {saved.get('num_epochs')}): the learning-rate schedule continues "
            "as if the run had been planned at the new length."
        )


def single_class_folder(folder: str | None) -> str | None:
    """The one sub-folder of an image folder that has exactly one (datasets then gives it no label column)."""
    if folder is None or not os.path.isdir(folder):
        return None
    subfolders = [name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))]
    return subfolders[0] if len(subfolders) == 1 else None


def prepare_dataset(args):
    """Load the dataset, find its columns and classes, and attach the training transform. Reads, never writes."""
    dataset = load_image_dataset(
        args.dataset_name, args.dataset_config_name, args.train_data_dir, cache_dir=args.cache_dir
    )
    image_column = find_image_column(dataset, args.image_column)
    label_column = find_label_column(dataset, args.label_column)
    if args.condition in ("class", "multi_label") and label_column is None:
        raise ValueError(
            f"--condition {args.condition} needs a label column, and none was found; columns: "
            f"{dataset.column_names}. Name it with --label_column."
        )
    lone_class = single_class_folder(args.train_data_dir)
    if label_column is None and args.condition == "auto" and lone_class is not None:
        logging.getLogger(__name__).warning(
            f"{args.train_data_dir} holds one class folder ({lone_class!r}), so there are no labels to learn: "
            "training an unconditional model. Add a folder per class for a class-conditional one (--condition none "
            "hides this)."
        )
    multi_label_data = label_column is not None and is_multi_label(dataset, label_column)
    if args.condition == "class" and multi_label_data:
        raise ValueError(
            f"Label column {label_column!r} holds a list of labels per image (multi-label data such as i-CLEVR), and "
            "--condition class takes one label per image. Use --condition multi_label (or auto)."
        )
    if args.condition == "multi_label" and not multi_label_data:
        raise ValueError(
            f"--condition multi_label needs a label column that holds a list of labels per image (a Sequence of "
            f"ClassLabel, as in i-CLEVR folders); {label_column!r} holds one label per image. Use --condition class."
        )
    conditional = label_column is not None and args.condition != "none"
    multi_label = conditional and multi_label_data
    if args.label_conditioning != "projection" and not multi_label:
        raise ValueError(
            f"--label_conditioning {args.label_conditioning} is for multi-label models; this run is "
            f"{'class-conditional' if conditional else 'unconditional'}."
        )
    class_names = class_names_of(dataset, label_column) if conditional else None
    if conditional:
        labels = dataset[label_column]
        if multi_label:
            bad = [value for value in labels if not value or not all(0 <= v < len(class_names) for v in value)]
        else:
            bad = [value for value in labels if not isinstance(value, int) or not 0 <= value < len(class_names)]
        if bad:
            raise ValueError(
                f"Label column {label_column!r} holds {len(bad)} values outside 0..{len(class_names) - 1}"
                f"{' or empty label lists' if multi_label else ''}, e.g. {bad[:5]}."
            )
    if isinstance(dataset.features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    if args.skip_bad_images:
        dataset = drop_unreadable_images(dataset, image_column)
    first_images = dataset.select(range(min(64, len(dataset))))[image_column]  # greyscale only if these all are
    mode = dataset_mode(
        decode_image(value, f"image {i} of column {image_column!r}") for i, value in enumerate(first_images)
    )

    def transform(batch):
        pixel_values = [
            preprocess_image(
                decode_image(value, f"image in column {image_column!r}"),
                args.resolution,
                mode,
                args.center_crop,
                args.random_flip,
                resize_mode=args.resize_mode,
            )
            for value in batch[image_column]
        ]
        output = {"pixel_values": pixel_values}
        if multi_label:
            output["class_labels"] = list(multi_hot(batch[label_column], len(class_names)))
        elif conditional:
            output["class_labels"] = batch[label_column]
        return output

    dataset.set_transform(transform)
    return dataset, mode, class_names, multi_label


def drop_unreadable_images(dataset, image_column):
    """--skip_bad_images: decode every image once and drop those that fail, saying how many and which."""

    def readable(value):
        try:
            decode_image(value)
            return True
        except ValueError:
            return False

    keep = [readable(value) for value in tqdm(dataset[image_column], desc="checking images", leave=False)]
    bad = [index for index, ok in enumerate(keep) if not ok]
    if bad:
        names = [(dataset[index][image_column] or {}).get("path") or f"#{index}" for index in bad[:10]]
        logging.getLogger(__name__).warning(
            f"--skip_bad_images: skipped {len(bad)} unreadable image(s) of {len(dataset)}, e.g. {names}"
        )
        dataset = dataset.select([index for index, ok in enumerate(keep) if ok])
    if len(dataset) == 0:
        raise ValueError("--skip_bad_images: no readable image is left in the dataset.")
    return dataset


def collate(examples):
    """Rows of the image dataset (`pixel_values`) or of the `IndexDataset` over preloaded images (`index`)."""
    batch = {}
    if "pixel_values" in examples[0]:
        batch["pixel_values"] = torch.stack([example["pixel_values"] for example in examples])
    if "index" in examples[0]:
        batch["index"] = torch.tensor([example["index"] for example in examples], dtype=torch.long)
    if "class_labels" in examples[0]:
        labels = [example["class_labels"] for example in examples]
        is_multi_hot = isinstance(labels[0], torch.Tensor)
        batch["class_labels"] = torch.stack(labels) if is_multi_hot else torch.tensor(labels, dtype=torch.long)
    return batch


def training_rows(args, dataset, mode, class_names, multi_label, speed):
    """What the DataLoader draws from: the dataset itself, or with --data_on_device row numbers into the preloaded
    images. Returns (rows, the preloaded images on the training device or None, seconds the preload took or None)."""
    if not speed["data_on_device"]:
        return dataset, None, None
    preload_start = time.time()
    images, rows = preload_training_data(args, dataset, mode, class_names, multi_label)
    images = images.to(PartialState().device)
    return rows, images, time.time() - preload_start


def preload_training_data(args, dataset, mode, class_names, multi_label):
    """
    --data_on_device: every image decoded, resized and cropped once into a uint8 tensor (N, C, H, W) on the CPU, and
    an IndexDataset of row numbers and labels for the DataLoader to shuffle and shard as it would the images.
    """
    raw = dataset.with_format(None)
    image_column = find_image_column(dataset, args.image_column)

    def to_uint8_array(row):
        image = decode_image(row[image_column], f"image in column {image_column!r}")
        return np.asarray(resize_and_crop(image, args.resolution, mode, resize_mode=args.resize_mode))

    images = preload_images(raw, to_uint8_array, num_workers=args.dataloader_num_workers)
    labels = None
    if class_names is not None:
        labels = raw[find_label_column(dataset, args.label_column)]
        if multi_label:
            labels = multi_hot(labels, len(class_names))
    return images, IndexDataset(len(raw), labels)


def build_model(args, channels, class_names, multi_label):
    """The U-Net (new from the preset, or the pretrained one) and the training scheduler."""
    num_classes = len(class_names) if class_names else None
    kept_scheduler_settings = {}  # a fine-tune keeps every other setting of the pretrained scheduler
    if args.pretrained_model_name_or_path is None:
        model = make_unet(
            args.model_preset,
            args.resolution,
            channels,
            num_classes,
            multi_label,
            label_conditioning=args.label_conditioning,
        )
    else:
        folder = pretrained_folder(args.pretrained_model_name_or_path, cache_dir=args.cache_dir)
        unet_config, scheduler_config, id2label = read_pretrained_configs(folder)
        kept_scheduler_settings = pretrained_scheduler_settings(scheduler_config)
        if unet_config["in_channels"] != channels:
            raise ValueError(
                f"The pretrained U-Net takes {unet_config['in_channels']} channel(s) and the data has {channels}."
            )
        saved_names = [id2label[key] for key in sorted(id2label)]
        if class_names and saved_names and saved_names != list(class_names):
            raise ValueError(
                f"The pretrained model's classes {saved_names[:20]} differ from the data's {list(class_names)[:20]}."
            )
        if pretrained_num_classes(unet_config) is None and num_classes is not None:
            logging.getLogger(__name__).info(
                f"Adding a class embedding of {num_classes} + 1 rows (zeros) to the pretrained U-Net."
            )
        model = load_pretrained_unet(folder, num_classes, multi_label)
    noise_scheduler = ExtendedDDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        prediction_type=args.prediction_type,
        **kept_scheduler_settings,
    )
    return model, noise_scheduler


def resolve_speed_settings(args, device, num_images, channels):
    """The speed levers this run uses: each flag as given, or for None (auto) on where it pays, i.e. on CUDA."""
    on_cuda = device.type == "cuda"
    data_on_device = args.data_on_device
    if data_on_device is None:
        image_gib = num_images * channels * args.resolution**2 / 2**30
        fits = on_cuda and image_gib <= min(
            DATA_ON_DEVICE_AUTO_GIB, torch.cuda.get_device_properties(device).total_memory / 2**30 / 4
        )
        data_on_device = fits and args.center_crop
    return {
        "channels_last": on_cuda if args.channels_last is None else args.channels_last,
        "fused_adamw": on_cuda if args.fused_adamw is None else args.fused_adamw,
        "foreach_ema": args.foreach_ema,
        "torch_compile": on_cuda if args.torch_compile is None else args.torch_compile,
        "data_on_device": data_on_device,
        "loss_read_steps": args.loss_read_steps or (LOSS_READ_STEPS_CUDA if on_cuda else 1),
        "pinned_batches": on_cuda,
    }


def make_accelerator(args, speed):
    compile_plugin = TorchDynamoPlugin(backend=args.compile_backend, mode=args.torch_compile_mode)
    return Accelerator(
        dynamo_plugin=compile_plugin if speed["torch_compile"] else None,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.logger == "none" else args.logger,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")
        ),
        # pinned batches copied with non_blocking: a copy from pageable memory would wait for the GPU every step
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=speed["pinned_batches"]),
    )


def figure_conditions(args, dataset, class_names, multi_label):
    """
    What each row of the sample grids asks for: class ids 0..rows-1, or for a multi-label model the first conditions
    of --sample_conditions_file (by default test.json beside i-CLEVR data, when there is one), else the label sets of
    the first training images. None for an unconditional model.
    """
    if class_names is None:
        return None
    rows, _ = grid_shape(len(class_names))
    if not multi_label:
        return list(range(rows))
    path = args.sample_conditions_file
    folder = args.train_data_dir or args.dataset_name
    if path is None and os.path.isfile(os.path.join(folder, "test.json")):
        path = os.path.join(folder, "test.json")
    if path is not None:
        conditions = [[class_names[i] for i in ids] for ids in read_iclevr_conditions(path, class_names)]
    else:
        label_column = find_label_column(dataset, args.label_column)
        first = dataset.with_format(None).select(range(min(rows, len(dataset))))[label_column]
        conditions = [[class_names[i] for i in ids] for ids in first]
    return [conditions[row % len(conditions)] for row in range(rows)]


def build_pipeline(accelerator, model, ema_model, noise_scheduler, class_names):
    """A pipeline holding a copy of the network (plain, contiguous, uncompiled) with the EMA weights when EMA is on."""
    trained = accelerator.unwrap_model(model, keep_torch_compile=False)
    unet = type(trained).from_config(trained.config).to(accelerator.device)
    unet.load_state_dict(trained.state_dict())
    if ema_model is not None:
        ema_model.copy_to(unet.parameters())
    unet.eval()
    return DDPMCFGPipeline(unet=unet, scheduler=noise_scheduler, id2label=dict(enumerate(class_names or [])) or None)


def save_epoch_figures(args, accelerator, pipeline, row_conditions, epoch, step):
    """The grid of the epoch (samples/epoch_NNNN.png, and to the trackers), with --epoch_sampler. A grid whose sampling
    diverges (an early model with a fast sampler) is skipped with a warning: it is not worth stopping training for."""
    num_steps = args.num_inference_steps or args.num_train_timesteps
    if args.epoch_sampler != "ddpm":
        pipeline.scheduler = make_sampler(args.epoch_sampler, pipeline.scheduler.config)
        num_steps = default_num_steps(args.epoch_sampler, args.num_train_timesteps)
    progress_desc = f"epoch {epoch} grid ({args.epoch_sampler}, {num_steps} steps)"
    try:
        samples, _ = sample_grid(pipeline, row_conditions, args.guidance_scale, num_steps, args.seed, 0, progress_desc)
    except ValueError as error:
        logger.warning(f"No sample grid for epoch {epoch}: {error}")
        return
    grid = save_epoch_grid(args.output_dir, samples, pipeline.num_classes, epoch)
    log_images_to_trackers(accelerator, "samples", grid, step)


def save_model(args, pipeline, metrics):
    """The pipeline with its model card and metrics.json in --output_dir, moved in whole component by component
    (model_index.json last), so a run killed at any moment leaves a loadable folder; pushed with --push_to_hub."""

    def write_card_and_metrics(folder):
        with open(os.path.join(folder, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        card = make_run_card(folder, vars(args), metrics, repo_id=args.hub_model_id or args.output_dir)
        card.save(os.path.join(folder, "README.md"))

    save_pipeline_folder(pipeline, args.output_dir, write_extras=write_card_and_metrics)
    if args.push_to_hub:
        push_run_folder(args.output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)


def run_metrics(args, accelerator, pipeline, losses_path, throughput, speed, row_conditions, preload_seconds):
    losses = read_losses(losses_path)
    return {
        "final_loss": final_loss(losses),
        "steps": len(losses),
        **throughput.metrics(),
        "data_preload_seconds": None if preload_seconds is None else round(preload_seconds, 2),
        "mixed_precision": accelerator.mixed_precision,
        "speed_settings": speed,
        "num_classes": pipeline.num_classes,
        "class_names": list(pipeline.id2label.values()) if pipeline.num_classes else None,
        "multi_label": pipeline.is_multi_label,
        "grid_rows": row_conditions,
        "guidance_scale": args.guidance_scale,
        "seed": args.seed,
        "unet_parameters": sum(parameter.numel() for parameter in pipeline.unet.parameters()),
    }


def non_finite_loss_message(args, checkpoints_dir, value, step):
    kept = [os.path.basename(path) for _, path in list_checkpoints(checkpoints_dir)]
    return (
        f"Loss became {value} at step {step}; training stopped there, and no checkpoint or saved model holds weights "
        f"that loss updated. Checkpoints kept in {checkpoints_dir}: {kept or 'none yet'}. Usual causes: a learning "
        f"rate too high (--learning_rate {args.learning_rate:g}; try 3-10x lower, or more --lr_warmup_steps) and fp16 "
        f"overflow (--mixed_precision {args.mixed_precision}; use bf16 or no). Change them, then "
        "--resume_from_checkpoint latest or start anew."
    )


def write_run_folder(args, model, noise_scheduler, class_names):
    """Take the run folder for this run (refused when another process writes there), create (or, resuming, keep) it
    marked, and record the run's settings and what its pipeline is made of, so that export_checkpoint.py can turn any
    checkpoint into a pipeline (main process). Returns the folder's lock, held until the run ends."""
    resuming = args.resume_from_checkpoint is not None
    run_lock = open_run_folder(
        args.output_dir, args.overwrite_output_dir, data_paths(args), resume=resuming, script="train_image.py"
    )
    with open(os.path.join(args.output_dir, "run_config.json"), "w") as f:
        json.dump({key: value for key, value in vars(args).items() if key != "hub_token"}, f, indent=2)
    write_pipeline_config(args.output_dir, model, noise_scheduler, dict(enumerate(class_names or [])))
    return run_lock


def make_dataloader(args, rows, num_images, accelerator, speed, preloaded):
    return torch.utils.data.DataLoader(
        rows,
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=0 if preloaded else args.dataloader_num_workers,
        pin_memory=speed["pinned_batches"],
        drop_last=num_images >= args.train_batch_size * accelerator.num_processes,
    )


def make_optimizer(args, model, speed):
    betas = (args.adam_beta1, args.adam_beta2)
    return torch.optim.AdamW(
        model.parameters(),
        lr=args.learning_rate,
        betas=betas,
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
        fused=speed["fused_adamw"],
    )


def make_ema(args, accelerator, model, speed):
    """The EMA of the weights (None without --use_ema), on the training device."""
    if not args.use_ema:
        return None
    parameters = accelerator.unwrap_model(model, keep_torch_compile=False).parameters()
    ema_model = EMAModel(
        parameters,
        decay=args.ema_max_decay,
        use_ema_warmup=True,
        inv_gamma=args.ema_inv_gamma,
        power=args.ema_power,
        foreach=speed["foreach_ema"],
    )
    ema_model.to(accelerator.device)
    return ema_model


def resume_position(args, accelerator, checkpoints_dir, states, process_states, loss_log, steps_per_epoch):
    """With --resume_from_checkpoint: restore the checkpoint's state; returns (step, epoch, batches to skip in it)."""
    found = None
    if args.resume_from_checkpoint:
        run_id = read_run_id(args.output_dir)  # only this run's own checkpoints are taken
        found = resolve_checkpoint(checkpoints_dir, args.resume_from_checkpoint, run_id=run_id)
    if found is None:
        if args.resume_from_checkpoint:
            logger.info(f"No checkpoint yet in {checkpoints_dir}; starting a new run.")
        return 0, 0, 0
    global_step, path = found
    load_checkpoint(accelerator, path, states=states, process_states=process_states)
    loss_log.forget_after(global_step)  # logged steps after the checkpoint run again
    logger.info(f"Resumed from {path} at step {global_step}")
    skipped_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
    return global_step, global_step // steps_per_epoch, skipped_batches


def init_trackers(args, accelerator):
    if accelerator.is_main_process and args.logger != "none":
        config = {key: value for key, value in vars(args).items() if isinstance(value, (int, float, str, bool))}
        wandb_dir = {"wandb": {"dir": os.path.join(args.output_dir, "logs")}}
        accelerator.init_trackers("train_image", config=config, init_kwargs=wandb_dir)


def training_inputs(args, batch, image_cache, generator, speed, num_classes, multi_label):
    """The batch's clean images (from the preloaded cache when there is one) and conditions, with the labels dropped
    to the null condition with probability --cond_drop_prob (classifier-free guidance training)."""
    if image_cache is None:
        clean_images = batch["pixel_values"]
    else:
        clean_images = uint8_to_model_input(image_cache[batch["index"]], args.random_flip, generator)
    if speed["channels_last"]:
        clean_images = clean_images.contiguous(memory_format=torch.channels_last)
    if num_classes is None:
        return clean_images, {}
    drop = torch.rand(clean_images.shape[0], generator=generator, device=clean_images.device) < args.cond_drop_prob
    if multi_label:  # the null condition of a multi-label model is the all-zero vector
        return clean_images, {"class_labels": batch["class_labels"] * ~drop[:, None]}
    return clean_images, {"class_labels": torch.where(drop, num_classes, batch["class_labels"])}


def save_final_outputs(args, accelerator, pipeline, metrics, row_conditions, step, last_epoch):
    """The final grid, GIF, denoising grid and loss curve, then the pipeline, card and metrics (main process)."""
    num_steps = args.num_inference_steps or args.num_train_timesteps
    samples, frames = sample_grid(
        pipeline,
        row_conditions,
        args.guidance_scale,
        num_steps,
        args.seed,
        num_frames=40,
        progress_desc="final grid and GIF",
    )
    grid = save_epoch_grid(args.output_dir, samples, pipeline.num_classes, last_epoch)
    log_images_to_trackers(accelerator, "samples", grid, step)
    title = f"Training loss (MSE on the {args.prediction_type} target)"
    losses = read_losses(os.path.join(args.output_dir, "losses.jsonl"))
    save_run_figures(args.output_dir, samples, frames, pipeline.num_classes, losses, title)
    save_model(args, pipeline, metrics)
    logger.info(
        f"wrote {args.output_dir}: final loss {metrics['final_loss']:.4f}, {metrics['images_per_second']} images/s"
    )


def main(args):
    # Everything that can fail on bad input happens before the output folder is touched.
    dataset, mode, class_names, multi_label = prepare_dataset(args)
    num_classes, channels = (len(class_names) if class_names else None), (1 if mode == "L" else 3)
    row_conditions = figure_conditions(args, dataset, class_names, multi_label)
    set_seed(args.seed)  # the initial weights too come from --seed
    model, noise_scheduler = build_model(args, channels, class_names, multi_label)
    speed = resolve_speed_settings(args, PartialState().device, len(dataset), channels)
    accelerator = make_accelerator(args, speed)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    datasets.utils.logging.set_verbosity_error()
    # preloaded before the output folder is touched: an unreadable image stops the run here
    train_rows, image_cache, preload_seconds = training_rows(args, dataset, mode, class_names, multi_label, speed)
    run_lock = write_run_folder(args, model, noise_scheduler, class_names) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    set_seed(args.seed)

    dataloader = make_dataloader(args, train_rows, len(dataset), accelerator, speed, image_cache is not None)
    optimizer = make_optimizer(args, model, speed)
    if speed["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    steps_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    # Not passed to accelerator.prepare: stepped by hand once per optimizer step, whatever the number of processes.
    warmup, total = args.lr_warmup_steps, max_train_steps
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total)
    training_rng = TrainingRNG(args.seed + accelerator.process_index, accelerator.device)
    ema_model = make_ema(args, accelerator, model, speed)
    # Saved in the checkpoints as safetensors and JSON by ddpm_hf (never pickled), and restored from them.
    states, process_states = {"lr_scheduler": lr_scheduler, "ema": ema_model}, {"training_rng": training_rng}
    checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
    run_id = read_run_id(args.output_dir)  # recorded in each checkpoint: no other run takes it for its own
    losses_path = os.path.join(args.output_dir, "losses.jsonl")
    on_non_finite = functools.partial(non_finite_loss_message, args, checkpoints_dir)
    loss_log = DeferredLossLog(
        accelerator, losses_path, speed["loss_read_steps"], args.logger != "none", on_non_finite
    )
    global_step, first_epoch, resume_batches = resume_position(
        args, accelerator, checkpoints_dir, states, process_states, loss_log, steps_per_epoch
    )
    if global_step >= max_train_steps and os.path.isfile(os.path.join(args.output_dir, "metrics.json")):
        logger.info(f"{args.output_dir} finished its {max_train_steps} steps already: nothing to train.")
        if run_lock is not None:
            run_lock.release()
        return accelerator.end_training()
    init_trackers(args, accelerator)
    logger.info(
        f"{len(dataset)} images, {channels} channel(s) at {args.resolution}px, classes: {class_names}; "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {max_train_steps} steps of "
        f"{args.train_batch_size}x{accelerator.num_processes}x{args.gradient_accumulation_steps} images; speed "
        f"settings {speed}"
    )

    def pipeline_now():  # the model as it stands, EMA weights in a plain copy of the network
        return build_pipeline(accelerator, model, ema_model, noise_scheduler, class_names)

    def metrics_now(pipeline):
        return run_metrics(
            args, accelerator, pipeline, losses_path, throughput, speed, row_conditions, preload_seconds
        )

    progress = tqdm(
        range(max_train_steps), initial=global_step, disable=not accelerator.is_local_main_process, desc="train"
    )
    throughput = ThroughputRecord(accelerator.device)
    throughput.start()
    step_loss = None  # the mean over the accumulated batches of one optimizer step, on the device
    for epoch in range(first_epoch, num_epochs if global_step < max_train_steps else first_epoch):
        model.train()
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        epoch_loader = dataloader
        if epoch == first_epoch and resume_batches:
            epoch_loader = accelerator.skip_first_batches(dataloader, resume_batches)
        for batch in epoch_loader:
            clean_images, model_kwargs = training_inputs(
                args, batch, image_cache, training_rng.generator, speed, num_classes, multi_label
            )
            with accelerator.accumulate(model):
                loss = diffusion_loss(
                    model,
                    noise_scheduler,
                    clean_images,
                    training_rng.generator,
                    loss_weighting=args.loss_weighting,
                    **model_kwargs,
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            throughput.add_images(clean_images.shape[0] * accelerator.num_processes)
            micro_loss = loss.detach() / args.gradient_accumulation_steps  # a non-finite one makes the mean non-finite
            step_loss = micro_loss if step_loss is None else step_loss + micro_loss
            if not accelerator.sync_gradients:
                continue
            # One optimizer step has happened on every process.
            lr_scheduler.step()
            if ema_model is not None:
                ema_model.step(accelerator.unwrap_model(model, keep_torch_compile=False).parameters())
            global_step += 1
            throughput.step_done()
            logs = {"lr": lr_scheduler.get_last_lr()[0]}
            if ema_model is not None:
                logs["ema_decay"] = ema_model.cur_decay_value
            loss_log.add(global_step, step_loss, logs)
            step_loss = None
            progress.update(1)
            checkpoint_due = global_step % args.checkpointing_steps == 0 or global_step == max_train_steps
            if checkpoint_due or throughput.steps == 1 or loss_log.due():
                last = loss_log.read()  # before a checkpoint: no checkpoint holds weights a non-finite loss updated
                progress.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{last['lr']:.2e}")
                throughput.first_step_done()  # compile and other warm-up included
            if checkpoint_due:
                save_checkpoint(
                    accelerator,
                    checkpoints_dir,
                    global_step,
                    args.checkpoints_total_limit,
                    states=states,
                    process_states=process_states,
                    run_id=run_id,
                )
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps:
            break  # the last epoch's figures come from the final outputs
        save_now = args.save_model_epochs is not None and (epoch + 1) % args.save_model_epochs == 0
        grid_now = (epoch + 1) % args.save_images_epochs == 0
        if save_now:
            loss_log.read()  # on every process: the read gathers the losses
        if accelerator.is_main_process and (save_now or grid_now):
            with throughput.excluded():  # sampling and saving are not training
                pipeline = pipeline_now()
                if save_now:
                    save_model(args, pipeline, metrics_now(pipeline))
                if grid_now:
                    save_epoch_figures(args, accelerator, pipeline, row_conditions, epoch, global_step)
    loss_log.read()  # none normally: the last step always reads (it checkpoints)
    throughput.finish()  # the last step's loss was read, so its work is done
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        pipeline = pipeline_now()
        save_final_outputs(
            args, accelerator, pipeline, metrics_now(pipeline), row_conditions, global_step, num_epochs - 1
        )
        run_lock.release()
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
