"""Train an image DDPM (UNet2DModel), unconditional or class-conditional for classifier-free guidance.

    accelerate launch train_scripts/train_image.py --dataset_name digits --resolution 16 --output_dir outputs/digits
    accelerate launch train_scripts/train_image.py --config train_scripts/configs/digits.yaml

In the shape of diffusers' `train_unconditional.py`, whose flags it takes under their own names (`--ddpm_num_steps`,
`--ddpm_beta_schedule` and `--ddpm_num_inference_steps` are aliases of `--num_train_timesteps`, `--beta_schedule` and
`--num_inference_steps`). Writes to --output_dir: the DDPMCFGPipeline (model_index.json, unet/ with the EMA weights
when EMA is on, scheduler/, its source files), README.md (the model card), loss_curve.png, grid.png, denoising.gif,
denoising_grid.png, metrics.json, losses.jsonl, run_config.json, logs/ (TensorBoard or wandb; --logging_dir), samples/
(a grid every --save_images_epochs) and checkpoints/checkpoint-N (for --resume_from_checkpoint; diffusers writes them
as OUTPUT_DIR/checkpoint-N, a name --resume_from_checkpoint also takes).
"""

import argparse
import functools
import json
import logging
import math
import os
import time

import datasets
import torch
from accelerate import Accelerator, PartialState
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, TorchDynamoPlugin, set_seed
from diffusers import UNet2DModel
from tqdm.auto import tqdm

from ddpm_hf import UNET_PRESETS, DDPMCFGPipeline, make_unet
from ddpm_hf.data import CONDITIONS, HeldoutSettings, ImageDataSettings, load_training_images, split_off_heldout
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
from ddpm_hf.sampling import SAMPLERS, default_num_steps, make_sampler
from ddpm_hf.training import (
    DeferredLossLog,
    HeldoutLoss,
    ThroughputRecord,
    TrainingRNG,
    add_speed_flags,
    append_heldout_log,
    check_output_dir,
    check_resume_settings,
    check_speed_flags,
    describe_loss,
    diffusion_loss,
    final_loss,
    keep_heldout_log,
    list_checkpoints,
    load_checkpoint,
    log_images_to_trackers,
    make_ema,
    make_lr_scheduler,
    make_noise_scheduler,
    make_optimizer,
    number_in_range,
    open_run_folder,
    parse_args_with_config,
    read_best_record,
    read_heldout_log,
    read_losses,
    read_run_id,
    resolve_checkpoint,
    resolve_speed_settings,
    save_best_pipeline,
    save_checkpoint,
    save_pipeline_folder,
    write_pipeline_config,
    write_run_config,
)
from ddpm_hf.training import flag_groups as flags
from ddpm_hf.viz import grid_shape, sample_grid, save_epoch_grid, save_run_figures

logger = get_logger(__name__, log_level="INFO")

# Flags that may change when a run is resumed: how long it trains (the LR schedule is then recomputed for the new
# length), and how it is saved, logged, shown and sped up; not what it trains on or how.
CHANGEABLE_ON_RESUME = """
    max_train_steps num_epochs config output_dir overwrite_output_dir resume_from_checkpoint cache_dir
    dataloader_num_workers checkpointing_steps checkpoints_total_limit logger logging_dir save_images_epochs
    save_model_epochs epoch_sampler final_sampler num_inference_steps guidance_scale sample_conditions_file
    eval_batch_size push_to_hub hub_model_id hub_token hub_private_repo hub_license channels_last fused_adamw
    foreach_ema torch_compile torch_compile_mode compile_backend data_on_device loss_read_steps
    local_rank enable_xformers_memory_efficient_attention validation_epochs
""".split()
# What parse_args resolves once and main uses, beside the flags: never recorded with the run's settings.
RESOLVED = ("pretrained_folder", "model_config")


def build_parser():
    parser = flags.FlagParser(description="Train an image DDPM with accelerate.")
    flags.add_run_flags(parser)
    flags.add_image_data_flags(parser)
    data = parser.add_argument_group("data: conditioning and transforms")
    data.add_argument(
        "--condition",
        default="auto",
        choices=CONDITIONS,
        help="'class' (one label per image, a null class for CFG), 'multi_label' (a list of labels per image, e.g. "
        "i-CLEVR; a multi-hot condition whose all-zero row is the null condition), 'none', or 'auto' (whichever the "
        "label column holds, none without one).",
    )
    data.add_argument(
        "--cond_drop_prob",
        type=number_in_range(float, 0, 1, exclusive_maximum=True),
        default=0.1,
        help="Probability of training a condition as the null condition (classifier-free guidance).",
    )
    data.add_argument(
        "--sample_conditions_file",
        type=str,
        default=None,
        help="Multi-label models: a test.json-style file (a list of lists of label names) whose first conditions make "
        "the rows of the sample grids; defaults to test.json beside --train_data_dir, else the first training labels.",
    )
    data.add_argument(
        "--center_crop", action=argparse.BooleanOptionalAction, default=True, help="Centre (else random) crop."
    )
    data.add_argument("--random_flip", action="store_true", help="Flip images left-right at random.")
    data.add_argument(
        "--skip_bad_images",
        action="store_true",
        help="Decode every image before training and skip unreadable ones (with a count); default: stop at the first.",
    )
    data.add_argument("--dataloader_num_workers", type=flags.NON_NEGATIVE_INT, default=0, help="DataLoader workers.")
    data.add_argument(
        "--max_train_samples",
        type=flags.POSITIVE_INT,
        default=None,
        help="Train on the first N images of the source only (before any --validation_fraction is held out).",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="Start from a saved pipeline (folder or Hub id): diffusers' DDPMPipeline layout (UNet2DModel + "
        "DDPMScheduler, e.g. google/ddpm-cifar10-32) or a ddpm-hf run. Its U-Net and diffusion settings are kept; an "
        "unconditional UNet2DModel gets a zero-initialised class embedding for class-conditional data.",
    )
    model.add_argument(
        "--model_config_name_or_path",
        type=str,
        default=None,
        help="Build a new UNet2DModel from this config (a config.json, a folder holding one, or a Hub id), as "
        "diffusers does; its size, channels and class embedding are set from --resolution and the data.",
    )
    model.add_argument(
        "--model_preset", type=str, default=None, choices=tuple(UNET_PRESETS), help="U-Net size (default small)."
    )
    model.add_argument(
        "--label_conditioning",
        type=str,
        default="projection",
        choices=LABEL_CONDITIONINGS,
        help="Multi-label models: 'projection' (the multi-hot vector projected into the time embedding) or 'tokens' "
        "(that, plus cross-attention to one token per requested label at the preset's attention levels).",
    )
    flags.add_diffusion_flags(parser, from_pretrained=True)
    training = parser.add_argument_group("training")
    training.add_argument("--train_batch_size", type=flags.POSITIVE_INT, default=64, help="Batch size per process.")
    training.add_argument(
        "--num_epochs", type=flags.POSITIVE_INT, default=100, help="Epochs, unless --max_train_steps."
    )
    training.add_argument("--max_train_steps", type=flags.POSITIVE_INT, default=None, help="Optimizer steps (wins).")
    training.add_argument(
        "--gradient_accumulation_steps", type=flags.POSITIVE_INT, default=1, help="Batches per optimizer step."
    )
    training.add_argument(
        "--max_grad_norm", type=flags.NON_NEGATIVE, default=1.0, help="Gradient clipping norm (0: none)."
    )
    precisions = ("no", "fp16", "bf16")
    training.add_argument("--mixed_precision", default=None, choices=precisions, help="Default: accelerate's config.")
    flags.add_optimizer_flags(parser)
    flags.add_ema_flags(parser)
    flags.add_saving_flags(parser)
    flags.add_heldout_flags(parser)
    samples = parser.add_argument_group("sample grids")
    samples.add_argument(
        "--guidance_scale", type=flags.NON_NEGATIVE, default=3.0, help="Guidance s for the saved samples."
    )
    samples.add_argument(
        "--epoch_sampler",
        type=str,
        default="ddpm",
        choices=tuple(SAMPLERS),
        help="Sampler of the per-epoch grids (dpm_solver++: 20 steps, fast).",
    )
    samples.add_argument(
        "--final_sampler",
        type=str,
        default="ddpm",
        choices=tuple(SAMPLERS),
        help="Sampler of the final grid, denoising.gif and denoising_grid.png: ddpm takes T steps (or "
        "--num_inference_steps), ddim 50, dpm_solver++ 20 (at most T // 2). The saved pipeline keeps its DDPM "
        "scheduler either way.",
    )
    samples.add_argument(
        "--eval_batch_size",
        type=flags.POSITIVE_INT,
        default=None,
        help="diffusers' flag, not used: the grids hold 5 images per class (25 unconditional).",
    )
    flags.add_tracker_flags(parser)
    add_speed_flags(parser)
    unused = parser.add_argument_group("diffusers' flags that mean nothing here (accepted, with a note)")
    unused.add_argument("--local_rank", type=int, default=-1, help="Not used: accelerate launch sets each rank.")
    unused.add_argument(
        "--enable_xformers_memory_efficient_attention",
        action="store_true",
        help="Not used: attention runs through PyTorch's scaled_dot_product_attention, memory-efficient kernels "
        "included.",
    )
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
        args.validation_dataset_name,
        args.pretrained_model_name_or_path,
        args.model_config_name_or_path,
    )


def check_args(args):
    """Reject bad flags, and fill in the defaults that depend on other flags, before anything is read or written."""
    flags.check_run_flags(args)
    flags.check_image_data_flags(args)
    flags.check_heldout_flags(args)
    resolve_model_flags(args)
    flags.check_diffusion_flags(args)
    check_speed_flags(args)
    flags.check_tracker_flags(args)
    for flag in ("epoch_sampler", "final_sampler"):
        if args.prediction_type == "mean" and getattr(args, flag) != "ddpm":
            raise ValueError(
                f"--prediction_type mean samples with the ddpm sampler only, got --{flag} {getattr(args, flag)}."
            )
    resuming = args.resume_from_checkpoint is not None
    check_output_dir(args.output_dir, args.overwrite_output_dir, data_paths(args), resume=resuming)
    if resuming:
        check_resume_settings(args.output_dir, recorded_settings(args), CHANGEABLE_ON_RESUME)
        if args.resume_from_checkpoint != "latest":  # this run's own, and whole, before anything is written
            checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
            resolve_checkpoint(checkpoints_dir, args.resume_from_checkpoint, run_id=read_run_id(args.output_dir))
    if args.sample_conditions_file is not None and not os.path.isfile(args.sample_conditions_file):
        raise ValueError(f"--sample_conditions_file {args.sample_conditions_file!r} is not a file.")
    if args.push_to_hub and not args.hub_model_id:  # diffusers' default: a repository named as the output folder
        args.hub_model_id = os.path.basename(os.path.normpath(os.path.abspath(args.output_dir)))


def resolve_model_flags(args):
    """Where the U-Net comes from (a pretrained pipeline, a config, or a preset, one of them), read once; the
    resolution and diffusion flags a pretrained pipeline or a config gives (explicit values that contradict a
    pretrained pipeline are refused), else the defaults."""
    sources = [args.pretrained_model_name_or_path, args.model_config_name_or_path, args.model_preset]
    if sum(source is not None for source in sources) > 1:
        raise ValueError(
            "--pretrained_model_name_or_path, --model_config_name_or_path and --model_preset each choose the U-Net; "
            f"give one of them, got {[source for source in sources if source is not None]}."
        )
    args.pretrained_folder, args.model_config, pretrained = None, None, {}
    if args.pretrained_model_name_or_path is not None:
        args.pretrained_folder = pretrained_folder(args.pretrained_model_name_or_path, cache_dir=args.cache_dir)
        unet_config, scheduler_config, _ = read_pretrained_configs(args.pretrained_folder)
        pretrained = {name: scheduler_config.get(name, default) for name, default in flags.DIFFUSION_DEFAULTS.items()}
        aliases = {"sample": "x0", "scaled_linear": "quad", "squaredcos_cap_v2": "cosine"}
        for name in ("prediction_type", "beta_schedule"):
            pretrained[name] = aliases.get(pretrained[name], pretrained[name])
        pretrained["resolution"] = pretrained_resolution(unet_config)
    for name, default in {**flags.DIFFUSION_DEFAULTS, "resolution": 32}.items():
        if getattr(args, name) is None:
            setattr(args, name, pretrained.get(name, default))
        elif name in pretrained and getattr(args, name) != pretrained[name]:
            raise ValueError(
                f"--{name} {getattr(args, name)!r} differs from the pretrained model's {pretrained[name]!r}; a "
                "fine-tune keeps the model's diffusion and size. Drop the flag."
            )
    if args.model_config_name_or_path is not None:
        args.model_config = read_model_config(args.model_config_name_or_path, args.cache_dir)
        factor = 2 ** (len(args.model_config["block_out_channels"]) - 1)
        if args.resolution % factor:
            raise ValueError(
                f"resolution {args.resolution} does not fit the U-Net of {args.model_config_name_or_path!r}: it "
                f"halves the size {factor.bit_length() - 1} time(s), so the resolution must be a multiple of {factor}."
            )
    elif args.pretrained_model_name_or_path is None:
        args.model_preset = args.model_preset or "small"
        check_resolution(args.model_preset, args.resolution)


def read_model_config(name_or_path: str, cache_dir: str | None) -> dict:
    """A UNet2DModel config, as diffusers' `UNet2DModel.load_config` finds it; one it cannot train is refused."""
    try:
        config = UNet2DModel.load_config(name_or_path, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        message = f"--model_config_name_or_path {name_or_path!r}: no UNet2DModel config there ({error})."
        raise ValueError(message) from None
    kind, class_embed_type = config.get("_class_name", "UNet2DModel"), config.get("class_embed_type")
    if (
        kind != "UNet2DModel"
        or class_embed_type is not None
        or config.get("out_channels") != config.get("in_channels")
    ):
        raise ValueError(
            f"--model_config_name_or_path {name_or_path!r} is a {kind} with class_embed_type={class_embed_type!r}, "
            f"in_channels={config.get('in_channels')} and out_channels={config.get('out_channels')}; give a "
            "UNet2DModel config without class_embed_type whose out_channels equal its in_channels (no learned "
            "variance)."
        )
    return config


def recorded_settings(args) -> dict:
    """The flags as the run records them (run_config.json, trackers, model card): no Hub token."""
    return {key: value for key, value in vars(args).items() if key not in ("hub_token", *RESOLVED)}


def build_model(args, data):
    """The U-Net (from a preset, a config, or the pretrained pipeline) and the training scheduler."""
    kept_scheduler_settings = {}  # a fine-tune keeps every other setting of the pretrained scheduler
    if args.label_conditioning != "projection" and not data.multi_label:
        kind = "class-conditional" if data.class_names else "unconditional"
        raise ValueError(
            f"--label_conditioning {args.label_conditioning} is for multi-label models; this run is {kind}."
        )
    if args.model_config is not None:
        if data.multi_label:
            raise ValueError(
                "--model_config_name_or_path builds a UNet2DModel; multi-label data needs --model_preset."
            )
        config = {key: value for key, value in args.model_config.items() if not key.startswith("_")}
        model = UNet2DModel.from_config(
            {**config, "sample_size": args.resolution, "in_channels": data.channels, "out_channels": data.channels,
             "num_class_embeds": None if data.num_classes is None else data.num_classes + 1}
        )  # fmt: skip
    elif args.pretrained_folder is None:
        model = make_unet(
            args.model_preset, args.resolution, data.channels, data.num_classes, data.multi_label,
            label_conditioning=args.label_conditioning,
        )  # fmt: skip
    else:
        unet_config, scheduler_config, id2label = read_pretrained_configs(args.pretrained_folder)
        kept_scheduler_settings = pretrained_scheduler_settings(scheduler_config)
        if unet_config["in_channels"] != data.channels:
            raise ValueError(
                f"The pretrained U-Net takes {unet_config['in_channels']} channel(s) and the data has {data.channels}."
            )
        saved_names = [id2label[key] for key in sorted(id2label)]
        if data.class_names and saved_names and saved_names != list(data.class_names):
            raise ValueError(
                f"The pretrained model's classes {saved_names[:20]} differ from the data's {data.class_names[:20]}."
            )
        if pretrained_num_classes(unet_config) is None and data.num_classes is not None:
            logger.info(f"Adding a class embedding of {data.num_classes} + 1 rows (zeros) to the pretrained U-Net.")
        model = load_pretrained_unet(args.pretrained_folder, data.num_classes, data.multi_label)
    return model, make_noise_scheduler(args, **kept_scheduler_settings)


def make_accelerator(args, speed):
    logging_dir = os.path.join(args.output_dir, args.logging_dir)
    compile_plugin = TorchDynamoPlugin(backend=args.compile_backend, mode=args.torch_compile_mode)
    return Accelerator(
        dynamo_plugin=compile_plugin if speed["torch_compile"] else None,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.logger == "none" else args.logger,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=logging_dir),
        # pinned batches copied with non_blocking: a copy from pageable memory would wait for the GPU every step
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, non_blocking=speed["pinned_batches"]),
    )


def note_unused_flags(args):
    """diffusers' flags that this script accepts but has no use for, each with a note when it is set."""
    notes = {
        "enable_xformers_memory_efficient_attention": "attention already runs through PyTorch's memory-efficient "
        "scaled_dot_product_attention",
        "local_rank": "accelerate launch gives each process its rank",
        "eval_batch_size": "the sample grids hold 5 images per class (25 for an unconditional model)",
    }
    for name, note in notes.items():
        value = getattr(args, name)
        if value is not False and value not in (None, -1):  # set (--local_rank 0 included)
            logger.info(f"--{name} is not used here: {note}.")


def make_dataloader(args, data, accelerator, speed):
    return torch.utils.data.DataLoader(
        data.rows(),
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=data.collate,
        num_workers=0 if data.images is not None else args.dataloader_num_workers,
        pin_memory=speed["pinned_batches"],
        drop_last=len(data) >= args.train_batch_size * accelerator.num_processes,
    )


def init_trackers(args, accelerator):
    if accelerator.is_main_process and args.logger != "none":
        config = {key: value for key, value in recorded_settings(args).items() if isinstance(value, (int, float, str))}
        wandb_dir = {"wandb": {"dir": os.path.join(args.output_dir, args.logging_dir)}}
        accelerator.init_trackers("train_image", config=config, init_kwargs=wandb_dir)


def build_pipeline(accelerator, model, ema_model, noise_scheduler, class_names):
    """A pipeline holding a copy of the network (plain, contiguous, uncompiled) with the EMA weights when EMA is on."""
    trained = accelerator.unwrap_model(model, keep_torch_compile=False)
    unet = type(trained).from_config(trained.config).to(accelerator.device)
    unet.load_state_dict(trained.state_dict())
    if ema_model is not None:
        ema_model.copy_to(unet.parameters())
    unet.eval()
    return DDPMCFGPipeline(unet=unet, scheduler=noise_scheduler, id2label=dict(enumerate(class_names or [])) or None)


def figure_steps(args, sampler: str) -> int:
    """Steps of a saved figure's sampling: --num_inference_steps (or T) for DDPM, the sampler's usual count else."""
    if sampler == "ddpm":
        return args.num_inference_steps or args.num_train_timesteps
    return default_num_steps(sampler, args.num_train_timesteps)


def save_epoch_figures(args, accelerator, pipeline, row_conditions, epoch, step):
    """The grid of the epoch (samples/epoch_NNNN.png, and to the trackers), with --epoch_sampler. A grid whose sampling
    diverges (an early model with a fast sampler) is skipped with a warning: it is not worth stopping training for."""
    num_steps = figure_steps(args, args.epoch_sampler)
    if args.epoch_sampler != "ddpm":
        pipeline.scheduler = make_sampler(args.epoch_sampler, pipeline.scheduler.config)
    progress_desc = f"epoch {epoch} grid ({args.epoch_sampler}, {num_steps} steps)"
    try:
        samples, _ = sample_grid(pipeline, row_conditions, args.guidance_scale, num_steps, args.seed, 0, progress_desc)
    except ValueError as error:
        logger.warning(f"No sample grid for epoch {epoch}: {error}")
        return
    grid = save_epoch_grid(args.output_dir, samples, pipeline.num_classes, epoch)
    log_images_to_trackers(accelerator, "samples", grid, step)


def card_and_metrics_writer(args, metrics):
    """What a saved pipeline gets beside it: metrics.json and the model card (README.md)."""

    def write_card_and_metrics(folder):
        with open(os.path.join(folder, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        card = make_run_card(folder, recorded_settings(args), metrics, repo_id=args.hub_model_id or args.output_dir)
        card.save(os.path.join(folder, "README.md"))

    return write_card_and_metrics


def save_model(args, pipeline, metrics):
    """The pipeline with its model card and metrics.json in --output_dir, moved in whole component by component
    (model_index.json last), so a run killed at any moment leaves a loadable folder; pushed with --push_to_hub."""
    save_pipeline_folder(pipeline, args.output_dir, write_extras=card_and_metrics_writer(args, metrics))
    if args.push_to_hub:
        push_run_folder(args.output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)


def run_metrics(args, accelerator, pipeline, throughput, speed, row_conditions, preload_seconds):
    losses = read_losses(os.path.join(args.output_dir, "losses.jsonl"))
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


def score_heldout(args, accelerator, heldout, pipeline, noise_scheduler, epoch, step, best, metrics_now):
    """
    The held-out noise loss of the model as it stands (EMA weights when EMA is on) beside the mean training loss since
    the previous score: one line on the console, one record in heldout.jsonl and the trackers. When it is the lowest
    yet, the model is saved as OUTPUT_DIR/best/ (atomically). Returns the best record so far (main process).
    """
    start = time.time()
    heldout_loss = heldout(pipeline.unet, noise_scheduler, args.loss_weighting)
    previous = read_heldout_log(args.output_dir)
    since_step = previous[-1]["step"] if previous else 0
    train_losses = read_losses(os.path.join(args.output_dir, "losses.jsonl"), up_to_step=step)[since_step:]
    train_loss = sum(train_losses) / len(train_losses)
    record = {"epoch": epoch, "step": step, "train_loss": train_loss, "heldout_loss": heldout_loss}
    improved = best is None or heldout_loss < best["heldout_loss"]
    if improved:
        best = {"epoch": epoch, "step": step, "heldout_loss": heldout_loss}
    record["seconds"] = round(time.time() - start, 3)
    append_heldout_log(args.output_dir, record)
    if args.logger != "none":
        accelerator.log({"heldout_loss": heldout_loss, "train_loss_since_last_score": train_loss}, step=step)
    if improved:
        write_extras = card_and_metrics_writer(args, metrics_now(pipeline, best))
        save_best_pipeline(pipeline, args.output_dir, write_extras=write_extras)
    note = "lowest yet: saved as best/" if improved else f"best {best['heldout_loss']:.5f} at epoch {best['epoch']}"
    logger.info(f"epoch {epoch} (step {step}): train loss {train_loss:.5f}, held-out loss {heldout_loss:.5f} ({note})")
    return best


def heldout_summary(args, heldout, best) -> dict | None:
    """metrics.json's record of the held-out loss: its images, weights, cost, per-epoch figures and best epoch."""
    if heldout is None:
        return None
    records = read_heldout_log(args.output_dir)
    return {
        "source": heldout.source,
        "images": len(heldout),
        "weights": "ema" if args.use_ema else "model",
        "seconds": round(sum(record.pop("seconds", 0.0) for record in records), 2),
        "per_epoch": records,
        "best": best,
    }


def make_heldout_loss(args, accelerator, heldout_images):
    """The held-out noise loss on the main process (None on the others, or without held-out images)."""
    if heldout_images is None or not accelerator.is_main_process:
        return None
    clean_images, model_kwargs = heldout_images.model_inputs(accelerator.device)
    return HeldoutLoss(clean_images, model_kwargs, args.num_train_timesteps, args.seed, source=heldout_images.source)


def resume_from_checkpoint(args, accelerator, checkpoints_dir, run_id, states, process_states, loss_log) -> int:
    """With --resume_from_checkpoint: load this run's checkpoint (only its own are taken) and drop the loss records
    of later steps, which run again (all of them when there is no checkpoint yet). Returns the step to go on from."""
    if not args.resume_from_checkpoint:
        return 0
    global_step, found = 0, resolve_checkpoint(checkpoints_dir, args.resume_from_checkpoint, run_id=run_id)
    if found is None:
        logger.info(f"No checkpoint yet in {checkpoints_dir}; starting a new run.")
    else:
        global_step, path = found
        load_checkpoint(accelerator, path, states=states, process_states=process_states)
        logger.info(f"Resumed from {path} at step {global_step}")
    loss_log.forget_after(global_step)
    return global_step


def non_finite_loss_message(args, checkpoints_dir, value, step):
    kept = [os.path.basename(path) for _, path in list_checkpoints(checkpoints_dir)]
    return (
        f"Loss became {value} at step {step}; training stopped there, and no checkpoint or saved model holds weights "
        f"that loss updated. Checkpoints kept in {checkpoints_dir}: {kept or 'none yet'}. Usual causes: a learning "
        f"rate too high (--learning_rate {args.learning_rate:g}; try 3-10x lower, or more --lr_warmup_steps) and fp16 "
        f"overflow (--mixed_precision {args.mixed_precision}; use bf16 or no). Change them, then "
        "--resume_from_checkpoint latest or start anew."
    )


def write_run_folder(args, model, noise_scheduler, data):
    """Take the run folder for this run (refused when another process writes there), create (or, resuming, keep) it
    marked, and record the run's settings and what its pipeline is made of, so that export_checkpoint.py can turn any
    checkpoint into a pipeline (main process). Returns the folder's lock, held until the run ends."""
    resuming = args.resume_from_checkpoint is not None
    run_lock = open_run_folder(
        args.output_dir, args.overwrite_output_dir, data_paths(args), resume=resuming, script="train_image.py"
    )
    write_run_config(args.output_dir, recorded_settings(args))
    write_pipeline_config(args.output_dir, model, noise_scheduler, dict(enumerate(data.class_names or [])))
    return run_lock


def save_final_outputs(args, accelerator, pipeline, metrics, row_conditions, step, last_epoch):
    """The final grid, GIF, denoising grid and loss curve (with --final_sampler), then the pipeline, card and metrics
    (main process)."""
    num_steps = figure_steps(args, args.final_sampler)
    ddpm_scheduler = pipeline.scheduler
    pipeline.set_sampler(args.final_sampler)
    progress_desc = f"final grid and GIF ({args.final_sampler}, {num_steps} steps)"
    try:
        samples, frames = sample_grid(
            pipeline, row_conditions, args.guidance_scale, num_steps, args.seed, 40, progress_desc
        )
    finally:
        pipeline.scheduler = ddpm_scheduler  # what is saved: the training scheduler, whatever sampled the figures
    grid = save_epoch_grid(args.output_dir, samples, pipeline.num_classes, last_epoch)
    log_images_to_trackers(accelerator, "samples", grid, step)
    title = f"Training loss ({describe_loss(args.loss_weighting, args.prediction_type)})"
    losses = read_losses(os.path.join(args.output_dir, "losses.jsonl"))
    heldout = (metrics["heldout"] or {}).get("per_epoch")
    save_run_figures(args.output_dir, samples, frames, pipeline.num_classes, losses, title, heldout=heldout)
    save_model(args, pipeline, metrics)
    logger.info(
        f"wrote {args.output_dir}: final loss {metrics['final_loss']:.4f}, {metrics['images_per_second']} images/s"
    )


def main(args):
    # accelerate's logger refuses to log before its state exists, and loading a pretrained model logs
    state = PartialState()
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    datasets.utils.logging.set_verbosity_error()
    # Everything that can fail on bad input happens before the output folder is touched.
    data = load_training_images(ImageDataSettings.from_flags(args))
    heldout_images = split_off_heldout(data, HeldoutSettings.from_flags(args))  # before anything draws from the data
    row_conditions = data.sample_conditions(grid_shape(data.num_classes)[0], args.sample_conditions_file)
    set_seed(args.seed)  # the initial weights too come from --seed
    model, noise_scheduler = build_model(args, data)
    speed = resolve_speed_settings(args, state.device, len(data), data.channels)
    accelerator = make_accelerator(args, speed)
    note_unused_flags(args)
    if speed["data_on_device"]:  # before the output folder is touched: an unreadable image stops the run here
        data.preload(accelerator.device, num_workers=args.dataloader_num_workers)
    run_lock = write_run_folder(args, model, noise_scheduler, data) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    set_seed(args.seed)

    train_dataloader = make_dataloader(args, data, accelerator, speed)
    optimizer = make_optimizer(args, model.parameters(), fused=speed["fused_adamw"])
    if speed["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    lr_scheduler = make_lr_scheduler(args, optimizer, max_train_steps)  # stepped once per optimizer step
    training_rng = TrainingRNG(args.seed + accelerator.process_index, accelerator.device)
    unwrapped_parameters = accelerator.unwrap_model(model, keep_torch_compile=False).parameters()
    ema_model = make_ema(args, unwrapped_parameters, accelerator.device, foreach=speed["foreach_ema"])
    # Saved in the checkpoints as safetensors and JSON by ddpm_hf (never pickled), and restored from them.
    states, process_states = {"lr_scheduler": lr_scheduler, "ema": ema_model}, {"training_rng": training_rng}
    checkpoints_dir = os.path.join(args.output_dir, "checkpoints")
    run_id = read_run_id(args.output_dir)  # recorded in each checkpoint: no other run takes it for its own
    on_non_finite = functools.partial(non_finite_loss_message, args, checkpoints_dir)
    losses_path, log_to_trackers = os.path.join(args.output_dir, "losses.jsonl"), args.logger != "none"
    loss_log = DeferredLossLog(accelerator, losses_path, speed["loss_read_steps"], log_to_trackers, on_non_finite)
    heldout = make_heldout_loss(args, accelerator, heldout_images)  # scored on the main process
    global_step = resume_from_checkpoint(args, accelerator, checkpoints_dir, run_id, states, process_states, loss_log)
    first_epoch = global_step // steps_per_epoch
    resume_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
    best = None  # the best held-out loss so far: a resumed run keeps its best/ unless it beats it
    if heldout is not None:
        keep_heldout_log(args.output_dir, global_step)  # later epochs run again
        best = read_best_record(args.output_dir) if global_step else None
    if global_step >= max_train_steps and os.path.isfile(os.path.join(args.output_dir, "metrics.json")):
        logger.info(f"{args.output_dir} finished its {max_train_steps} steps already: nothing to train.")
        if run_lock is not None:
            run_lock.release()
        return accelerator.end_training()
    init_trackers(args, accelerator)
    logger.info(
        f"{len(data)} images, {data.channels} channel(s) at {args.resolution}px, classes: {data.class_names}; "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {max_train_steps} steps of "
        f"{args.train_batch_size}x{accelerator.num_processes}x{args.gradient_accumulation_steps} images; speed {speed}"
    )

    def pipeline_now():  # the model as it stands, EMA weights in a plain copy of the network
        return build_pipeline(accelerator, model, ema_model, noise_scheduler, data.class_names)

    def metrics_now(pipeline, best_record=None):
        metrics = run_metrics(args, accelerator, pipeline, throughput, speed, row_conditions, data.preload_seconds)
        return {**metrics, "heldout": heldout_summary(args, heldout, best_record)}

    def score_heldout_now(pipeline, epoch):  # scored after the epoch's steps; best/ rewritten when the loss is lowest
        return score_heldout(
            args, accelerator, heldout, pipeline, noise_scheduler, epoch, global_step, best, metrics_now
        )

    hide_progress = not accelerator.is_local_main_process
    progress = tqdm(range(max_train_steps), initial=global_step, disable=hide_progress, desc="train")
    throughput = ThroughputRecord(accelerator.device)
    throughput.start()
    step_loss = None  # the mean over the accumulated batches of one optimizer step, on the device
    for epoch in range(first_epoch, num_epochs if global_step < max_train_steps else first_epoch):
        model.train()
        if hasattr(train_dataloader, "set_epoch"):
            train_dataloader.set_epoch(epoch)
        epoch_loader = train_dataloader
        if epoch == first_epoch and resume_batches:
            epoch_loader = accelerator.skip_first_batches(train_dataloader, resume_batches)
        for batch in epoch_loader:
            # clean images, and the conditions with some dropped to the null condition (classifier-free guidance)
            clean_images, model_kwargs = data.training_inputs(batch, training_rng.generator, speed["channels_last"])
            with accelerator.accumulate(model):
                loss = diffusion_loss(
                    model, noise_scheduler, clean_images, training_rng.generator, args.loss_weighting, **model_kwargs
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
                save_checkpoint(accelerator, checkpoints_dir, global_step, args.checkpoints_total_limit,
                                states=states, process_states=process_states, run_id=run_id)  # fmt: skip
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps:
            break  # the last epoch's figures come from the final outputs
        save_now = args.save_model_epochs is not None and (epoch + 1) % args.save_model_epochs == 0
        grid_now = (epoch + 1) % args.save_images_epochs == 0
        score_now = heldout_images is not None and (epoch + 1) % args.validation_epochs == 0
        if save_now or score_now:
            loss_log.read()  # on every process: the read gathers the losses
        if accelerator.is_main_process and (save_now or grid_now or score_now):
            with throughput.excluded():  # scoring, sampling and saving are not training
                pipeline = pipeline_now()
                if score_now:
                    best = score_heldout_now(pipeline, epoch)
                if save_now:
                    save_model(args, pipeline, metrics_now(pipeline, best))
                if grid_now:
                    save_epoch_figures(args, accelerator, pipeline, row_conditions, epoch, global_step)
    loss_log.read()  # none normally: the last step always reads (it checkpoints)
    throughput.finish()  # the last step's loss was read, so its work is done
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        pipeline = pipeline_now()
        scored = read_heldout_log(args.output_dir)
        if heldout is not None and (not scored or scored[-1]["step"] != global_step):
            best = score_heldout_now(pipeline, num_epochs - 1)
        metrics = metrics_now(pipeline, best)
        save_final_outputs(args, accelerator, pipeline, metrics, row_conditions, global_step, num_epochs - 1)
        run_lock.release()
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
