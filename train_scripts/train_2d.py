"""Train a DDPM on a 2D toy dataset (the course's first lab).

    accelerate launch train_scripts/train_2d.py --dataset swiss_roll --output_dir outputs/swiss_roll

Writes to --output_dir: the pipeline (model_index.json, model/, scheduler/), loss_curve.png, samples.png,
forward_process.png, trajectory.gif, metrics.json, and best/: the pipeline of the epoch with the lowest held-out noise
loss. The folder appears only when the run has finished.

The held-out loss: after every --validation_epochs epochs (and at the end), the training loss on --validation_points
points of a separate draw of the dataset (seed --seed + 500,009, in the training frame), each with one noise draw and
timestep drawn once from --seed, with the EMA weights when EMA is on; metrics.json's `heldout` holds one record per
epoch and the best one.

Data are normalised the course's way, `(X - X.mean()) / X.std() * 2` with one mean and one std over both coordinates:
training points with the statistics of the dataset's seed-0 draw of 1,000,000 points (`sample_toy2d`).
metrics.json's `chamfer_distance` scores 2048 samples against the course's data (`sample_course_toy2d`): a fresh draw
of 1,000,000 points (seed --seed + 1,000,003) normalised by its own statistics, of which the first 2048 points, so the
saved pipeline's samples compare with the course's data as they come out. `chamfer_distance_self_normalised_target`
scores them against those 2048 raw points normalised by their own statistics alone, which adds that small draw's
normalisation error (docs/TOY2D.md).
"""

import copy
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
from tqdm.auto import tqdm

from ddpm_hf import TOY2D_DATASETS, DDPM2DPipeline, MLP2DModel, chamfer_distance, sample_toy2d
from ddpm_hf.data import COURSE_DATASET_SIZE, course_normalise, sample_raw_toy2d
from ddpm_hf.training import (
    BEST_DIR,
    HeldoutLoss,
    check_output_dir,
    diffusion_loss,
    make_ema,
    make_lr_scheduler,
    make_noise_scheduler,
    make_optimizer,
    number_in_range,
    parse_args_with_config,
    resolve_loss_weighting,
    staged_output_dir,
)
from ddpm_hf.training import flag_groups as flags
from ddpm_hf.viz import save_forward_process_figure, save_loss_curve, save_samples_figure, save_trajectory_gif

logger = get_logger(__name__, log_level="INFO")

# The MLP's output factor for posterior-mean prediction: its residual target mu~_t - x_t is of order beta_t (here
# 1e-4..0.02); at O(1) scale the optimiser's jitter on that output compounds over the sampling steps (docs/TOY2D.md).
MEAN_OUTPUT_SCALE = 0.02
# The fresh evaluation draw's seed is --seed plus this offset, so it shares no randomness with the training draw;
# both seeds must stay in numpy's (and scikit-learn's) seed range 0..2**32 - 1.
EVAL_SEED_OFFSET = 1_000_003
MAX_SEED = 2**32 - 1 - EVAL_SEED_OFFSET
HELDOUT_SEED_OFFSET = 500_009  # the held-out draw's seed: --seed plus this, disjoint from training and evaluation


def parse_args(argv=None):
    parser = flags.FlagParser(description="Train a DDPM on a 2D toy dataset.")
    flags.add_run_flags(parser, max_seed=MAX_SEED)
    parser.add_argument("--dataset", type=str, default="swiss_roll", choices=TOY2D_DATASETS, help="The 2D dataset.")
    parser.add_argument(
        "--num_train_points",
        type=flags.POSITIVE_INT,
        default=100_000,
        help="Size of the fixed training draw of the dataset.",
    )
    flags.add_diffusion_flags(parser)
    model = parser.add_argument_group("model")
    model.add_argument(
        "--residual_output",
        type=str,
        default="auto",
        choices=("auto", "yes", "no"),
        help="'yes': the MLP returns x_t + mlp(x_t, t); 'no': mlp(x_t, t); 'auto': yes for --prediction_type mean.",
    )
    model.add_argument(
        "--output_scale",
        type=flags.POSITIVE,
        default=None,
        help="Constant factor on the MLP's output; default 0.02 (the size of a posterior-mean correction) for "
        "--prediction_type mean, else 1.",
    )
    model.add_argument(
        "--hidden_dims",
        type=flags.POSITIVE_INT,
        nargs="+",
        default=[128, 128, 128],
        help="Widths of the MLP's hidden layers.",
    )
    model.add_argument(
        "--time_embedding_dim", type=flags.POSITIVE_INT, default=128, help="Size of the sinusoidal time embedding."
    )
    training = parser.add_argument_group("training")
    training.add_argument("--train_batch_size", type=flags.POSITIVE_INT, default=1024, help="Batch size per process.")
    training.add_argument("--max_train_steps", type=flags.POSITIVE_INT, default=10000, help="Optimisation steps.")
    flags.add_optimizer_flags(parser, learning_rate=1e-3, lr_warmup_steps=200, adam_beta1=0.9, adam_weight_decay=0.0)
    flags.add_ema_flags(parser, ema_max_decay=0.999, ema_power=2 / 3)  # EMAModel's own warm-up power
    parser.add_argument(
        "--num_eval_points",
        type=number_in_range(int, 1, COURSE_DATASET_SIZE),
        default=2048,
        help="Points sampled for the figures and the Chamfer distance (at most the course's dataset size).",
    )
    heldout = parser.add_argument_group("held-out loss and best model")
    heldout.add_argument(
        "--validation_points",
        type=flags.NON_NEGATIVE_INT,
        default=2048,
        help="Points of a separate draw of the dataset on which the held-out noise loss is scored (0: none, and no "
        "best/).",
    )
    heldout.add_argument(
        "--validation_epochs",
        type=flags.POSITIVE_INT,
        default=1,
        help="Score the held-out loss every N epochs (passes over --num_train_points) and at the end.",
    )
    args = parse_args_with_config(parser, argv)
    check_args(args)
    return args


def check_args(args):
    """Reject flags that contradict each other before anything is written."""
    flags.check_run_flags(args)
    flags.check_diffusion_flags(args)
    if args.train_batch_size > args.num_train_points:
        raise ValueError(
            f"--train_batch_size {args.train_batch_size} exceeds --num_train_points {args.num_train_points}."
        )
    check_output_dir(args.output_dir, args.overwrite_output_dir)


def main(args):
    accelerator = Accelerator()
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    set_seed(args.seed)

    # Model and scheduler first: their constructors check the remaining settings before any work is done.
    # Clipping x0 to [-1, 1] would squash 2D data, which spans about [-4, 4].
    scheduler = make_noise_scheduler(args, clip_sample=False)
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
    optimizer = make_optimizer(args, model.parameters())
    # Not passed to accelerator.prepare: stepped by hand once per optimizer step, whatever the number of processes.
    lr_scheduler = make_lr_scheduler(args, optimizer, args.max_train_steps)
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    ema_model = make_ema(args, model.parameters(), accelerator.device)

    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info(
        f"dataset={args.dataset} T={args.num_train_timesteps} schedule={args.beta_schedule} "
        f"prediction={scheduler.config.prediction_type} steps={args.max_train_steps} "
        f"batch={args.train_batch_size}x{accelerator.num_processes} parameters={num_parameters}"
    )
    heldout = None
    if args.validation_points:
        heldout_points = sample_toy2d(args.dataset, args.validation_points, seed=args.seed + HELDOUT_SEED_OFFSET)
        heldout_points = torch.from_numpy(heldout_points).to(accelerator.device)
        source = f"{args.validation_points} points of a separate draw (seed {args.seed + HELDOUT_SEED_OFFSET})"
        heldout = HeldoutLoss(heldout_points, {}, args.num_train_timesteps, args.seed, batch_size=4096, source=source)
    scores, best = [], None  # the held-out records, and (record, weights) of the lowest
    heldout_seconds = 0.0
    losses = []
    start_time = time.time()
    progress = tqdm(range(args.max_train_steps), disable=not accelerator.is_local_main_process, desc="train")
    global_step = 0
    num_epochs = math.ceil(args.max_train_steps / max(len(dataloader), 1))
    for epoch in range(num_epochs):
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
        last_epoch = global_step >= args.max_train_steps
        if (
            heldout is not None
            and accelerator.is_main_process
            and ((epoch + 1) % args.validation_epochs == 0 or last_epoch)
        ):
            score_start = time.time()
            scored = scored_model(accelerator.unwrap_model(model), ema_model)
            record = {
                "epoch": epoch,
                "step": global_step,
                "train_loss": float(np.mean(losses[scores[-1]["step"] if scores else 0 :])),
                "heldout_loss": heldout(scored, scheduler, args.loss_weighting),
            }
            scores.append(record)
            if best is None or record["heldout_loss"] < best[0]["heldout_loss"]:
                best = (record, scored)
            heldout_seconds += time.time() - score_start
            logger.info(
                f"epoch {epoch} (step {global_step}): train loss {record['train_loss']:.5f}, held-out loss "
                f"{record['heldout_loss']:.5f}"
            )
    train_seconds = time.time() - start_time - heldout_seconds
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        if ema_model is not None:
            ema_model.copy_to(model.parameters())
        model.eval()
        pipeline = DDPM2DPipeline(model=model, scheduler=scheduler)
        pipeline.set_progress_bar_config(desc="sample")
        heldout_record = None
        if heldout is not None:
            best_record = {key: best[0][key] for key in ("epoch", "step", "heldout_loss")}
            heldout_record = {
                "source": heldout.source,
                "images": len(heldout),
                "weights": "ema" if args.use_ema else "model",
                "seconds": round(heldout_seconds, 2),
                "per_epoch": scores,
                "best": best_record,
            }
        with staged_output_dir(args.output_dir, args.overwrite_output_dir) as staging_dir:
            metrics = save_outputs(args, pipeline, losses, train_seconds, staging_dir, heldout_record)
            if heldout is not None:  # best/: the weights of the lowest held-out loss, with their record
                best_dir = os.path.join(staging_dir, BEST_DIR)
                DDPM2DPipeline(model=best[1], scheduler=scheduler).save_pretrained(best_dir)
                with open(os.path.join(best_dir, "metrics.json"), "w") as f:
                    json.dump({**metrics, "heldout": {**heldout_record, "best": best_record}}, f, indent=2)
        logger.info(f"wrote {args.output_dir}")
    accelerator.end_training()


def scored_model(model, ema_model):
    """A copy of the network as it stands, with the EMA weights when EMA is on, in eval mode."""
    scored = copy.deepcopy(model)
    if ema_model is not None:
        ema_model.copy_to(scored.parameters())
    return scored.eval()


def save_outputs(args, pipeline, losses, train_seconds, output_dir, heldout_record=None):
    """Sample the trained model, score it, and write the pipeline, figures and metrics to `output_dir`; returns the
    metrics."""
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

    save_loss_curve(
        losses,
        os.path.join(output_dir, "loss_curve.png"),
        title=f"{args.dataset} training loss",
        heldout=None if heldout_record is None else heldout_record["per_epoch"],
    )
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
        "heldout": heldout_record,
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    logger.info(
        f"Chamfer distance {chamfer:.4f} against {args.num_eval_points} points of the course's data "
        f"({chamfer_self_normalised:.4f} against them normalised alone)"
    )
    return metrics


if __name__ == "__main__":
    main(parse_args())
