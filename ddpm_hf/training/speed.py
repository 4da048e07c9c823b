"""The speed levers of image training: flags whose default (None, "auto") is on where they are known to pay, on CUDA,
and off elsewhere; each trains the same steps as the plain path."""

import argparse

import torch
from accelerate.utils import DynamoBackend

from .flag_groups import POSITIVE_INT

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = tuple(backend.value.lower() for backend in DynamoBackend if backend != DynamoBackend.NO)
DATA_ON_DEVICE_AUTO_GIB = 4.0
LOSS_READ_STEPS_CUDA = 50


def add_speed_flags(parser) -> None:
    """`--channels_last`, `--fused_adamw`, `--foreach_ema`, `--torch_compile` (mode, backend), `--data_on_device` and
    `--loss_read_steps`; `resolve_speed_settings` turns them into what a run uses."""
    group = parser.add_argument_group("speed (default: on CUDA, off elsewhere)")
    switch = argparse.BooleanOptionalAction
    group.add_argument(
        "--channels_last", action=switch, default=None, help="Train in channels_last memory format (default: CUDA)."
    )
    group.add_argument(
        "--fused_adamw",
        action=switch,
        default=None,
        help="AdamW's fused implementation, one kernel for all parameters (default: on CUDA).",
    )
    group.add_argument(
        "--foreach_ema",
        action=switch,
        default=True,
        help="Update the EMA weights with multi-tensor (foreach) operations.",
    )
    group.add_argument(
        "--torch_compile",
        action=switch,
        default=None,
        help="Compile the U-Net with torch.compile (through accelerate; default: on CUDA). The first steps then "
        "include the compile warm-up, which torch caches on disk for later runs of the same model.",
    )
    group.add_argument(
        "--torch_compile_mode",
        type=str,
        default=None,
        choices=COMPILE_MODES,
        help="torch.compile mode; default: torch's default.",
    )
    group.add_argument(
        "--compile_backend",
        type=str,
        default="inductor",
        choices=COMPILE_BACKENDS,
        help="torch.compile backend, one of accelerate's.",
    )
    group.add_argument(
        "--data_on_device",
        action=switch,
        default=None,
        help="Decode, resize and crop every image once before training and keep them as uint8 on the training device; "
        "flips and scaling then happen there. Needs --center_crop. Default: on CUDA when the images take at most "
        f"{DATA_ON_DEVICE_AUTO_GIB:g} GiB and 1/4 of the GPU's memory.",
    )
    group.add_argument(
        "--loss_read_steps",
        type=POSITIVE_INT,
        default=None,
        help="Copy the loss to the host (to log it and check that it is finite) every N steps instead of every step, "
        "so the GPU is never waited on in between; always before a checkpoint. Default: 1 on the CPU, "
        f"{LOSS_READ_STEPS_CUDA} on CUDA.",
    )


def check_speed_flags(args) -> None:
    if args.data_on_device and not args.center_crop:
        raise ValueError(
            "--data_on_device keeps one crop of each image, and --no-center_crop asks for a new random crop every "
            "epoch; drop one of the two."
        )


def resolve_speed_settings(args, device: torch.device, num_images: int, channels: int) -> dict:
    """The speed levers a run uses: each flag as given, or for None (auto) on where it pays, i.e. on CUDA; batches
    are pinned (and copied without blocking) on CUDA."""
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
