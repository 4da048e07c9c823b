"""sweep.py: bad grids refused before anything trains, a tiny train_2d.py sweep, and a tiny digits sweep of
train_image.py scored by evaluate.py, killed in one cell and resumed."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ddpm_hf.models import ImageClassifier

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "train_scripts" / "sweep.py"
sys.path.insert(0, str(SWEEP.parent))
import sweep  # noqa: E402
import sweep_2d  # noqa: E402

DIGITS = ["--config", "train_scripts/configs/digits.yaml"]
TINY_IMAGE = [
    "--max_train_steps", "4", "--train_batch_size", "16", "--num_train_timesteps", "20", "--checkpointing_steps", "2",
    "--save_images_epochs", "1000", "--logger", "none",
]  # fmt: skip
TINY_2D = [
    "--max_train_steps", "30", "--num_train_points", "2048", "--train_batch_size", "256", "--num_eval_points", "256",
    "--num_train_timesteps", "50", "--hidden_dims", "16", "--time_embedding_dim", "8",
]  # fmt: skip
LAUNCH = ["--launch_args=--cpu", "--num_cpu_threads_per_process", "1"]
FIGURES = ("sweep_grids.png", "sweep_trajectories.png", "sweep_losses.png")


def run_sweep(argv):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SWEEP), *argv]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def check_report(output_dir, names):
    record = json.loads((output_dir / "sweep.json").read_text())
    assert [row["cell"] for row in record["rows"]] == names
    with open(output_dir / "sweep.csv", newline="") as f:
        assert [row["cell"] for row in csv.DictReader(f)] == names
    markdown = (output_dir / "sweep.md").read_text()
    assert "Command:" in markdown and "Wall time of the command" in markdown
    for name in FIGURES:
        with Image.open(output_dir / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
        assert f"]({name})" in markdown
    return record, markdown


@pytest.mark.parametrize(
    "grid, message",
    [
        (["nonsense_flag=1"], "train_image.py has no flag --nonsense_flag"),
        (["dataset=moons"], "train_image.py has no flag --dataset. Did you mean dataset_name"),
        (["beta_schedule=nope"], "--grid beta_schedule=nope: train_image.py refuses it: .*invalid choice: 'nope'"),
        (["prediction_type="], "no values for prediction_type"),
        (["prediction_type=x0,,mean"], "an empty value"),
        (["prediction_type=x0,x0"], r"\['x0'\] given more than once"),
        (["beta_schedule=linear", "beta_schedule=quad"], "--grid beta_schedule is given twice"),
        (["beta_schedule=linear", "ddpm_beta_schedule=quad"], "are the same flag of train_image.py"),
        (["output_dir=a,b"], "the sweep sets --output_dir itself"),
        (["config=a.yaml,b.yaml"], "the sweep sets --config itself \\(from its own --config\\)"),
        (["resume_from_checkpoint=latest"], "the sweep sets --resume_from_checkpoint itself"),
        (["use_ema=maybe"], "--use_ema of train_image.py is a switch; its grid values are true and false"),
        (["learning_rate=-1"], "--grid learning_rate=-1: train_image.py refuses it"),
        (["prediction_type=mean", "epoch_sampler=ddim"], "Grid cell prediction_type=mean,epoch_sampler=ddim: "),
        (["seed"], "write FLAG=VALUE1,VALUE2"),
    ],
)
def test_a_bad_grid_is_refused_by_name_before_anything_is_written(tmp_path, grid, message):
    output_dir = tmp_path / "sweep"
    argv = [*DIGITS, "--output_dir", str(output_dir), *(word for spec in grid for word in ("--grid", spec))]
    with pytest.raises(ValueError, match=message):
        sweep.parse_args(argv)
    assert not output_dir.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([*DIGITS, "--grid", "seed=0,1", "--", "--seed", "3"], "--seed is also among the training flags"),
        ([*DIGITS, "--grid", "seed=0,1", "--", "--output_dir", "x"], r"the sweep sets \['--output_dir'\] itself"),
        ([*DIGITS, "--grid", "seed=0,1", "--", "--config", "x.yaml"], r"the sweep sets \['--config'\] itself"),
        ([*DIGITS, "--grid", "seed=0,1", "--", "--learning_rate", "0"], "after --: train_image.py refuses them"),
        ([*DIGITS, "--grid", "seed=0,1", "--evaluate", "--pipeline", "x"], "the sweep sets evaluate.py's --pipeline"),
        (
            [*DIGITS, "--grid", "seed=0,1", "--evaluate", "--dataset", "digits"],
            "--evaluate flags: evaluate.py refuses",
        ),
        (["--script", "train_2d.py", "--grid", "seed=0,1", "--evaluate", "--dataset", "digits"], "--evaluate scores"),
        (["--script", "train_2d.py", "--grid", "dataset=spiral"], "train_2d.py refuses it: .*invalid choice"),
        (["--script", "train_2d.py", "--grid", "train_batch_size=200000"], "exceeds --num_train_points"),
        (["--script", "train_3d.py", "--grid", "seed=0"], "invalid choice: 'train_3d.py'"),
        ([*DIGITS, "--grid", "seed=0,1", "--evaluate", "--dataset", "digits", "--", "--seed", "1"], "comes last"),
        (DIGITS, "Give at least one --grid"),
    ],
)
def test_bad_training_and_evaluation_flags_are_refused_before_anything_is_written(tmp_path, argv, message):
    output_dir = tmp_path / "sweep"
    with pytest.raises(ValueError, match=message):
        sweep.parse_args(["--output_dir", str(output_dir), *argv])
    assert not output_dir.exists()


def test_a_failed_cell_stops_the_sweep_naming_it_and_its_log(tmp_path, capsys):
    log = tmp_path / "a=1.log"
    failing = [sys.executable, "-c", "import sys; print('the reason'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=re.escape(f"Grid cell a=1 failed (exit code 3); its output is in {log}.")):
        sweep.run_logged(failing, str(log), "Grid cell a=1")
    assert "the reason" in log.read_text() and "the reason" in capsys.readouterr().err


def test_sweep_2d_is_an_alias_of_sweep_with_the_2d_script():
    args = sweep_2d.parse_args(["--output_dir", "out", "--schedules", "linear", "cosine", "--", "--seed", "3"])
    assert sweep_2d.sweep_argv(args) == [
        "--script", "train_2d.py", "--output_dir", "out", "--grid", "beta_schedule=linear,cosine",
        "--grid", "prediction_type=epsilon,x0,v_prediction,mean", "--num_cpu_threads_per_process", "2",
        "--", "--dataset", "swiss_roll", "--seed", "3",
    ]  # fmt: skip


def test_a_2d_sweep_writes_a_run_per_cell_the_tables_and_the_figures(tmp_path):
    output_dir = tmp_path / "sweep"
    argv = ["--script", "train_2d.py", "--output_dir", str(output_dir), "--grid", "prediction_type=epsilon,x0"]
    result = run_sweep([*argv, *LAUNCH, "--", *TINY_2D])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = ["prediction_type=epsilon", "prediction_type=x0"]
    record, markdown = check_report(output_dir, names)
    for name, row in zip(names, record["rows"]):
        metrics = json.loads((output_dir / name / "metrics.json").read_text())
        assert metrics["prediction_type"] == row["prediction_type"] == name.split("=")[1]
        assert row["chamfer_distance"] == metrics["chamfer_distance"] and row["steps"] == 30
        assert (output_dir / "logs" / f"{name}.log").read_text().startswith("$ ")
        assert f"| {name.split('=')[1]} | {row['final_loss']:.4g} | 30 |" in markdown
    assert record["cells_run"] == names and record["cells_kept"] == []

    # run again: every cell is finished, so nothing trains and the runs are the same files
    before = {name: os.path.getmtime(output_dir / name / "metrics.json") for name in names}
    result = run_sweep([*argv, *LAUNCH, "--", *TINY_2D])
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output_dir / "sweep.json").read_text())["cells_kept"] == names
    assert {name: os.path.getmtime(output_dir / name / "metrics.json") for name in names} == before


def test_a_digits_sweep_is_evaluated_and_a_killed_cell_resumes_from_its_checkpoint(tmp_path):
    judge = tmp_path / "judge"
    ImageClassifier(in_channels=1, resolution=8, num_labels=10, block_channels=(8, 16), feature_dim=6).save_pretrained(
        judge
    )
    output_dir = tmp_path / "sweep"
    evaluate = [
        "--evaluate", "--dataset", "digits", "--feature_network", str(judge), "--guidance_scales", "1", "3",
        "--sampler", "ddim:2", "--num_samples", "20", "--cache_dir", str(tmp_path / "cache"), "--device", "cpu",
    ]  # fmt: skip
    argv = [*DIGITS, "--output_dir", str(output_dir), "--grid", "beta_schedule=linear,cosine", *LAUNCH]
    result = run_sweep([*argv, "--", *TINY_IMAGE, *evaluate])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = ["beta_schedule=linear", "beta_schedule=cosine"]
    record, markdown = check_report(output_dir, names)
    for row in record["rows"]:
        assert row["steps"] == 4 and row["fid_s1"] > 0 and row["fid_floor"] > 0 and 0 <= row["accuracy_s3"] <= 1
        assert row["best_fid"] == min(row["fid_s1"], row["fid_s3"])
    assert "| beta_schedule=linear | ddim:2 | 2 |" in markdown  # the evaluation table: omega = s - 1

    # kill the second cell after its first checkpoint: its final save and last checkpoint never happened
    killed, kept = output_dir / names[1], output_dir / names[0]
    for path in (killed / "metrics.json", killed / "denoising_grid.png"):
        path.unlink()
    shutil.rmtree(killed / "checkpoints" / "checkpoint-4")
    files = [
        kept / "metrics.json",
        kept / "losses.jsonl",
        kept / "grid.png",
        output_dir / "eval" / names[0] / "eval.json",
    ]
    before = [os.path.getmtime(path) for path in files]
    result = run_sweep([*argv, "--", *TINY_IMAGE, *evaluate])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [os.path.getmtime(path) for path in files] == before
    record = json.loads((output_dir / "sweep.json").read_text())
    assert record["cells_run"] == [names[1]] and record["cells_kept"] == [names[0]]
    assert "Resumed from" in (output_dir / "logs" / f"{names[1]}.log").read_text()
    metrics = json.loads((killed / "metrics.json").read_text())
    losses = [json.loads(line)["step"] for line in (killed / "losses.jsonl").read_text().splitlines()]
    assert metrics["steps"] == 4 and losses == [1, 2, 3, 4]
    assert os.path.getmtime(output_dir / "eval" / names[1] / "eval.json") > os.path.getmtime(killed / "metrics.json")
