"""train_image.py under faults: kill -9 in the middle of training and in the middle of a checkpoint save, then resume;
a non-finite loss. The resumed runs must repeat the uninterrupted run's losses."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "train_scripts" / "train_image.py"
sys.path.insert(0, str(SCRIPT.parent))
import train_image  # noqa: E402

COMMON = [
    "--dataset_name", "digits", "--resolution", "8", "--model_preset", "tiny", "--num_train_timesteps", "20",
    "--train_batch_size", "8", "--checkpointing_steps", "2", "--save_images_epochs", "1000", "--lr_warmup_steps", "1",
    "--learning_rate", "1e-3", "--logger", "none", "--num_inference_steps", "2",
]  # fmt: skip
# Put on PYTHONPATH, this sitecustomize kills the training process (SIGKILL, no clean-up) at the moment a checkpoint
# folder named $KILL_AT_RENAME would be renamed into place: after the state is written, before it counts as complete.
KILL_HOOK = """
import os, signal
_replace = os.replace
def _replace_or_die(source, target, *args, **kwargs):
    if os.path.basename(str(source)) == os.environ.get("KILL_AT_RENAME"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(source, target, *args, **kwargs)
os.replace = _replace_or_die
"""


def run_script(args, extra_env=None, **kwargs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(extra_env or {})}
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, cwd=REPO, **kwargs)


def losses(run):
    return [json.loads(line)["loss"] for line in (run / "losses.jsonl").read_text().splitlines()]


def straight_run(tmp_path, steps):
    output_dir = tmp_path / "straight"
    result = run_script([*COMMON, "--max_train_steps", str(steps), "--output_dir", str(output_dir)])
    assert result.wait(timeout=600) == 0
    return output_dir


def resume(output_dir, steps):
    process = run_script(
        [
            *COMMON,
            "--max_train_steps",
            str(steps),
            "--output_dir",
            str(output_dir),
            "--resume_from_checkpoint",
            "latest",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def test_kill_during_a_checkpoint_save_keeps_the_last_complete_one(tmp_path):
    steps = 6
    straight = straight_run(tmp_path, steps)
    output_dir = tmp_path / "killed"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    killed = run_script(
        [*COMMON, "--max_train_steps", str(steps), "--checkpoints_total_limit", "1", "--output_dir", str(output_dir)],
        extra_env={"PYTHONPATH": str(hook), "KILL_AT_RENAME": "tmp-checkpoint-4"},
    )
    assert killed.wait(timeout=600) == -signal.SIGKILL
    # the save of step 4 was written but never renamed; the only complete checkpoint, step 2, survived the limit of 1
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["checkpoint-2", "tmp-checkpoint-4"]
    assert not (output_dir / "model_index.json").exists()

    stderr = resume(output_dir, steps)
    assert "Resumed from" in stderr and "checkpoint-2 at step 2" in stderr
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["checkpoint-4", "checkpoint-6"]  # default limit 2
    np.testing.assert_allclose(losses(output_dir), losses(straight), rtol=1e-5)
    assert json.loads((output_dir / "metrics.json").read_text())["steps"] == steps


def test_kill_at_any_moment_of_training_then_resume_latest(tmp_path):
    steps = 40
    straight = straight_run(tmp_path, steps)
    output_dir = tmp_path / "killed"
    process = run_script(
        [*COMMON, "--max_train_steps", str(steps), "--output_dir", str(output_dir)], start_new_session=True
    )
    deadline = time.time() + 600
    while not (output_dir / "checkpoints" / "checkpoint-6").exists():
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    logged = len(losses(output_dir))
    assert 6 <= logged < steps  # killed mid-run, with steps logged past the last checkpoint

    resume(output_dir, steps)
    np.testing.assert_allclose(losses(output_dir), losses(straight), rtol=1e-5)
    assert len(losses(output_dir)) == steps


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoints(tmp_path):
    output_dir = tmp_path / "run"
    # an absurd learning rate sends the weights to infinity after the first steps
    args = train_image.parse_args(
        [
            *COMMON,
            "--max_train_steps",
            "50",
            "--checkpointing_steps",
            "1",
            "--learning_rate",
            "1e30",
            "--lr_warmup_steps",
            "0",
            "--use_ema",
            "--output_dir",
            str(output_dir),
        ]  # fmt: skip
    )
    with pytest.raises(RuntimeError, match=r"Loss became (nan|inf) at step (\d+); training stopped") as error:
        train_image.main(args)
    step = int(error.value.args[0].split(" at step ")[1].split(";")[0])
    kept = sorted(os.listdir(output_dir / "checkpoints"), key=lambda name: int(name.split("-")[1]))
    assert kept == [f"checkpoint-{n}" for n in range(max(1, step - 2), step)]  # the default limit of 2
    assert "--learning_rate 1e+30" in str(error.value) and "fp16" in str(error.value)
    assert str(kept) in str(error.value)
    assert len(losses(output_dir)) == step - 1  # every finite step logged, the bad one not
    assert not (output_dir / "model_index.json").exists()
