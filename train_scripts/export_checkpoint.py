"""Turn a checkpoint of a train_image.py run into a pipeline folder that `from_pretrained` loads, with its model card.

    python train_scripts/export_checkpoint.py --run_dir outputs/cifar10 --checkpoint latest --output_dir outputs/c10

The run may still be training, or may have been stopped at any moment: only complete checkpoints of that run are
read. The pipeline folder appears whole or not at all: it is written beside --output_dir and renamed into place.
"""

import argparse
import json
import os

from ddpm_hf.hub import make_run_card
from ddpm_hf.training import (
    check_output_dir,
    final_loss,
    pipeline_from_checkpoint,
    read_losses,
    save_pipeline,
    staged_output_dir,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Export a training checkpoint as a pipeline folder.")
    parser.add_argument("--run_dir", type=str, required=True, help="The output_dir of a train_image.py run.")
    checkpoint_help = "'latest', a checkpoint-N name, or a checkpoint folder of the run (another run's is refused)."
    parser.add_argument("--checkpoint", type=str, default="latest", help=checkpoint_help)
    parser.add_argument("--output_dir", type=str, required=True, help="The new pipeline folder (missing or empty).")
    parser.add_argument(
        "--use_ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Export the EMA weights when the checkpoint has them (as the run's own saves do).",
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run_dir):
        raise ValueError(f"--run_dir {args.run_dir!r} is not a folder.")
    check_output_dir(args.output_dir, data_paths=(args.run_dir,))
    return args


def main(args):
    step, pipeline = pipeline_from_checkpoint(args.run_dir, args.checkpoint, use_ema=args.use_ema)
    with open(os.path.join(args.run_dir, "run_config.json")) as f:
        run = json.load(f)
    losses = read_losses(os.path.join(args.run_dir, "losses.jsonl"), up_to_step=step)
    metrics = {
        "final_loss": final_loss(losses),
        "steps": step,
        "train_seconds": None,
        "mixed_precision": run["mixed_precision"],
        "num_classes": pipeline.num_classes,
    }
    with staged_output_dir(args.output_dir, data_paths=(args.run_dir,), script="export_checkpoint.py") as staging:
        save_pipeline(pipeline, staging)
        make_run_card(staging, run, metrics, repo_id=args.output_dir).save(os.path.join(staging, "README.md"))
    print(f"Exported step {step} of {args.run_dir} to {args.output_dir}")


if __name__ == "__main__":
    main(parse_args())
