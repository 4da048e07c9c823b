"""Train a grid of runs over any flags of train_image.py or train_2d.py, one after another; compare them in one report.

    python train_scripts/sweep.py --config train_scripts/configs/digits.yaml --output_dir outputs/digits_sweep \
        --grid beta_schedule=linear,quad,cosine --grid prediction_type=epsilon,x0,mean \
        --evaluate --dataset digits --feature_network outputs/digits_classifier
    python train_scripts/sweep.py --script train_2d.py --output_dir outputs/sweep_2d \
        --grid beta_schedule=linear,quad,cosine --grid prediction_type=epsilon,x0,v_prediction,mean -- --dataset moons

Words on the command line, in this order: the sweep's flags; then, after `--`, flags passed to every run of the
training script; then, last, `--evaluate` and evaluate.py's flags (everything after `--evaluate` goes to
train_scripts/evaluate.py, which scores every train_image.py run: FID, KID, IS, accuracy, per guidance scale; 2D runs
score themselves: metrics.json's chamfer_distance). Each `--grid FLAG=V1,V2,...` sweeps one flag of the script (a
switch takes true,false; a list flag takes its items separated by spaces: "hidden_dims=64 64,128 128"); the cells are
every combination, the first flag changing slowest. Every grid value, every cell's whole command and the evaluate.py
flags are checked by the scripts' own parsers before anything trains.

Each cell is an ordinary `accelerate launch SCRIPT [--config ...] [flags after --] --FLAG VALUE ...` run into
OUTPUT_DIR/FLAG=VALUE,FLAG=VALUE/ (characters a folder name cannot hold become _), its console output appended to
OUTPUT_DIR/logs/CELL.log; evaluations go to OUTPUT_DIR/eval/CELL/ (log OUTPUT_DIR/logs/CELL.eval.log).

Resuming: run the same command again. A finished cell is kept (train_2d.py: its metrics.json is there, for the folder
appears whole when the run ends; train_image.py: its metrics.json is there and no older than denoising_grid.png, which
only the final save writes). A killed train_image.py cell with a checkpoint goes on with --resume_from_checkpoint
latest; any other unfinished cell starts again with --overwrite_output_dir. An eval.json no older than its run's
metrics.json is kept. When a cell fails, the sweep stops, naming the cell and its log; finished cells stay.

Writes to OUTPUT_DIR: sweep.json and sweep.csv (one row per cell: the swept values, final_loss, steps, train_seconds,
the held-out loss and best epoch when the run scored one, the Chamfer distance of 2D runs, and evaluate.py's floor and
scores per guidance scale: fid_s3, kid_s3, is_s3, accuracy_s3, best_fid), sweep.md (the tables, FID beside its floor,
the command and its wall time), sweep_grids.png (every cell's samples: rows = the first flag's values, columns = the
other flags'), sweep_trajectories.png (one seed's denoising per cell) and sweep_losses.png (every cell's loss curve).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from ddpm_hf.sweeps import (
    RESERVED_FLAGS,
    STATE_FLAGS,
    SWEEP_SCRIPTS,
    cell_names,
    check_values_with_parser,
    check_with_script,
    evaluation_is_current,
    flags_set_by,
    grid_cells,
    grid_layout,
    grid_tokens,
    load_script,
    parse_grid,
    run_state,
    script_parser,
)
from ddpm_hf.training import flag_groups as flags
from ddpm_hf.viz.sweep_figures import save_sweep_figures
from ddpm_hf.viz.sweep_report import read_cell_row, read_json, write_sweep_csv, write_sweep_markdown

SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))
EVALUATE_SCRIPT = os.path.join(SCRIPTS_DIR, "evaluate.py")
# One process per run; no mixed precision or compilation unless the training flags (or --launch_args) ask for them.
LAUNCH_DEFAULTS = ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
EVALUATE_FLAG = "--evaluate"
# What the sweep does with a cell in each state (`run_state`), as it says it
STATE_WORDS = {"new": "training", "resume": "resuming from its newest checkpoint", "restart": "training anew"}


def build_parser():
    """The sweep's own flags (the training flags and evaluate.py's are split off first, `split_argv`)."""
    parser = flags.FlagParser(
        description="Train a grid of runs of train_image.py or train_2d.py and compare them in one report.",
        usage="sweep.py [-h] --output_dir DIR --grid FLAG=V1,V2,... [--grid ...] [--script SCRIPT] [--config FILE] "
        "[...] [-- TRAINING FLAGS] [--evaluate EVALUATE.PY FLAGS]",
        epilog="Flags after `--` go to every run of the training script; everything after --evaluate goes to "
        "evaluate.py, so it comes last. Run the same command again to resume a sweep: finished cells are kept.",
    )
    parser.add_argument(
        "--script",
        type=str,
        default="train_image.py",
        choices=SWEEP_SCRIPTS,
        help="The training script of every cell (in train_scripts/).",
    )
    parser.add_argument("--config", type=str, default=None, help="A preset passed to every run as --config.")
    parser.add_argument(
        "--output_dir", type=str, required=True, help="The sweep folder: one run folder per cell, the report."
    )
    parser.add_argument(
        "--grid",
        action="append",
        metavar="FLAG=V1,V2,...",
        help="A flag of the training script and its values, e.g. beta_schedule=linear,quad,cosine (switches: "
        "true,false; list flags: items separated by spaces). Repeat for more flags; the first makes the figures' "
        "rows.",
    )
    parser.add_argument(
        "--num_cpu_threads_per_process",
        type=flags.POSITIVE_INT,
        default=None,
        help="accelerate launch's threads per run on the CPU; default accelerate's.",
    )
    parser.add_argument(
        "--launch_args",
        type=str,
        default="",
        help="More accelerate launch flags, as one quoted word after =, e.g. --launch_args='--cpu' or "
        "--launch_args='--num_processes 2 --multi_gpu'.",
    )
    parser.add_argument(
        EVALUATE_FLAG,
        nargs=argparse.REMAINDER,
        metavar="EVALUATE.PY FLAGS",
        help="Last on the line: score every train_image.py run with evaluate.py and these flags (all but --pipeline "
        "and --output_dir, which the sweep sets), e.g. --evaluate --dataset digits --feature_network "
        "outputs/digits_classifier.",
    )
    return parser


def split_argv(argv: list[str]) -> tuple[list[str], list[str], list[str] | None]:
    """The sweep's own words, the training flags after `--`, and evaluate.py's flags after `--evaluate` (None
    without it)."""
    evaluate_args = None
    if EVALUATE_FLAG in argv:
        at = argv.index(EVALUATE_FLAG)
        argv, evaluate_args = argv[:at], argv[at + 1 :]
    train_args = []
    if "--" in argv:
        at = argv.index("--")
        argv, train_args = argv[:at], argv[at + 1 :]
    return argv, train_args, evaluate_args


def parse_args(argv=None):
    """The sweep's flags, checked with everything they give the scripts (`check_args`) before anything is written."""
    argv = sys.argv[1:] if argv is None else list(argv)
    sweep_argv, train_args, evaluate_args = split_argv(argv)
    args = build_parser().parse_args(sweep_argv)
    args.train_args, args.evaluate = train_args, evaluate_args
    args.command = shlex.join(["python", "train_scripts/sweep.py", *argv])
    check_args(args)
    return args


def check_args(args):
    """Check everything against the scripts' own parsers before anything is written: the grid (flags, values and
    every cell's whole command, resumed cells included), the training flags and evaluate.py's flags. Fills in
    `args.grid` (flag -> values) and `args.cells` (what to run, in order)."""
    script_path = os.path.join(SCRIPTS_DIR, args.script)
    module = load_script(script_path)
    parser = script_parser(module)
    reserved = (*RESERVED_FLAGS, "config") if args.config else RESERVED_FLAGS
    grid = parse_grid(args.grid)
    taken = set()
    if parser is not None:
        try:
            taken = flags_set_by(parser, args.train_args)
        except ValueError as error:
            raise ValueError(f"Training flags after --: {args.script} refuses them: {error}") from None
        sweep_set = sorted(taken & set(reserved))
        if sweep_set:
            raise ValueError(
                f"Training flags after --: the sweep sets {['--' + dest for dest in sweep_set]} itself (one run "
                "folder per cell, --config from the sweep's own flag); drop them."
            )
    tokens = grid_tokens(grid, parser, args.script, reserved, taken=taken)
    if parser is not None:
        check_values_with_parser(parser, tokens, args.script)
    if args.evaluate is not None:
        check_evaluate_args(args)
    if os.path.isfile(args.output_dir):
        raise ValueError(f"--output_dir {args.output_dir!r} is a file; give a folder for the sweep.")

    cells = grid_cells(grid)
    base_argv = (["--config", args.config] if args.config else []) + args.train_args
    placeholder = os.path.join(args.output_dir, ".not-a-cell")  # never created: the check of a finished cell
    args.grid, args.cells = grid, []
    for cell, name in zip(cells, cell_names(cells)):
        run_dir = os.path.join(args.output_dir, name)
        argv = base_argv + [word for flag, value in cell.items() for word in tokens[flag][value]]
        state = run_state(run_dir, args.script)
        # a cell to run is checked as it will run (its folder, resumed or restarted); a finished one for its flags
        checked = (
            ["--output_dir", placeholder] if state == "finished" else ["--output_dir", run_dir, *STATE_FLAGS[state]]
        )
        check_with_script(module.parse_args, argv + checked, f"Grid cell {name}: {args.script} refuses it")
        args.cells.append({"name": name, "cell": cell, "run_dir": run_dir, "state": state, "argv": argv + checked})


def check_evaluate_args(args):
    """evaluate.py's flags, through its own parser and checks (all but the pipelines, which do not exist yet)."""
    if args.script != "train_image.py":
        raise ValueError(
            f"--evaluate scores train_image.py runs; {args.script} runs score themselves (metrics.json's "
            "chamfer_distance, in the sweep's table). Drop --evaluate."
        )
    if "--" in args.evaluate:
        raise ValueError(
            "--evaluate comes last: everything after it goes to evaluate.py. Put the training flags (after --) "
            "before --evaluate."
        )
    evaluate = load_script(EVALUATE_SCRIPT)
    try:
        given = flags_set_by(evaluate.build_parser(), args.evaluate)
    except ValueError as error:
        raise ValueError(f"--evaluate flags: evaluate.py refuses them: {error}") from None
    if given & {"pipeline", "output_dir"}:
        raise ValueError(
            "--evaluate flags: the sweep sets evaluate.py's --pipeline (each cell's run folder) and --output_dir "
            "(OUTPUT_DIR/eval/CELL) itself; drop them."
        )
    placeholder = os.path.join(args.output_dir, ".not-a-cell")
    namespace = check_with_script(
        evaluate.build_parser().parse_args,
        [*args.evaluate, "--pipeline", placeholder, "--output_dir", placeholder],
        "--evaluate flags: evaluate.py refuses them",
    )
    namespace.pipeline = []
    check_with_script(lambda _: evaluate.check_args(namespace), [], "--evaluate flags: evaluate.py refuses them")


def launch_command(args) -> list[str]:
    """`accelerate launch` of the training script, one process, without the run's own flags."""
    threads = [] if args.num_cpu_threads_per_process is None else ["--num_cpu_threads_per_process"]
    threads += [str(args.num_cpu_threads_per_process)] if threads else []
    return [
        sys.executable, "-m", "accelerate.commands.launch", *LAUNCH_DEFAULTS, *threads,
        *shlex.split(args.launch_args), os.path.join(SCRIPTS_DIR, args.script),
    ]  # fmt: skip


def run_logged(command: list[str], log_path: str, what: str) -> None:
    """Run `command` with its output appended to `log_path` (after the command itself); a failure stops the sweep."""
    with open(log_path, "a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode:
        with open(log_path, errors="replace") as log:
            tail = log.readlines()[-15:]
        print("".join(tail), file=sys.stderr, flush=True)
        raise RuntimeError(
            f"{what} failed (exit code {returncode}); its output is in {log_path}. Finished cells are kept: run the "
            "same command again to go on."
        )


def summary(row: dict) -> str:
    """A cell's row in one line: final loss, and the Chamfer distance or the lowest FID beside its floor."""
    parts = []
    for key, label in (("final_loss", "final loss"), ("chamfer_distance", "Chamfer"), ("best_fid", "best FID")):
        if row.get(key) is not None:
            parts.append(f"{label} {row[key]:.4g}")
    if row.get("best_fid_at"):
        parts[-1] += f" ({row['best_fid_at']}, floor {row['fid_floor']:.4g})"
    return ", ".join(parts)


def main(args):
    """Run (or keep) every cell in order, evaluate it when asked, then write the tables and figures."""
    start = time.time()
    logs_dir = os.path.join(args.output_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    launch = launch_command(args)
    rows, evaluations, run, kept = [], {}, [], []
    for index, entry in enumerate(args.cells, 1):
        name, run_dir, state = entry["name"], entry["run_dir"], entry["state"]
        progress = f"[{index}/{len(args.cells)}] {name}"
        log_path = os.path.join(logs_dir, f"{name}.log")
        if state == "finished":
            print(f"{progress}: finished earlier, kept", flush=True)
            kept.append(name)
        else:
            print(f"{progress}: {STATE_WORDS[state]} (log: {log_path})", flush=True)
            run_logged([*launch, *entry["argv"]], log_path, f"Grid cell {name}")
            run.append(name)
        eval_dir = None
        if args.evaluate is not None:
            eval_dir = os.path.join(args.output_dir, "eval", name)
            if evaluation_is_current(eval_dir, run_dir):
                print(f"{progress}: evaluated earlier, kept", flush=True)
            else:
                eval_log = os.path.join(logs_dir, f"{name}.eval.log")
                print(f"{progress}: evaluating (log: {eval_log})", flush=True)
                command = [sys.executable, EVALUATE_SCRIPT, *args.evaluate, "--pipeline", run_dir]
                run_logged([*command, "--output_dir", eval_dir], eval_log, f"The evaluation of grid cell {name}")
            evaluations[name] = read_json(os.path.join(eval_dir, "eval.json"))
        rows.append(read_cell_row(name, entry["cell"], run_dir, eval_dir))
        print(f"{progress}: {summary(rows[-1])}", flush=True)

    names, run_dirs = [entry["name"] for entry in args.cells], [entry["run_dir"] for entry in args.cells]
    figures, notes = save_sweep_figures(args.output_dir, grid_layout(args.grid), names, run_dirs, args.script)
    if kept:
        notes.insert(0, f"Kept from an earlier command (finished before it): {', '.join(kept)}.")
    wall_seconds = time.time() - start
    record = {
        "script": args.script,
        "command": args.command,
        "grid": args.grid,
        "train_args": args.train_args,
        "evaluate_args": args.evaluate,
        "wall_seconds": round(wall_seconds, 1),
        "cells_run": run,
        "cells_kept": kept,
        "rows": rows,
    }
    with open(os.path.join(args.output_dir, "sweep.json"), "w") as f:
        json.dump(record, f, indent=2)
    write_sweep_csv(rows, os.path.join(args.output_dir, "sweep.csv"))
    write_sweep_markdown(
        os.path.join(args.output_dir, "sweep.md"), rows, args.grid, args.script, args.command, wall_seconds,
        evaluations=evaluations, figures=figures, notes=notes,
    )  # fmt: skip
    report = os.path.join(args.output_dir, "sweep.md")
    print(f"wrote {report} ({len(run)} cells run, {len(kept)} kept, {wall_seconds:.0f} s)", flush=True)
    return record


if __name__ == "__main__":
    main(parse_args())
