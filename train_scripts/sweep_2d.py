"""The 2D DDPM for every beta schedule x prediction type (lab 1): train_scripts/sweep.py with --script train_2d.py.

    python train_scripts/sweep_2d.py --output_dir outputs/sweep_2d [--dataset swiss_roll] [-- extra train_2d flags]

The same as

    python train_scripts/sweep.py --script train_2d.py --output_dir outputs/sweep_2d \
        --grid beta_schedule=linear,quad,cosine --grid prediction_type=epsilon,x0,v_prediction,mean \
        --num_cpu_threads_per_process 2 -- --dataset swiss_roll [extra train_2d flags]

with --schedules and --prediction_types as the two grids (docs/SWEEPS.md: the run folders, the resume rule, and
sweep.md / sweep.json / sweep.csv with the Chamfer distances as a schedule x prediction-type table).
"""

import argparse
import os
import subprocess
import sys

from ddpm_hf import TOY2D_DATASETS

SCHEDULES = ("linear", "quad", "cosine")
PREDICTION_TYPES = ("epsilon", "x0", "v_prediction", "mean")
SWEEP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep.py")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Schedule x prediction-type sweep of the 2D DDPM (sweep.py's alias).")
    parser.add_argument("--output_dir", type=str, required=True, help="Folder holding one sub-folder per run.")
    parser.add_argument("--dataset", type=str, default="swiss_roll", help=f"One of {list(TOY2D_DATASETS)}.")
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), help="Beta schedules to sweep.")
    parser.add_argument(
        "--prediction_types", nargs="+", default=list(PREDICTION_TYPES), help="Prediction types to sweep."
    )
    parser.add_argument(
        "--num_cpu_threads_per_process", type=int, default=2, help="Threads per training run on the CPU."
    )
    parser.add_argument("train_args", nargs="*", help="Extra flags for train_2d.py, after a `--`.")
    args = parser.parse_args(argv)
    if args.dataset not in TOY2D_DATASETS:
        raise ValueError(f"Unknown --dataset {args.dataset!r}; choose one of {list(TOY2D_DATASETS)}.")
    return args


def sweep_argv(args) -> list[str]:
    """sweep.py's command line for these flags."""
    return [
        "--script", "train_2d.py", "--output_dir", args.output_dir,
        "--grid", "beta_schedule=" + ",".join(args.schedules),
        "--grid", "prediction_type=" + ",".join(args.prediction_types),
        "--num_cpu_threads_per_process", str(args.num_cpu_threads_per_process),
        "--", "--dataset", args.dataset, *args.train_args,
    ]  # fmt: skip


def main(args):
    sys.exit(subprocess.run([sys.executable, SWEEP_SCRIPT, *sweep_argv(args)]).returncode)


if __name__ == "__main__":
    main(parse_args())
