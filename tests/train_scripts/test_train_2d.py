"""train_2d.py run the way users run it (accelerate launch) and in-process for the 12 schedule x prediction runs."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import make_swiss_roll

from ddpm_hf import DDPM2DPipeline, chamfer_distance

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "train_scripts" / "train_2d.py"
sys.path.insert(0, str(SCRIPT.parent))
import train_2d  # noqa: E402

TINY = [
    "--max_train_steps", "15", "--num_train_points", "256", "--train_batch_size", "64", "--num_eval_points", "64",
    "--num_train_timesteps", "40", "--hidden_dims", "16", "16", "--time_embedding_dim", "8", "--lr_warmup_steps", "2",
]  # fmt: skip
OUTPUT_FILES = {"model_index.json", "loss_curve.png", "samples.png", "forward_process.png", "trajectory.gif"}


def accelerate_launch(args, num_processes=1):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu", str(SCRIPT), *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def check_run_folder(output_dir, num_eval_points=64):
    assert OUTPUT_FILES <= set(os.listdir(output_dir))
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["num_eval_points"] == num_eval_points and metrics["chamfer_distance"] > 0
    for name in ("loss_curve.png", "samples.png", "forward_process.png"):
        with Image.open(output_dir / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
    with Image.open(output_dir / "trajectory.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames > 5
    pipe = DDPM2DPipeline.from_pretrained(output_dir)
    assert pipe.scheduler.config.clip_sample is False, "2D data must not be clipped to [-1, 1]"
    return metrics, pipe


def test_accelerate_launch_writes_a_complete_run(tmp_path):
    output_dir = tmp_path / "run"
    result = accelerate_launch(["--dataset", "swiss_roll", "--output_dir", str(output_dir), *TINY, "--seed", "3"])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics, pipe = check_run_folder(output_dir)
    assert metrics["dataset"] == "swiss_roll" and metrics["max_train_steps"] == 15
    assert metrics["target_seed"] == 3 + 1_000_003
    # The recorded score is the Chamfer distance of what the saved pipeline samples with the recorded seed against
    # the course's data: scikit-learn's swiss roll, columns 0 and 2, 1,000,000 points normalised together by
    # (X - X.mean()) / X.std() * 2, of which the first points.
    pipe.set_progress_bar_config(disable=True)
    samples = pipe(batch_size=64, generator=torch.Generator().manual_seed(metrics["seed"]))[0]
    raw = make_swiss_roll(1_000_000, noise=0, hole=True, random_state=metrics["target_seed"])[0][:, [0, 2]]
    course_target = ((raw - raw.mean()) / raw.std() * 2)[:64]
    assert chamfer_distance(samples, course_target) == pytest.approx(metrics["chamfer_distance"], rel=1e-5)
    # and the score against those 64 raw points normalised by their own statistics alone
    first_points = raw[:64]
    self_normalised_target = (first_points - first_points.mean()) / first_points.std() * 2
    assert chamfer_distance(samples, self_normalised_target) == pytest.approx(
        metrics["chamfer_distance_self_normalised_target"], rel=1e-5
    )
    assert metrics["chamfer_distance"] != pytest.approx(metrics["chamfer_distance_self_normalised_target"], rel=1e-3)
    assert not [name for name in os.listdir(tmp_path) if "partial" in name]


def test_two_processes_give_one_coherent_run(tmp_path):
    output_dir = tmp_path / "run"
    result = accelerate_launch(["--dataset", "moons", "--output_dir", str(output_dir), *TINY], num_processes=2)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics, _ = check_run_folder(output_dir)
    assert metrics["dataset"] == "moons"
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.parametrize(
    "bad_args, message",
    [
        (["--dataset", "spiral"], "spiral.*swiss_roll"),
        (["--beta_schedule", "quadratic"], "quadratic.*quad"),
        (["--prediction_type", "noise"], "noise.*epsilon"),
        (["--num_inference_steps", "41"], "1..40"),
        (["--train_batch_size", "0"], "train_batch_size"),
        (["--lr_scheduler", "step"], "step.*cosine"),
        (["--lr_scheduler", "piecewise_constant"], "piecewise_constant"),  # needs step rules no flag gives
        (
            ["--loss_weighting", "snr"],
            r"argument --loss_weighting: invalid choice: 'snr' "
            r"\(choose from 'auto', 'uniform', 'epsilon', 'min_snr'\)",
        ),
        (["--residual_output", "maybe"], r"argument --residual_output: invalid choice: 'maybe'"),
        (["--output_scale", "-1"], r"argument --output_scale: must be a number in \(0, inf\), got -1.0"),
        (["--seed", "-1"], r"argument --seed: must be an integer in \[0, 4293967292\], got -1"),
        (["--seed", str(2**32 - 1)], r"argument --seed: must be an integer in \[0, 4293967292\], got 4294967295"),
        (["--num_eval_points", "1000001"], r"--num_eval_points: must be an integer in \[1, 1000000\], got 1000001"),
        (["--adam_beta1", "1"], r"argument --adam_beta1: must be a number in \[0, 1\), got 1.0"),
        (["--ema_max_decay", "nan"], r"argument --ema_max_decay: must be a number in \[0, 1\], got nan"),
    ],
)
def test_bad_flags_are_refused_before_writing_anything(tmp_path, bad_args, message):
    with pytest.raises(ValueError, match=message):
        train_2d.parse_args(["--output_dir", str(tmp_path / "run"), *TINY, *bad_args])
    assert os.listdir(tmp_path) == []


def test_bad_flag_through_accelerate_launch_exits_with_the_message(tmp_path):
    result = accelerate_launch(["--output_dir", str(tmp_path / "run"), *TINY, "--dataset", "spiral"])
    assert result.returncode != 0
    assert "ValueError" in result.stderr and "spiral" in result.stderr
    assert os.listdir(tmp_path) == []


def test_existing_run_is_not_overwritten_without_the_flag(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="overwrite_output_dir"):
        train_2d.parse_args(["--output_dir", str(output_dir), *TINY])
    assert (output_dir / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "beta_schedule, prediction_type",
    list(itertools.product(["linear", "quad", "cosine"], ["epsilon", "x0", "v_prediction", "mean"])),
)
def test_every_schedule_and_prediction_type_trains(tmp_path, beta_schedule, prediction_type):
    output_dir = tmp_path / "run"
    flags = ["--beta_schedule", beta_schedule, "--prediction_type", prediction_type, "--learning_rate", "3e-3"]
    args = train_2d.parse_args(["--output_dir", str(output_dir), *TINY, *flags, "--max_train_steps", "60"])
    train_2d.main(args)
    metrics, pipe = check_run_folder(output_dir)
    assert metrics["beta_schedule"] == beta_schedule and metrics["prediction_type"] == prediction_type
    assert np.isfinite(metrics["final_loss"]) and np.isfinite(metrics["chamfer_distance"])
    expected_type = {"x0": "sample"}.get(prediction_type, prediction_type)
    assert pipe.scheduler.config.prediction_type == expected_type
    # posterior-mean runs get the recipe that makes them learn (docs/TOY2D.md); the others the plain one
    is_mean = prediction_type == "mean"
    assert (metrics["loss_weighting"], metrics["residual_output"], metrics["output_scale"]) == (
        ("epsilon", True, 0.02) if is_mean else ("uniform", False, 1.0)
    )


def test_held_out_loss_per_epoch_and_best_is_the_lowest_epochs_weights(tmp_path):
    output_dir = tmp_path / "run"
    args = train_2d.parse_args(
        [*TINY, "--max_train_steps", "20", "--validation_points", "300", "--output_dir", str(output_dir)]
    )
    train_2d.main(args)
    heldout = json.loads((output_dir / "metrics.json").read_text())["heldout"]
    # 256 points in batches of 64: 4 steps per epoch, 5 epochs, each scored
    assert [(record["epoch"], record["step"]) for record in heldout["per_epoch"]] == [(e, 4 * e + 4) for e in range(5)]
    assert heldout["images"] == 300 and heldout["weights"] == "ema"
    lowest = min(heldout["per_epoch"], key=lambda record: record["heldout_loss"])
    assert heldout["best"] == {key: lowest[key] for key in ("epoch", "step", "heldout_loss")}
    best = DDPM2DPipeline.from_pretrained(output_dir / "best")
    assert json.loads((output_dir / "best" / "metrics.json").read_text())["heldout"]["best"] == heldout["best"]
    # recomputed here from the documented draw: the points of seed + 500,009, eps and t from --seed
    points = torch.from_numpy(train_2d.sample_toy2d("swiss_roll", 300, seed=args.seed + 500_009))
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(points.shape, generator=generator)
    timesteps = torch.randint(0, 40, (300,), generator=generator)
    abar = best.scheduler.alphas_cumprod.double()[timesteps][:, None]
    noisy = (abar.sqrt() * points.double() + (1 - abar).sqrt() * noise.double()).float()
    with torch.no_grad():
        recomputed = ((best.model(noisy, timesteps).sample.double() - noise.double()) ** 2).mean().item()
    assert recomputed == pytest.approx(lowest["heldout_loss"], rel=1e-5)  # float32 forward process against float64


def test_no_held_out_points_means_no_best(tmp_path):
    train_2d.main(train_2d.parse_args([*TINY, "--validation_points", "0", "--output_dir", str(tmp_path / "run")]))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["heldout"] is None
    assert not (tmp_path / "run" / "best").exists()
