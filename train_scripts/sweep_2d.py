"""Train the 2D DDPM for every beta schedule x prediction type and tabulate the Chamfer distances (lab 1 and 2).

    python train_scripts/sweep_2d.py --output_dir outputs/sweep_2d [--dataset swiss_roll] [-- extra train_2d flags]

Each run is an ordinary `accelerate launch train_scripts/train_2d.py` into OUTPUT_DIR/<schedule>-<prediction>/;
runs that already have a metrics.json are kept, so an interrupted sweep resumes. Two tables go to OUTPUT_DIR/sweep.md
(and every run's metrics to OUTPUT_DIR/sweep.json): the Chamfer distance against the course's data (metrics.json's
`chamfer_distance`) and against the same points normalised alone (`chamfer_distance_self_normalised_target`). Each
run's console output goes to OUTPUT_DIR/<schedule>-<prediction>.log.
"""

import argparse
import json
import os
import subprocess
import sys

from ddpm_hf import TOY2D_DATASETS

SCHEDULES = ("linear", "quad", "cosine")
PREDICTION_TYPES = ("epsilon", "x0", "v_prediction", "mean")
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_2d.py")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Schedule x prediction-type sweep of the 2D DDPM.")
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


def main(args):
    os.makedirs(args.output_dir, exist_ok=True)
    rows = []
    for schedule in args.schedules:
        for prediction_type in args.prediction_types:
            run_dir = os.path.join(args.output_dir, f"{schedule}-{prediction_type}")
            metrics_path = os.path.join(run_dir, "metrics.json")
            if not os.path.exists(metrics_path):
                command = [
                    sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines",
                    "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu",
                    "--num_cpu_threads_per_process", str(args.num_cpu_threads_per_process), TRAIN_SCRIPT,
                    "--dataset", args.dataset, "--output_dir", run_dir, "--overwrite_output_dir",
                    "--beta_schedule", schedule, "--prediction_type", prediction_type, *args.train_args,
                ]  # fmt: skip
                print(" ".join(command[3:]), flush=True)
                with open(f"{run_dir}.log", "w") as log:
                    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
            with open(metrics_path) as f:
                metrics = json.load(f)
            rows.append(metrics)
            print(
                f"{schedule:>7} {prediction_type:>12}  Chamfer {metrics['chamfer_distance']:.3f} "
                f"(target normalised alone {metrics['chamfer_distance_self_normalised_target']:.3f})",
                flush=True,
            )

    with open(os.path.join(args.output_dir, "sweep.json"), "w") as f:
        json.dump(rows, f, indent=2)
    tables = []
    for key, title in [
        ("chamfer_distance", "Chamfer distance against the course's data"),
        ("chamfer_distance_self_normalised_target", "Chamfer distance against the same points normalised alone"),
    ]:
        table = [f"{title}:", "", "| schedule | " + " | ".join(args.prediction_types) + " |"]
        table.append("| --- |" + " --- |" * len(args.prediction_types))
        for schedule in args.schedules:
            cells = [
                f"{row[key]:.3f}"
                for prediction_type in args.prediction_types
                for row in rows
                if row["beta_schedule"] == schedule and row["prediction_type"] == prediction_type
            ]
            table.append(f"| {schedule} | " + " | ".join(cells) + " |")
        tables.append("\n".join(table))
    with open(os.path.join(args.output_dir, "sweep.md"), "w") as f:
        f.write("\n\n".join(tables) + "\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main(parse_args())
