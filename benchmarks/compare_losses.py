"""Do two training runs' losses track each other? Compares the `ddpm_hf` case's per-step losses of two
`bench_train.py` JSON files (same data, seed, batches and noise; e.g. bf16 + torch.compile against float32 eager).

    python benchmarks/compare_losses.py bench_train.json bench_train_fp32.json --output loss_tracking.json

Both runs draw the same batches, timesteps and noise, so step for step their losses differ only through rounding
(bfloat16 keeps 8 significant bits: about 0.4% per rounding) and through the weights drifting apart from it. The
runs track each other when the mean loss of every --window steps differs by at most --tolerance (relative); the
per-step figures are reported beside it. Exits 1 when they do not.
"""

import argparse
import json
import sys

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Compare the per-step losses of two bench_train.py runs.")
    parser.add_argument("run", type=str, help="bench_train.py JSON of the run under test.")
    parser.add_argument("reference", type=str, help="bench_train.py JSON of the reference run.")
    parser.add_argument("--window", type=int, default=50, help="Steps per window of mean losses.")
    parser.add_argument("--tolerance", type=float, default=0.05, help="Largest relative window-mean difference.")
    parser.add_argument("--output", type=str, default=None, help="Where to write the JSON comparison.")
    args = parser.parse_args(argv)
    if args.window < 1 or not 0 < args.tolerance < 1:
        raise ValueError(f"--window must be >= 1 and --tolerance in (0, 1), got {args.window} and {args.tolerance}.")
    return args


def ddpm_hf_losses(path):
    with open(path) as f:
        report = json.load(f)
    losses = report["results"].get("ddpm_hf", {}).get("losses")
    if not losses:
        raise ValueError(f"{path} has no per-step losses of the ddpm_hf case; rerun bench_train.py with it.")
    return np.asarray(losses, dtype=np.float64)


def main(args):
    run, reference = ddpm_hf_losses(args.run), ddpm_hf_losses(args.reference)
    if len(run) != len(reference):
        raise ValueError(f"The runs have {len(run)} and {len(reference)} steps; compare runs of the same length.")
    step_relative = np.abs(run - reference) / reference
    windows = [slice(start, start + args.window) for start in range(0, len(run), args.window)]
    window_relative = [abs(run[w].mean() - reference[w].mean()) / reference[w].mean() for w in windows]
    report = {
        "run": args.run,
        "reference": args.reference,
        "steps": len(run),
        "first_step_relative_difference": float(step_relative[0]),
        "median_step_relative_difference": float(np.median(step_relative)),
        "max_step_relative_difference": float(step_relative.max()),
        "window": args.window,
        "window_mean_losses": [[float(run[w].mean()), float(reference[w].mean())] for w in windows],
        "window_relative_differences": [float(x) for x in window_relative],
        "tolerance": args.tolerance,
        "tracks": bool(max(window_relative) <= args.tolerance),
    }
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    print(f"{len(run)} steps: per-step relative difference first {step_relative[0]:.2%}, median "
          f"{np.median(step_relative):.2%}, max {step_relative.max():.2%}")  # fmt: skip
    for (mine, theirs), relative in zip(report["window_mean_losses"], window_relative):
        print(f"  window mean loss {mine:.4f} vs {theirs:.4f}: {relative:.2%}")
    print(f"tracks within {args.tolerance:.0%} per {args.window}-step window: {report['tracks']}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main(parse_args())["tracks"] else 1)
