"""Train an image DDPM (UNet2DModel), unconditional or class-conditional for classifier-free guidance.

    accelerate launch train_scripts/train_image.py --dataset_name digits --resolution 16 --output_dir outputs/digits
    accelerate launch train_scripts/train_image.py --config train_scripts/configs/digits.yaml

Writes to --output_dir: the DDPMCFGPipeline (model_index.json, unet/ with the EMA weights when EMA is on,
scheduler/), loss_curve.png, grid.png, denoising.gif, metrics.json, logs/ (TensorBoard), samples/ (images saved
every --save_images_epochs) and checkpoints/ (accelerate states for --resume_from_checkpoint).
"""

import argparse
import json
import logging
import math
import os
import shutil
import time

import datasets
import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.logging import get_logger
from accelerate.utils import (
    DataLoaderConfiguration,
    DynamoBackend,
    ProjectConfiguration,
    TorchDynamoPlugin,
    set_seed,
)
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
from ddpm_hf.hub import make_model_card, push_run_folder
from ddpm_hf.models import LABEL_CONDITIONINGS, check_resolution
from ddpm_hf.training import (
    LOSS_WEIGHTINGS,
    TrainingRNG,
    check_output_dir,
    diffusion_loss,
    list_checkpoints,
    parse_args_with_config,
    resolve_checkpoint,
    save_checkpoint,
)
from ddpm_hf.viz import denoising_grid, image_grid, save_denoising_gif, save_grid, save_loss_curve, tensor_to_pil

logger = get_logger(__name__, log_level="INFO")

LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
CONDITIONS = ("auto", "none", "class", "multi_label")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = tuple(backend.value.lower() for backend in DynamoBackend if backend != DynamoBackend.NO)
DATA_ON_DEVICE_AUTO_GIB = 4.0
LOSS_READ_STEPS_CUDA = 50


def build_parser():
    parser = argparse.ArgumentParser(description="Train an image DDPM with accelerate.")
    parser.add_argument(
        "--config", type=str, default=None, help="YAML/JSON preset whose keys are flags of this script."
    )
    # data
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="'digits', a .npz file, a local dataset folder, or a Hub dataset id (e.g. ylecun/mnist, cifar10).",
    )
    parser.add_argument("--dataset_config_name", type=str, default=None, help="Config name of a Hub dataset.")
    parser.add_argument(
        "--train_data_dir", type=str, default=None, help="Local images (class sub-folders = labels) or dataset files."
    )
    parser.add_argument("--cache_dir", type=str, default=None, help="Cache folder for Hub datasets.")
    parser.add_argument("--image_column", type=str, default=None, help="Image column; found automatically if unset.")
    parser.add_argument("--label_column", type=str, default=None, help="Label column; found automatically if unset.")
    parser.add_argument(
        "--condition",
        type=str,
        default="auto",
        help="'class' (one label per image, a null class for CFG), 'multi_label' (a list of labels per image, e.g. "
        "i-CLEVR; a multi-hot condition whose all-zero row is the null condition), 'none', or 'auto' (whichever the "
        "label column holds, none without one).",
    )
    parser.add_argument(
        "--sample_conditions_file",
        type=str,
        default=None,
        help="Multi-label models: a test.json-style file (a list of lists of label names) whose first conditions make "
        "the rows of the sample grids; defaults to test.json beside --train_data_dir, else the first training labels.",
    )
    parser.add_argument("--resolution", type=int, default=32, help="Training image side in pixels.")
    parser.add_argument(
        "--resize_mode",
        type=str,
        default="crop",
        help="'crop': shorter side to --resolution, then a square crop; 'stretch': the whole image to the square "
        "(nothing cut off; for scenes whose labels name every object, such as i-CLEVR).",
    )
    parser.add_argument(
        "--center_crop", action=argparse.BooleanOptionalAction, default=True, help="Centre (else random) crop."
    )
    parser.add_argument("--random_flip", action="store_true", help="Flip images left-right at random.")
    parser.add_argument(
        "--skip_bad_images",
        action="store_true",
        help="Decode every image before training and skip unreadable ones (with a count); default: stop at the first.",
    )
    parser.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")
    # model and diffusion
    parser.add_argument("--model_preset", type=str, default="small", help=f"U-Net size, one of {list(UNET_PRESETS)}.")
    parser.add_argument(
        "--label_conditioning",
        type=str,
        default="projection",
        help="Multi-label models: 'projection' (the multi-hot vector projected into the time embedding) or 'tokens' "
        "(that, plus cross-attention to one token per requested label at the preset's attention levels).",
    )
    parser.add_argument("--num_train_timesteps", type=int, default=1000, help="Diffusion steps T.")
    parser.add_argument("--beta_schedule", type=str, default="linear", help=f"One of {list(BETA_SCHEDULES)}.")
    parser.add_argument("--beta_start", type=float, default=1e-4, help="First beta (linear/quad).")
    parser.add_argument("--beta_end", type=float, default=0.02, help="Last beta (linear/quad).")
    parser.add_argument("--prediction_type", type=str, default="epsilon", help=f"One of {list(PREDICTION_TYPES)}.")
    parser.add_argument(
        "--loss_weighting",
        type=str,
        default="auto",
        help=f"One of {list(LOSS_WEIGHTINGS)}: 'uniform' is MSE on the prediction target, 'epsilon' weights it into "
        "the MSE of the implied noise; 'auto' is 'epsilon' for --prediction_type mean and 'uniform' otherwise.",
    )
    parser.add_argument(
        "--cond_drop_prob", type=float, default=0.1, help="Probability of training a label as the null class."
    )
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance s for the saved sample images.")
    # optimisation
    parser.add_argument("--train_batch_size", type=int, default=64, help="Batch size per process.")
    parser.add_argument("--num_epochs", type=int, default=100, help="Epochs, unless --max_train_steps is set.")
    parser.add_argument("--max_train_steps", type=int, default=None, help="Optimizer steps; overrides --num_epochs.")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1, help="Batches per optimizer step.")
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="Peak learning rate of AdamW.")
    parser.add_argument("--lr_scheduler", type=str, default="cosine", help=f"One of {list(LR_SCHEDULERS)}.")
    parser.add_argument("--lr_warmup_steps", type=int, default=500, help="Warm-up optimizer steps.")
    parser.add_argument("--adam_beta1", type=float, default=0.95, help="AdamW beta1.")
    parser.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW beta2.")
    parser.add_argument("--adam_weight_decay", type=float, default=1e-6, help="AdamW weight decay.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="AdamW epsilon.")
    parser.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm (0 disables).")
    parser.add_argument(
        "--use_ema", action=argparse.BooleanOptionalAction, default=True, help="Keep an EMA of weights."
    )
    parser.add_argument("--ema_inv_gamma", type=float, default=1.0, help="EMA warm-up inverse gamma.")
    parser.add_argument("--ema_power", type=float, default=3 / 4, help="EMA warm-up power.")
    parser.add_argument("--ema_max_decay", type=float, default=0.9999, help="Largest EMA decay.")
    parser.add_argument(
        "--mixed_precision", type=str, default=None, help="'no', 'fp16' or 'bf16'; default: accelerate's config."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of training and of the saved samples.")
    # speed: None means "auto", on where it is known to pay (CUDA) and off elsewhere
    parser.add_argument(
        "--channels_last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Train in channels_last memory format (default: on CUDA).",
    )
    parser.add_argument(
        "--fused_adamw",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="AdamW's fused implementation, one kernel for all parameters (default: on CUDA).",
    )
    parser.add_argument(
        "--foreach_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Update the EMA weights with multi-tensor (foreach) operations.",
    )
    parser.add_argument(
        "--torch_compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Compile the U-Net with torch.compile (through accelerate; default: on CUDA). The first steps then "
        "include the compile warm-up, which torch caches on disk for later runs of the same model.",
    )
    parser.add_argument(
        "--torch_compile_mode",
        type=str,
        default=None,
        help=f"torch.compile mode, one of {list(COMPILE_MODES)}; default: torch's default.",
    )
    parser.add_argument(
        "--compile_backend",
        type=str,
        default="inductor",
        help=f"torch.compile backend, one of accelerate's: {list(COMPILE_BACKENDS)}.",
    )
    parser.add_argument(
        "--data_on_device",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Decode, resize and crop every image once before training and keep them as uint8 on the training device; "
        "flips and scaling then happen there. Needs --center_crop. Default: on CUDA when the images take at most "
        f"{DATA_ON_DEVICE_AUTO_GIB:g} GiB and 1/4 of the GPU's memory.",
    )
    parser.add_argument(
        "--loss_read_steps",
        type=int,
        default=None,
        help="Copy the loss to the host (to log it and check that it is finite) every N steps instead of every step, "
        "so the GPU is never waited on in between; always before a checkpoint. Default: 1 on the CPU, "
        f"{LOSS_READ_STEPS_CUDA} on CUDA.",
    )
    # outputs
    parser.add_argument("--output_dir", type=str, default=None, help="Run folder (required).")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="Replace a folder holding another run.")
    parser.add_argument("--checkpointing_steps", type=int, default=500, help="Save a checkpoint every N steps.")
    parser.add_argument("--checkpoints_total_limit", type=int, default=2, help="Keep at most N checkpoints.")
    parser.add_argument(
        "--resume_from_checkpoint", type=str, default=None, help="'latest' or a checkpoint folder to resume from."
    )
    parser.add_argument("--logger", type=str, default="tensorboard", help="'tensorboard' or 'none'.")
    parser.add_argument("--save_images_epochs", type=int, default=10, help="Save a sample grid every N epochs.")
    parser.add_argument(
        "--num_inference_steps", type=int, default=None, help="Sampling steps for saved images; default T."
    )
    parser.add_argument("--push_to_hub", action="store_true", help="Upload the final pipeline to the Hub.")
    parser.add_argument("--hub_model_id", type=str, default=None, help="Hub repository for --push_to_hub.")
    parser.add_argument("--hub_token", type=str, default=None, help="Hub token (default: the logged-in one).")
    parser.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repository as private.")
    parser.add_argument("--hub_license", type=str, default="apache-2.0", help="License id written in the model card.")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parse_args_with_config(parser, argv)
    check_args(args)
    return args


def check_args(args):
    """Reject bad flags before anything is read or written."""
    if args.output_dir is None:
        raise ValueError("--output_dir is required (on the command line or in --config).")
    if (args.dataset_name is None) == (args.train_data_dir is None):
        raise ValueError("Give exactly one of --dataset_name and --train_data_dir.")
    choices = {
        "condition": CONDITIONS,
        "model_preset": tuple(UNET_PRESETS),
        "label_conditioning": LABEL_CONDITIONINGS,
        "beta_schedule": BETA_SCHEDULES,
        "prediction_type": PREDICTION_TYPES,
        "loss_weighting": LOSS_WEIGHTINGS,
        "resize_mode": RESIZE_MODES,
        "lr_scheduler": LR_SCHEDULERS,
        "logger": ("tensorboard", "none"),
        "mixed_precision": (None, "no", "fp16", "bf16"),
        "torch_compile_mode": COMPILE_MODES,
        "compile_backend": COMPILE_BACKENDS,
    }
    for name, allowed in choices.items():
        if getattr(args, name) not in allowed:
            raise ValueError(f"Unknown --{name} {getattr(args, name)!r}; choose one of {list(allowed)}.")
    for name in ("train_batch_size", "num_epochs", "gradient_accumulation_steps", "num_train_timesteps",
                 "checkpointing_steps", "save_images_epochs", "resolution"):  # fmt: skip
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.loss_read_steps is not None and args.loss_read_steps < 1:
        raise ValueError(f"--loss_read_steps must be >= 1, got {args.loss_read_steps}.")
    if args.data_on_device and not args.center_crop:
        raise ValueError(
            "--data_on_device keeps one crop of each image, and --no-center_crop asks for a new random crop every "
            "epoch; drop one of the two."
        )
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"--max_train_steps must be >= 1, got {args.max_train_steps}.")
    if not 0 <= args.cond_drop_prob < 1:
        raise ValueError(f"--cond_drop_prob must be in [0, 1), got {args.cond_drop_prob}.")
    if args.guidance_scale < 0:
        raise ValueError(f"--guidance_scale must be >= 0, got {args.guidance_scale}.")
    if args.num_inference_steps is not None and not 1 <= args.num_inference_steps <= args.num_train_timesteps:
        raise ValueError(
            f"--num_inference_steps must be in 1..{args.num_train_timesteps}, got {args.num_inference_steps}."
        )
    if not args.learning_rate > 0:
        raise ValueError(f"--learning_rate must be > 0, got {args.learning_rate}.")
    check_resolution(args.model_preset, args.resolution)
    if args.resume_from_checkpoint is None:
        check_output_dir(args.output_dir, args.overwrite_output_dir)
    else:
        check_same_run(args)
    if args.sample_conditions_file is not None and not os.path.isfile(args.sample_conditions_file):
        raise ValueError(f"--sample_conditions_file {args.sample_conditions_file!r} is not a file.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/ddpm-digits).")


MODE_SAMPLE = 64  # greyscale training only if these first images are all greyscale
# Settings that make a run what it is: resuming a folder whose run differs in any of them is refused.
RUN_IDENTITY_KEYS = (
    "dataset_name", "dataset_config_name", "train_data_dir", "image_column", "label_column", "condition",
    "resolution", "model_preset", "label_conditioning", "num_train_timesteps", "beta_schedule", "beta_start",
    "beta_end", "prediction_type",
)  # fmt: skip
IDENTITY_DEFAULTS_OF_OLDER_RUNS = {"label_conditioning": "projection"}


def run_identity(args):
    return {key: getattr(args, key) for key in RUN_IDENTITY_KEYS}


def check_same_run(args):
    """Refuse to resume into an output_dir whose run_config.json records a different run."""
    path = os.path.join(args.output_dir, "run_config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        saved = json.load(f)
    # a folder written before a key existed ran with that key's default
    saved = {**IDENTITY_DEFAULTS_OF_OLDER_RUNS, **saved}
    different = {key: (saved.get(key), value) for key, value in run_identity(args).items() if saved.get(key) != value}
    if different:
        changes = ", ".join(f"{key}: {old!r} there, {new!r} now" for key, (old, new) in different.items())
        raise ValueError(
            f"{args.output_dir} holds a different run ({changes}); resume with its settings, or train into another "
            "output_dir."
        )


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
    first_images = dataset.select(range(min(MODE_SAMPLE, len(dataset))))[image_column]
    mode = dataset_mode(
        decode_image(value, f"image {i} of column {image_column!r}") for i, value in enumerate(first_images)
    )

    def transform(batch):
        pixel_values = []
        for value in batch[image_column]:
            image = decode_image(value, f"image in column {image_column!r}")
            pixel_values.append(
                preprocess_image(
                    image, args.resolution, mode, args.center_crop, args.random_flip, resize_mode=args.resize_mode
                )
            )
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

    keep = [readable(value) for value in dataset[image_column]]
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


def read_losses(accelerator, pending_losses):
    """The mean over processes of each pending step's loss, as floats: one host sync for all of them."""
    stacked = torch.stack([loss for _, loss, _ in pending_losses])[None]
    return accelerator.gather(stacked).float().mean(dim=0).tolist()


def main(args):
    # Everything that can fail on bad input happens before the output folder is touched.
    dataset, mode, class_names, multi_label = prepare_dataset(args)
    num_classes = len(class_names) if class_names else None
    channels = 1 if mode == "L" else 3
    row_conditions = figure_conditions(args, dataset, class_names, multi_label)
    set_seed(args.seed)  # the initial weights too come from --seed
    model = make_unet(
        args.model_preset,
        args.resolution,
        channels,
        num_classes,
        multi_label,
        label_conditioning=args.label_conditioning,
    )
    noise_scheduler = ExtendedDDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        prediction_type=args.prediction_type,
    )

    speed = resolve_speed_settings(args, PartialState().device, len(dataset), channels)
    accelerator = Accelerator(
        dynamo_plugin=(
            TorchDynamoPlugin(backend=args.compile_backend, mode=args.torch_compile_mode)
            if speed["torch_compile"]
            else None
        ),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.logger == "none" else args.logger,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")
        ),
        # pinned batches copied with non_blocking: a copy from pageable memory would wait for the GPU every step
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=speed["pinned_batches"]),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    datasets.utils.logging.set_verbosity_error()
    train_rows, image_cache, preload_seconds = dataset, None, None
    if speed["data_on_device"]:  # before the output folder is touched: an unreadable image stops the run here
        preload_start = time.time()
        image_cache, train_rows = preload_training_data(args, dataset, mode, class_names, multi_label)
        image_cache = image_cache.to(accelerator.device)
        preload_seconds = time.time() - preload_start
    if accelerator.is_main_process:
        if args.overwrite_output_dir and args.resume_from_checkpoint is None and os.path.isdir(args.output_dir):
            shutil.rmtree(args.output_dir)
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "run_config.json"), "w") as f:
            json.dump(run_identity(args), f, indent=2)
    accelerator.wait_for_everyone()
    set_seed(args.seed)

    dataloader = torch.utils.data.DataLoader(
        train_rows,
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=0 if image_cache is not None else args.dataloader_num_workers,
        pin_memory=speed["pinned_batches"],
        drop_last=len(dataset) >= args.train_batch_size * accelerator.num_processes,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
        fused=speed["fused_adamw"],
    )
    if speed["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    steps_per_epoch = math.ceil(len(dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    # Not passed to accelerator.prepare: stepped by hand once per optimizer step, whatever the number of processes.
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps,
        num_training_steps=max_train_steps,
    )
    accelerator.register_for_checkpointing(lr_scheduler)
    training_rng = TrainingRNG(args.seed + accelerator.process_index, accelerator.device)
    accelerator.register_for_checkpointing(training_rng)
    ema_model = None
    if args.use_ema:
        ema_model = EMAModel(
            accelerator.unwrap_model(model, keep_torch_compile=False).parameters(),
            decay=args.ema_max_decay,
            use_ema_warmup=True,
            inv_gamma=args.ema_inv_gamma,
            power=args.ema_power,
            foreach=speed["foreach_ema"],
        )
        ema_model.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_model)

    global_step, first_epoch, resume_batches = 0, 0, 0
    losses_path = os.path.join(args.output_dir, "losses.jsonl")
    checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
    if args.resume_from_checkpoint:
        found = resolve_checkpoint(checkpoints_dir, args.resume_from_checkpoint)
        if found is None:
            logger.info("No checkpoint yet in %s; starting a new run.", checkpoints_dir)
        else:
            global_step, path = found
            accelerator.load_state(path)
            if accelerator.is_main_process and os.path.exists(losses_path):
                # forget losses logged after the checkpoint: those steps run again
                with open(losses_path) as f:
                    kept = [line for line in f if json.loads(line)["step"] <= global_step]
                with open(losses_path, "w") as f:
                    f.writelines(kept)
            first_epoch = global_step // steps_per_epoch
            resume_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
            logger.info(f"Resumed from {path} at step {global_step}")

    if accelerator.is_main_process and args.logger != "none":
        tracker_config = {
            key: value for key, value in vars(args).items() if isinstance(value, (int, float, str, bool))
        }
        accelerator.init_trackers("train_image", config=tracker_config)
    logger.info(
        f"{len(dataset)} images, {channels} channel(s) at {args.resolution}px, classes: {class_names}; "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {max_train_steps} steps of "
        f"{args.train_batch_size}x{accelerator.num_processes}x{args.gradient_accumulation_steps} images; speed "
        f"settings {speed}"
    )

    progress = tqdm(
        range(max_train_steps), initial=global_step, disable=not accelerator.is_local_main_process, desc="train"
    )
    null_class = num_classes
    # Losses stay on the device until read, every --loss_read_steps steps and before every checkpoint.
    pending_losses, step_loss, steps_this_run, first_step_seconds, first_step_images = [], None, 0, None, 0
    start_time, images_seen, sample_grid_seconds = time.time(), 0, 0.0
    for epoch in range(first_epoch, num_epochs):
        model.train()
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        epoch_loader = dataloader
        if epoch == first_epoch and resume_batches:
            epoch_loader = accelerator.skip_first_batches(dataloader, resume_batches)
        for batch in epoch_loader:
            if image_cache is None:
                clean_images = batch["pixel_values"]
            else:
                clean_images = uint8_to_model_input(
                    image_cache[batch["index"]], args.random_flip, training_rng.generator
                )
            if speed["channels_last"]:
                clean_images = clean_images.contiguous(memory_format=torch.channels_last)
            model_kwargs = {}
            if num_classes is not None:
                # classifier-free guidance training: the label becomes the null class with probability cond_drop_prob
                drop_draw = torch.rand(
                    clean_images.shape[0], generator=training_rng.generator, device=clean_images.device
                )
                drop = drop_draw < args.cond_drop_prob
                if multi_label:  # the null condition of a multi-label model is the all-zero vector
                    model_kwargs["class_labels"] = batch["class_labels"] * ~drop[:, None]
                else:
                    model_kwargs["class_labels"] = torch.where(drop, null_class, batch["class_labels"])
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
            images_seen += clean_images.shape[0] * accelerator.num_processes
            # the mean over the accumulated batches; a non-finite one anywhere makes it non-finite
            micro_loss = loss.detach() / args.gradient_accumulation_steps
            step_loss = micro_loss if step_loss is None else step_loss + micro_loss
            if not accelerator.sync_gradients:
                continue
            # One optimizer step has happened on every process.
            lr_scheduler.step()
            if ema_model is not None:
                ema_model.step(accelerator.unwrap_model(model, keep_torch_compile=False).parameters())
            global_step += 1
            steps_this_run += 1
            logs = {"lr": lr_scheduler.get_last_lr()[0], "step": global_step}
            if ema_model is not None:
                logs["ema_decay"] = ema_model.cur_decay_value
            pending_losses.append((global_step, step_loss, logs))
            step_loss = None
            progress.update(1)
            checkpoint_due = global_step % args.checkpointing_steps == 0 or global_step == max_train_steps
            if checkpoint_due or steps_this_run == 1 or len(pending_losses) >= speed["loss_read_steps"]:
                log_losses(args, accelerator, pending_losses, progress, losses_path, checkpoints_dir)
                pending_losses = []
                if steps_this_run == 1:  # compile and other warm-up included
                    first_step_seconds, first_step_images = time.time() - start_time, images_seen
            if checkpoint_due:
                save_checkpoint(accelerator, checkpoints_dir, global_step, args.checkpoints_total_limit)
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps:
            break  # the last epoch's samples come from save_final_outputs
        if accelerator.is_main_process and (epoch + 1) % args.save_images_epochs == 0:
            if accelerator.device.type == "cuda":  # queued training work belongs to training, not to the grid
                torch.cuda.synchronize(accelerator.device)
            grid_start = time.time()
            pipeline = build_pipeline(accelerator, model, ema_model, noise_scheduler, class_names)
            save_epoch_grid(args, sample_for_figures(args, pipeline, row_conditions)[0], num_classes, epoch)
            sample_grid_seconds += time.time() - grid_start
    if pending_losses:  # none normally: the last step always reads (it checkpoints)
        log_losses(args, accelerator, pending_losses, progress, losses_path, checkpoints_dir)
    # the last step's losses were read, so its work is done; the per-epoch sample grids are not training
    train_seconds = time.time() - start_time - sample_grid_seconds
    # the training loop's peak, before the final sampling
    peak_memory = torch.cuda.max_memory_allocated(accelerator.device) if accelerator.device.type == "cuda" else None
    progress.close()
    after_first = train_seconds - (first_step_seconds or 0)
    run_metrics = {
        "train_seconds": round(train_seconds, 2),
        "sample_grid_seconds": round(sample_grid_seconds, 2),
        "images_per_second": round(images_seen / max(train_seconds, 1e-9), 1),
        "first_step_seconds": None if first_step_seconds is None else round(first_step_seconds, 2),
        "images_per_second_after_first_step": (
            round((images_seen - first_step_images) / after_first, 1)
            if steps_this_run > 1 and after_first > 0
            else None
        ),
        "data_preload_seconds": None if preload_seconds is None else round(preload_seconds, 2),
        "mixed_precision": accelerator.mixed_precision,
        "peak_gpu_memory_gib": None if peak_memory is None else round(peak_memory / 2**30, 3),
        "speed_settings": speed,
    }

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        pipeline = build_pipeline(accelerator, model, ema_model, noise_scheduler, class_names)
        save_final_outputs(args, pipeline, row_conditions, num_epochs - 1, losses_path, run_metrics)
        if args.push_to_hub:
            push_run_folder(args.output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
    accelerator.end_training()


def log_losses(args, accelerator, pending_losses, progress, losses_path, checkpoints_dir):
    """
    Read the pending steps' losses (one host sync), log the finite ones, and stop the run at the first non-finite one.
    Every process reads at the same steps, so all of them stop together, and always before a checkpoint, so no
    checkpoint or saved model holds weights that a non-finite loss updated.
    """
    step_losses = read_losses(accelerator, pending_losses)
    for (step, _, logs), step_loss in zip(pending_losses, step_losses):
        if not math.isfinite(step_loss):
            raise RuntimeError(non_finite_loss_message(args, step_loss, step, checkpoints_dir))
        logs = {"loss": step_loss, **logs}
        if args.logger != "none":
            accelerator.log(logs, step=step)
        if accelerator.is_main_process:
            with open(losses_path, "a") as f:
                f.write(json.dumps(logs) + "\n")
    progress.set_postfix(loss=f"{step_losses[-1]:.4f}", lr=f"{pending_losses[-1][2]['lr']:.2e}")


def non_finite_loss_message(args, value, step, checkpoints_dir):
    kept = [os.path.basename(path) for _, path in list_checkpoints(checkpoints_dir)]
    return (
        f"Loss became {value} at step {step}; training stopped there, and no checkpoint or saved model holds weights "
        f"that loss updated. Checkpoints kept in {checkpoints_dir}: {kept or 'none yet'}. Usual causes: a learning "
        f"rate too high (--learning_rate {args.learning_rate:g}; try 3-10x lower, or more --lr_warmup_steps) and fp16 "
        f"overflow (--mixed_precision {args.mixed_precision}; use bf16 or no). Change them, then "
        "--resume_from_checkpoint latest or start anew."
    )


def build_pipeline(accelerator, model, ema_model, noise_scheduler, class_names):
    """
    A pipeline holding a copy of the network (plain, contiguous, uncompiled) with the EMA weights when EMA is on.
    """
    trained = accelerator.unwrap_model(model, keep_torch_compile=False)
    unet = type(trained).from_config(trained.config).to(accelerator.device)
    unet.load_state_dict(trained.state_dict())
    if ema_model is not None:
        ema_model.copy_to(unet.parameters())
    unet.eval()
    id2label = dict(enumerate(class_names)) if class_names else None
    pipeline = DDPMCFGPipeline(unet=unet, scheduler=noise_scheduler, id2label=id2label)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def grid_shape(num_classes):
    """5x5 for unconditional models; one row per class or condition (up to 10) by 5 columns for conditional ones."""
    return (5, 5) if num_classes is None else (min(num_classes, 10), 5)


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


def save_epoch_grid(args, samples, num_classes, epoch):
    """The grid of `samples` at their own size, as samples/epoch_NNNN.png."""
    os.makedirs(os.path.join(args.output_dir, "samples"), exist_ok=True)
    rows, cols = grid_shape(num_classes)
    save_grid(tensor_to_pil(samples), rows, cols, os.path.join(args.output_dir, "samples", f"epoch_{epoch:04d}.png"))


def sample_for_figures(args, pipeline, row_conditions, num_frames: int = 0):
    """The grid's samples (N, C, H, W in [-1, 1]) from a fixed seed, and `num_frames` snapshots of x_t for a GIF."""
    rows, cols = grid_shape(pipeline.num_classes)
    class_labels = (
        None if row_conditions is None else [row_conditions[row] for row in range(rows) for _ in range(cols)]
    )
    num_steps = args.num_inference_steps or args.num_train_timesteps
    frames, keep_every = [], max(num_steps // max(num_frames, 1), 1)

    def keep_frame(pipe, step_index, timestep, callback_kwargs):
        if num_frames and (step_index % keep_every == 0 or step_index == num_steps - 1):
            frames.append(callback_kwargs["sample"].clone())
        return {}

    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    images = pipeline(
        class_labels=class_labels,
        batch_size=rows * cols,
        guidance_scale=args.guidance_scale,
        num_inference_steps=num_steps,
        generator=generator,
        output_type="pt",
        callback_on_step_end=keep_frame,
    ).images
    return images * 2 - 1, frames


def save_final_outputs(args, pipeline, row_conditions, last_epoch, losses_path, run_metrics):
    output_dir = args.output_dir
    pipeline.save_pretrained(output_dir)
    with open(losses_path) as f:
        losses = [json.loads(line)["loss"] for line in f]
    title = f"Training loss (MSE on the {pipeline.scheduler.config.prediction_type} target)"
    save_loss_curve(losses, os.path.join(output_dir, "loss_curve.png"), title=title)
    num_classes = pipeline.num_classes
    rows, cols = grid_shape(num_classes)
    samples, frames = sample_for_figures(args, pipeline, row_conditions, num_frames=40)
    save_epoch_grid(args, samples, num_classes, last_epoch)
    upscale = max(1, 64 // args.resolution)
    save_grid(tensor_to_pil(samples, upscale), rows, cols, os.path.join(output_dir, "grid.png"))
    gif_frames = [image_grid(tensor_to_pil(frame, upscale), rows, cols) for frame in frames]
    save_denoising_gif(gif_frames, os.path.join(output_dir, "denoising.gif"))
    # rows = the grid's first sample of each row, columns = time
    first_of_rows = [frame[::cols] for frame in frames]
    denoising_grid(first_of_rows, num_samples=rows, num_columns=10, upscale=upscale).save(
        os.path.join(output_dir, "denoising_grid.png")
    )
    metrics = {
        "final_loss": sum(losses[-100:]) / len(losses[-100:]),
        "steps": len(losses),
        **run_metrics,
        "num_classes": num_classes,
        "class_names": list(pipeline.id2label.values()) if num_classes else None,
        "multi_label": pipeline.is_multi_label,
        "grid_rows": row_conditions,
        "guidance_scale": args.guidance_scale,
        "seed": args.seed,
        "unet_parameters": sum(parameter.numel() for parameter in pipeline.unet.parameters()),
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    write_model_card(args, metrics)
    logger.info(f"wrote {output_dir}: final loss {metrics['final_loss']:.4f}, {metrics['images_per_second']} images/s")


def write_model_card(args, metrics):
    """README.md of the output folder: what the model is, how it was trained, its figures and how to load it."""
    source = args.dataset_name or args.train_data_dir
    is_hub_dataset = args.dataset_name not in (None, "digits") and not os.path.exists(args.dataset_name)
    dataset = "scikit-learn's bundled 8x8 digits" if source == "digits" else f"`{source}`"
    training = {
        "resolution": args.resolution,
        "model preset": args.model_preset,
        "condition dropped with probability": args.cond_drop_prob if metrics["num_classes"] else "-",
        "guidance scale": args.guidance_scale,
        "training steps": metrics["steps"],
        "batch size": args.train_batch_size * args.gradient_accumulation_steps,
        "learning rate": args.learning_rate,
        "EMA weights": args.use_ema,
        "mixed precision": metrics["mixed_precision"],
        "seed": args.seed,
    }
    measured = {
        "final training loss (mean of last 100 steps)": f"{metrics['final_loss']:.4f}",
        "training time": f"{metrics['train_seconds']} s",
    }
    card = make_model_card(
        args.output_dir,
        repo_id=args.hub_model_id or args.output_dir,
        dataset=dataset,
        training=training,
        metrics=measured,
        license=args.hub_license,
        hub_dataset_id=args.dataset_name if is_hub_dataset else None,
    )
    card.save(os.path.join(args.output_dir, "README.md"))


if __name__ == "__main__":
    main(parse_args())
