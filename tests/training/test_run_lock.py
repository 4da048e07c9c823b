"""One writer per run folder: a folder another process holds is refused naming that process (its PID and host), by the
library and by every script that writes run folders, before anything is written; the lock of a killed process
(`kill -9`) is free to take over."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ddpm_hf.training import (
    RUN_LOCK,
    check_output_dir,
    lock_run_folder,
    open_run_folder,
    prepare_output_dir,
    run_folder_holder,
    staged_output_dir,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "train_scripts"))
import export_checkpoint  # noqa: E402
import train_2d  # noqa: E402
import train_classifier  # noqa: E402
import train_image  # noqa: E402

# Takes the lock of the folder given as its argument, says so, and holds it until killed.
HOLDER = """
import sys, time
from ddpm_hf.training.run_lock import lock_run_folder
lock = lock_run_folder(sys.argv[1], script="holder.py")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def hold():
    """Start a process holding the lock of a folder; returns it once the lock is taken. Killed at the end."""
    children = []

    def start(folder):
        child = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline() == "held\n"
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
        child.stdout.close()


def kill_9(child):
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL


def contents(path: Path) -> dict:
    return {str(file.relative_to(path)): file.read_bytes() for file in path.rglob("*") if file.is_file()}


def names_holder(message, child):
    return f"PID {child.pid}" in message and socket.gethostname() in message and "holder.py" in message


def test_a_folder_held_by_another_process_is_refused_naming_it_then_taken_over_after_kill_9(tmp_path, hold):
    run = tmp_path / "run"
    prepare_output_dir(str(run))
    (run / "losses.jsonl").write_text('{"loss": 1.0, "step": 1}\n')
    child = hold(run)
    before = contents(run)

    holder = run_folder_holder(str(run))
    assert holder["pid"] == child.pid and holder["host"] == socket.gethostname()
    for refuse in (
        lambda: check_output_dir(str(run), resume=True),
        lambda: check_output_dir(str(run), overwrite_output_dir=True),
        lambda: lock_run_folder(str(run)),
        lambda: open_run_folder(str(run), resume=True),
        lambda: open_run_folder(str(run), overwrite_output_dir=True),
    ):
        with pytest.raises(ValueError, match="is in use by") as error:
            refuse()
        assert names_holder(str(error.value), child), str(error.value)
    assert contents(run) == before  # nothing written, nothing deleted

    kill_9(child)  # the kernel drops its lock; its lock file stays, naming it
    assert json.loads((run / RUN_LOCK).read_text())["pid"] == child.pid
    assert run_folder_holder(str(run)) is None
    lock = open_run_folder(str(run), resume=True)
    assert json.loads((run / RUN_LOCK).read_text())["pid"] == os.getpid()
    assert (run / "losses.jsonl").read_text() == '{"loss": 1.0, "step": 1}\n'
    lock.release()
    assert not (run / RUN_LOCK).exists()  # a run that ends leaves no lock file


def test_every_script_refuses_a_held_folder_before_writing(tmp_path, hold):
    run = tmp_path / "run"
    prepare_output_dir(str(run))
    (tmp_path / "other_run").mkdir()
    child = hold(run)
    before = contents(run)
    image_flags = ["--dataset_name", "digits", "--resolution", "8", "--model_preset", "tiny", "--output_dir", str(run)]
    flags_2d = [
        "--output_dir",
        str(run),
        "--max_train_steps",
        "2",
        "--num_train_points",
        "64",
        "--train_batch_size",
        "8",
    ]
    classifier_flags = ["--dataset_name", "digits", "--output_dir", str(run)]
    refusals = [
        lambda: train_image.parse_args([*image_flags, "--resume_from_checkpoint", "latest"]),
        lambda: train_image.parse_args([*image_flags, "--overwrite_output_dir"]),
        lambda: train_2d.parse_args([*flags_2d, "--overwrite_output_dir"]),
        lambda: train_classifier.parse_args([*classifier_flags, "--overwrite_output_dir"]),
        lambda: export_checkpoint.parse_args(["--run_dir", str(tmp_path / "other_run"), "--output_dir", str(run)]),
    ]
    for refuse in refusals:
        with pytest.raises(ValueError, match="is in use by") as error:
            refuse()
        assert names_holder(str(error.value), child), str(error.value)
    assert contents(run) == before


def test_a_staged_folder_is_not_moved_over_a_held_one(tmp_path, hold):
    run = tmp_path / "run"
    prepare_output_dir(str(run))
    (run / "metrics.json").write_text("{}")
    children = []
    with pytest.raises(ValueError, match="is in use by") as error:
        with staged_output_dir(str(run), overwrite_output_dir=True) as staging:
            (Path(staging) / "metrics.json").write_text('{"new": 1}')
            children.append(hold(run))  # another writer took the folder while this one was training
    assert names_holder(str(error.value), children[0])
    assert (run / "metrics.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["run"]  # the staging folder is gone


def test_staging_folders_of_killed_runs_are_removed_and_live_ones_kept(tmp_path, hold):
    run = tmp_path / "run"
    dead, live = tmp_path / ".run.partial-dead", tmp_path / ".run.partial-live"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "model_index.json").write_text("{}")
    child = hold(live)
    dead_child = hold(dead)
    kill_9(dead_child)
    with staged_output_dir(str(run)) as staging:
        (Path(staging) / "metrics.json").write_text("{}")
    assert not dead.exists() and live.is_dir() and (live / "model_index.json").exists()
    assert sorted(os.listdir(tmp_path)) == [".run.partial-live", "run"]
    assert sorted(os.listdir(run)) == [".ddpm_hf_run.json", "metrics.json"]  # the lock went when the run ended
    assert child.poll() is None


def test_a_lock_file_that_is_a_link_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").write_text("not a lock")
    (run / RUN_LOCK).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="lock file .* cannot be opened"):
        lock_run_folder(str(run))
    assert (tmp_path / "elsewhere").read_text() == "not a lock"


def test_one_process_may_take_its_own_folder_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    first = lock_run_folder(str(run))
    check_output_dir(str(run))  # a process never refuses itself
    second = lock_run_folder(str(run))  # e.g. main() called again after a failure in the same process
    assert first.file is None and second.file is not None
    second.release()
    assert os.listdir(run) == []
