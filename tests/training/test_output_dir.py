"""Run folders: --overwrite_output_dir deletes only a folder a run created, never the training data or a user's folder;
resuming writes only into a run's folder. Every refusal leaves the user's files as they were."""

import json
import os
import sys
from pathlib import Path

import pytest

from ddpm_hf.training import RUN_MARKER, check_output_dir, is_run_dir, prepare_output_dir, staged_output_dir

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "train_scripts"))
import train_2d  # noqa: E402
import train_classifier  # noqa: E402


def make_user_folder(path: Path) -> dict:
    """A folder of someone's files; returns {relative path: bytes} to compare with afterwards."""
    (path / "cat").mkdir(parents=True)
    files = {"cat/0.png": b"\x89PNG not really", "README.md": b"my notes", "metrics.json": b'{"mine": 1}'}
    for name, content in files.items():
        (path / name).write_bytes(content)
    return files


def contents(path: Path) -> dict:
    return {str(file.relative_to(path)): file.read_bytes() for file in path.rglob("*") if file.is_file()}


def refused(text, function, *args, **kwargs):
    """Call `function` and check that it raises a ValueError whose message holds `text`; return the message."""
    with pytest.raises(ValueError) as error:
        function(*args, **kwargs)
    assert text in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("where", ["same", "inside", "holding", "link"])
def test_overwrite_never_deletes_the_training_data(tmp_path, where):
    data = tmp_path / "project" / "data"
    files = make_user_folder(data)
    # even a marker in the data folder (say, a run was once written there) does not make it deletable
    (data / RUN_MARKER).write_text(json.dumps({"ddpm_hf_run": 1}))
    files[RUN_MARKER] = (data / RUN_MARKER).read_bytes()
    output_dir = {
        "same": data,
        "inside": data / "cat",
        "holding": tmp_path / "project",
        "link": tmp_path / "link_to_data",
    }[where]
    if where == "link":
        output_dir.symlink_to(data, target_is_directory=True)
    for overwrite in (False, True):
        message = refused("overlaps", check_output_dir, str(output_dir), overwrite, data_paths=[str(data)])
        assert str(output_dir) in message and str(data) in message
        refused(str(output_dir), prepare_output_dir, str(output_dir), overwrite, data_paths=[str(data)])
        with pytest.raises(ValueError, match="overlaps the training data"):
            with staged_output_dir(str(output_dir), overwrite, data_paths=[str(data)]):
                pass
    assert contents(data) == files


def test_overwrite_refuses_a_folder_no_run_created(tmp_path):
    folder = tmp_path / "thesis"
    files = make_user_folder(folder)
    message = refused(str(folder), check_output_dir, str(folder), overwrite_output_dir=True)
    assert "not a run folder" in message and RUN_MARKER in message
    refused(str(folder), prepare_output_dir, str(folder), overwrite_output_dir=True)
    with pytest.raises(ValueError, match="not a run folder"):
        with staged_output_dir(str(folder), overwrite_output_dir=True) as staging_dir:
            (Path(staging_dir) / "model_index.json").write_text("{}")
    assert contents(folder) == files
    assert sorted(os.listdir(tmp_path)) == ["thesis"]  # no staging folder left behind


@pytest.mark.parametrize("marker_text", ["not json", "[1]", '{"ddpm_hf_run": 2}', "{}"])
def test_a_marker_file_not_written_by_a_run_does_not_count(tmp_path, marker_text):
    folder = tmp_path / "folder"
    files = make_user_folder(folder)
    (folder / RUN_MARKER).write_text(marker_text)
    files[RUN_MARKER] = marker_text.encode()
    assert not is_run_dir(str(folder))
    refused("not a run folder", prepare_output_dir, str(folder), overwrite_output_dir=True)
    assert contents(folder) == files


def test_a_linked_marker_does_not_count(tmp_path):
    real_run = tmp_path / "run"
    prepare_output_dir(str(real_run))
    folder = tmp_path / "folder"
    files = make_user_folder(folder)
    (folder / RUN_MARKER).symlink_to(real_run / RUN_MARKER)
    assert is_run_dir(str(real_run)) and not is_run_dir(str(folder))
    refused("not a run folder", prepare_output_dir, str(folder), overwrite_output_dir=True)
    assert contents(folder) == {**files, RUN_MARKER: (real_run / RUN_MARKER).read_bytes()}


def test_overwrite_replaces_an_earlier_run(tmp_path):
    run = tmp_path / "run"
    prepare_output_dir(str(run), script="train_image.py")
    marker = json.loads((run / RUN_MARKER).read_text())
    assert marker["ddpm_hf_run"] == 1 and marker["written_by"] == "train_image.py"
    (run / "losses.jsonl").write_text("old run\n")
    refused("already holds files", check_output_dir, str(run))  # not without the flag
    assert (run / "losses.jsonl").exists()
    prepare_output_dir(str(run), overwrite_output_dir=True)
    assert os.listdir(run) == [RUN_MARKER]

    (run / "losses.jsonl").write_text("old run\n")
    with staged_output_dir(str(run), overwrite_output_dir=True) as staging_dir:
        (Path(staging_dir) / "metrics.json").write_text("{}")
    assert sorted(os.listdir(run)) == sorted([RUN_MARKER, "metrics.json"]) and is_run_dir(str(run))


def test_an_empty_or_missing_folder_is_used_and_marked(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_output_dir(str(empty))
    assert is_run_dir(str(empty))
    prepare_output_dir(str(tmp_path / "new" / "run"))
    assert is_run_dir(str(tmp_path / "new" / "run"))
    (tmp_path / "empty2").mkdir()
    with staged_output_dir(str(tmp_path / "empty2")) as staging_dir:
        (Path(staging_dir) / "metrics.json").write_text("{}")
    assert is_run_dir(str(tmp_path / "empty2")) and (tmp_path / "empty2" / "metrics.json").exists()


def test_resuming_refuses_a_folder_no_run_created(tmp_path):
    folder = tmp_path / "report"
    files = make_user_folder(folder)
    for overwrite in (False, True):
        message = refused(str(folder), check_output_dir, str(folder), overwrite, resume=True)
        assert "resuming would write over its files" in message
        refused(str(folder), prepare_output_dir, str(folder), overwrite, resume=True)
    assert contents(folder) == files

    run = tmp_path / "run"
    prepare_output_dir(str(run))
    (run / "losses.jsonl").write_text("kept\n")
    prepare_output_dir(str(run), overwrite_output_dir=True, resume=True)  # resuming never deletes
    assert (run / "losses.jsonl").read_text() == "kept\n"
    prepare_output_dir(str(tmp_path / "not_yet"), resume=True)  # resuming a run that has no folder yet starts it
    assert is_run_dir(str(tmp_path / "not_yet"))


def test_overwrite_refuses_the_folder_holding_the_working_directory(tmp_path, monkeypatch):
    run = tmp_path / "run"
    prepare_output_dir(str(run))
    (run / "scripts").mkdir()
    monkeypatch.chdir(run / "scripts")
    refused("current working directory", prepare_output_dir, str(run), overwrite_output_dir=True)
    assert (run / "scripts").is_dir()


def test_train_2d_overwrite_refuses_a_users_folder(tmp_path):
    folder = tmp_path / "results"
    files = make_user_folder(folder)
    flags = [
        "--output_dir",
        str(folder),
        "--overwrite_output_dir",
        "--max_train_steps",
        "2",
        "--num_train_points",
        "64",
    ]
    with pytest.raises(ValueError, match="not a run folder"):
        train_2d.parse_args([*flags, "--train_batch_size", "8"])
    assert contents(folder) == files


def test_train_classifier_never_writes_into_its_training_data(tmp_path):
    data = tmp_path / "images"
    files = make_user_folder(data)
    for output_dir in (data, data / "cat"):
        for extra in ([], ["--overwrite_output_dir"]):
            with pytest.raises(ValueError, match="overlaps the training data"):
                train_classifier.parse_args(["--train_data_dir", str(data), "--output_dir", str(output_dir), *extra])
    with pytest.raises(ValueError, match="not a run folder"):
        train_classifier.parse_args(["--dataset_name", "digits", "--output_dir", str(data), "--overwrite_output_dir"])
    assert contents(data) == files
