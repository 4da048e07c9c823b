"""Train a DDPM on a 2D toy dataset (the course's first lab).

    accelerate launch train_scripts/train_2d.py --dataset swiss_roll --output_dir outputs/swiss_roll

Writes to --output_dir: the pipeline (model_index.json, model/, scheduler/), loss_curve.png, samples.png,
forward_process.png, trajectory.gif and metrics.json. The folder appears only when the run has finished.

Data are normalised the course's way, `(X - X.mean()) / X.std() * 2` with one mean and one std over both coordinates:
training points with the statistics of the dataset's seed-0 draw of 1,000,000 points (`sample_toy2d`).
metrics.json's `chamfer_distance` scores 2048 samples against the course's data (`sample_course_toy2d`): a fresh draw
of 1,000,000 points (seed --seed + 1,000,003) normalised by its own statistics, of which the first 2048 points, so the
saved pipeline's samples compare with the course's data as they come out. `chamfer_distance_self_normalised_target`
scores them against those 2048 raw points normalised by their own statistics alone, which adds that small draw's
normalisation error (docs/TOY2D.md).
"""

import argparse
import json
import logging
import math
import os
import time

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ddpm_hf import (
    BETA_SCHEDULES,
    PREDICTION_TYPES,
    TOY2D_DATASETS,
    DDPM2DPipeline,
    ExtendedDDPMScheduler,
    MLP2DModel,
    chamfer_distance,
    sample_toy2d,
)
from ddpm_hf.data import COURSE_DATASET_SIZE, course_normalise, sample_raw_toy2d
from ddpm_hf.training import (
    LOSS_WEIGHTINGS,
    check_output_dir,
    diffusion_loss,
    parse_args_with_config,
    resolve_loss_weighting,
    staged_output_dir,
)
from ddpm_hf.viz import save_forward_process_figure, save_loss_curve, save_samples_figure, save_trajectory_gif

logger = get_logger(__name__, log_level="INFO")

# The MLP's output factor for posterior-mean prediction: its residual target mu~_t - x_t is of order beta_t (here
# 1e-4..0.02); at O(1) scale the optimiser's jitter on that output compounds over the sampling steps (docs/TOY2D.md).
MEAN_OUTPUT_SCALE = 0.02
# The fresh evaluation draw's seed is --seed plus this offset, so it shares no randomness with the training draw;
# both seeds must stay in numpy's (and scikit-learn's) seed range 0..2**32 - 1.
EVAL_SEED_OFFSET = 1_000_003
MAX_SEED = 2**32 - 1 - EVAL_SEED_OFFSET
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train a DDPM on a 2D toy dataset.")
    parser.add_argument(
        "--config", type=str, default=None, help="YAML/JSON preset whose keys are flags of this script."
    )
    parser.add_argument("--dataset", type=str, default="swiss_roll", help=f"One of {list(TOY2D_DATASETS)}.")
    parser.add_argument("--output_dir", type=str, default=None, help="Folder for the pipeline, figures and metrics.")
    parser.add_argument(
        "--overwrite_output_dir", action="store_true", help="Replace --output_dir when it holds an earlier run."
    )
    parser.add_argument(
        "--num_train_points", type=int, default=100_000, help="Size of the fixed training draw of the dataset."
    )
    parser.add_argument("--num_train_timesteps", type=int, default=1000, help="Diffusion steps T.")
    parser.add_argument(
        "--beta_schedule", type=str, default="linear", help=f"Beta schedule, one of {list(BETA_SCHEDULES)}."
    )
    parser.add_argument("--beta_start", type=float, default=1e-4, help="First beta of linear/quad schedules.")
    parser.add_argument("--beta_end", type=float, default=0.02, help="Last beta of linear/quad schedules.")
    parser.add_argument(
        "--prediction_type",
        type=str,
        default="epsilon",
        help=f"What the network predicts, one of {list(PREDICTION_TYPES)} ('x0' is 'sample').",
    )
    parser.add_argument(
        "--loss_weighting",
        type=str,
        default="auto",
        help=f"One of {list(LOSS_WEIGHTINGS)}: 'uniform' is MSE on the prediction target, 'epsilon' weights it into "
        "the MSE of the implied noise; 'auto' is 'epsilon' for --prediction_type mean and 'uniform' otherwise.",
    )
    parser.add_argument(
        "--residual_output",
        type=str,
        default="auto",
        help="'yes': the MLP returns x_t + mlp(x_t, t); 'no': mlp(x_t, t); 'auto': yes for --prediction_type mean.",
    )
    parser.add_argument(
        "--output_scale",
        type=float,
        default=None,
        help="Constant factor on the MLP's output; default 0.02 (the size of a posterior-mean correction) for "
        "--prediction_type mean, else 1.",
    )
    parser.add_argument(
        "--hidden_dims", type=int, nargs="+", default=[128, 128, 128], help="Widths of the MLP's hidden layers."
    )
    parser.add_argument("--time_embedding_dim", type=int, default=128, help="Size of the sinusoidal time embedding.")
    parser.add_argument("--train_batch_size", type=int, default=1024, help="Batch size per process.")
    parser.add_argument("--max_train_steps", type=int, default=10000, help="Optimisation steps.")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Peak learning rate of AdamW.")
    parser.add_argument(
        "--lr_scheduler", type=str, default="cosine", help=f"Learning-rate schedule, one of {list(LR_SCHEDULERS)}."
    )
    parser.add_argument("--lr_warmup_steps", type=int, default=200, help="Linear warm-up steps of the LR schedule.")
    parser.add_argument("--adam_beta1", type=float, default=0.9, help="AdamW beta1.")
    parser.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW beta2.")
    parser.add_argument("--adam_weight_decay", type=float, default=0.0, help="AdamW weight decay.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="AdamW epsilon.")
    parser.add_argument(
        "--use_ema", action=argparse.BooleanOptionalAction, default=True, help="Keep an EMA of the weights."
    )
    parser.add_argument("--ema_max_decay", type=float, default=0.999, help="Largest EMA decay (with EMA warm-up).")
    parser.add_argument(
        "--num_eval_points", type=int, default=2048, help="Points sampled for the figures and the Chamfer distance."
    )
    parser.add_argument(
        "--num_inference_steps", type=int, default=None, help="Reverse steps when sampling; default T (full DDPM)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of training and evaluation.")
    args = parse_args_with_config(parser, argv)
    check_args(args)
    return args


def check_args(args):
    """Reject bad flags before anything is written."""
    if args.output_dir is None:
        raise ValueError("--output_dir is required (on the command line or in --config).")
    if args.dataset not in TOY2D_DATASETS:
        raise ValueError(f"Unknown --dataset {args.dataset!r}; choose one of {list(TOY2D_DATASETS)}.")
    if args.beta_schedule not in BETA_SCHEDULES:
        raise ValueError(f"Unknown --beta_schedule {args.beta_schedule!r}; choose one of {list(BETA_SCHEDULES)}.")
    if args.prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"Unknown --prediction_type {args.prediction_type!r}; choose one of {list(PREDICTION_TYPES)}."
        )
    if args.loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"Unknown --loss_weighting {args.loss_weighting!r}; choose one of {list(LOSS_WEIGHTINGS)}.")
    if args.residual_output not in ("auto", "yes", "no"):
        raise ValueError(f"Unknown --residual_output {args.residual_output!r}; choose one of ['auto', 'yes', 'no'].")
    if args.lr_scheduler not in LR_SCHEDULERS:
        raise ValueError(f"Unknown --lr_scheduler {args.lr_scheduler!r}; choose one of {list(LR_SCHEDULERS)}.")
    for name in ("num_train_points", "num_train_timesteps", "train_batch_size", "max_train_steps", "num_eval_points"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.num_eval_points > COURSE_DATASET_SIZE:
        raise ValueError(
            f"--num_eval_points must be at most {COURSE_DATASET_SIZE} (the course's dataset size), "
            f"got {args.num_eval_points}."
        )
    if args.train_batch_size > args.num_train_points:
        raise ValueError(
            f"--train_batch_size {args.train_batch_size} exceeds --num_train_points {args.num_train_points}."
        )
    if args.num_inference_steps is not None and not 1 <= args.num_inference_steps <= args.num_train_timesteps:
        raise ValueError(
            f"--num_inference_steps must be in 1..{args.num_train_timesteps} (--num_train_timesteps), "
            f"got {args.num_inference_steps}."
        )
    if args.output_scale is not None and not args.output_scale > 0:
        raise ValueError(f"--output_scale must be > 0, got {args.output_scale}.")
    if not args.learning_rate > 0:
        raise ValueError(f"--learning_rate must be > 0, got {args.learning_rate}.")
    if not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"--seed must be in 0..{MAX_SEED}, got {args.seed}.")
    check_output_dir(args.output_dir, args.overwrite_output_dir)


def main(args):
    accelerator = Accelerator()
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    set_seed(args.seed)

    # Model and scheduler first: their constructors check the remaining settings before any work is done.
    scheduler = ExtendedDDPMScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        prediction_type=args.prediction_type,
        clip_sample=False,  # clipping x0 to [-1, 1] would squash 2D data, which spans about [-4, 4]
    )
    residual_output = {"auto": scheduler.config.prediction_type == "mean", "yes": True, "no": False}[
        args.residual_output
    ]
    model = MLP2DModel(
        sample_dim=2,
        hidden_dims=tuple(args.hidden_dims),
        time_embedding_dim=args.time_embedding_dim,
        residual_output=residual_output,
        output_scale=args.output_scale or (MEAN_OUTPUT_SCALE if scheduler.config.prediction_type == "mean" else 1.0),
    )

    train_points = torch.from_numpy(sample_toy2d(args.dataset, args.num_train_points, seed=args.seed))
    dataloader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train_points), batch_size=args.train_batch_size, shuffle=True, drop_last=True
    )
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    # Not passed to accelerator.prepare: stepped by hand once per optimizer step, whatever the number of processes.
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps,
        num_training_steps=args.max_train_steps,
    )
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    ema_model = None
    if args.use_ema:
        ema_model = EMAModel(model.parameters(), decay=args.ema_max_decay, use_ema_warmup=True)
        ema_model.to(accelerator.device)

    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info(
        f"dataset={args.dataset} T={args.num_train_timesteps} schedule={args.beta_schedule} "
        f"prediction={scheduler.config.prediction_type} steps={args.max_train_steps} "
        f"batch={args.train_batch_size}x{accelerator.num_processes} parameters={num_parameters}"
    )
    losses = []
    start_time = time.time()
    progress = tqdm(range(args.max_train_steps), disable=not accelerator.is_local_main_process, desc="train")
    global_step = 0
    num_epochs = math.ceil(args.max_train_steps / max(len(dataloader), 1))
    for _ in range(num_epochs):
        model.train()
        for (clean_points,) in dataloader:
            loss = diffusion_loss(model, scheduler, clean_points, loss_weighting=args.loss_weighting)
            if not torch.isfinite(loss):
                raise RuntimeError(f"Loss became {loss.item()} at step {global_step}; try a lower --learning_rate.")
            accelerator.backward(loss)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            if ema_model is not None:
                ema_model.step(model.parameters())
            losses.append(accelerator.gather(loss.detach()).mean().item())
            global_step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
            if global_step >= args.max_train_steps:
                break
    train_seconds = time.time() - start_time
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        if ema_model is not None:
            ema_model.copy_to(model.parameters())
        model.eval()
        pipeline = DDPM2DPipeline(model=model, scheduler=scheduler)
        pipeline.set_progress_bar_config(desc="sample")
        with staged_output_dir(args.output_dir, args.overwrite_output_dir) as staging_dir:
            save_outputs(args, pipeline, losses, train_seconds, staging_dir)
        logger.info(f"wrote {args.output_dir}")
    accelerator.end_training()


def save_outputs(args, pipeline, losses, train_seconds, output_dir):
    """Sample the trained model, score it, and write the pipeline, figures and metrics to `output_dir`."""
    pipeline.save_pretrained(output_dir)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    start_time = time.time()
    output = pipeline(
        batch_size=args.num_eval_points,
        generator=generator,
        num_inference_steps=args.num_inference_steps,
        return_trajectory=True,
    )
    sample_seconds = time.time() - start_time
    # The course's data as sample_course_toy2d makes it, from randomness disjoint from the training points: a draw of
    # the course's dataset size normalised by its own statistics, whose first points are the target. The raw draw is
    # kept to score against those points normalised alone as well.
    target_seed = args.seed + EVAL_SEED_OFFSET
    raw_target = sample_raw_toy2d(args.dataset, COURSE_DATASET_SIZE, seed=target_seed)
    target = course_normalise(raw_target)[: args.num_eval_points]
    chamfer = chamfer_distance(output.samples, target)
    chamfer_self_normalised = chamfer_distance(output.samples, course_normalise(raw_target[: args.num_eval_points]))

    save_loss_curve(losses, os.path.join(output_dir, "loss_curve.png"), title=f"{args.dataset} training loss")
    save_samples_figure(
        output.samples,
        target,
        os.path.join(output_dir, "samples.png"),
        title=f"{args.dataset}: Chamfer distance {chamfer:.3f}",
    )
    scheduler = pipeline.scheduler
    forward_timesteps = sorted({0, *(int(args.num_train_timesteps * f) for f in (0.1, 0.25, 0.5)), len(scheduler) - 1})
    clean = torch.from_numpy(target)
    noise = torch.randn(clean.shape, generator=generator)
    noisy = {t: scheduler.add_noise(clean, noise, torch.tensor([t])).numpy() for t in forward_timesteps}
    save_forward_process_figure(noisy, os.path.join(output_dir, "forward_process.png"))
    trajectory_timesteps = [len(scheduler)] + scheduler.timesteps.tolist()
    save_trajectory_gif(output.trajectory, trajectory_timesteps, os.path.join(output_dir, "trajectory.gif"))

    metrics = {
        "dataset": args.dataset,
        "beta_schedule": args.beta_schedule,
        "prediction_type": args.prediction_type,
        "loss_weighting": resolve_loss_weighting(args.loss_weighting, scheduler.config.prediction_type),
        "residual_output": pipeline.model.config.residual_output,
        "output_scale": pipeline.model.config.output_scale,
        "num_train_timesteps": args.num_train_timesteps,
        "num_inference_steps": len(scheduler.timesteps),
        "max_train_steps": args.max_train_steps,
        "final_loss": float(np.mean(losses[-100:])),
        "num_eval_points": args.num_eval_points,
        "chamfer_distance": chamfer,
        "chamfer_distance_self_normalised_target": chamfer_self_normalised,
        "target_seed": target_seed,
        "train_seconds": round(train_seconds, 1),
        "sample_seconds": round(sample_seconds, 1),
        "seed": args.seed,
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    logger.info(
        f"Chamfer distance {chamfer:.4f} against {args.num_eval_points} points of the course's data "
        f"({chamfer_self_normalised:.4f} against them normalised alone)"
    )


if __name__ == "__main__":
    main(parse_args())
