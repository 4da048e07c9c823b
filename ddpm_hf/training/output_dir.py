"""Run folders: marked when a training run creates them, replaced only when marked, never over the training data."""

import datetime
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager

# Written into every folder a training run of this project creates. `--overwrite_output_dir` deletes only a folder that
# holds it, and resuming writes only into one, so a folder of the user's is never taken for a run.
RUN_MARKER = ".ddpm_hf_run.json"
RUN_MARKER_FORMAT = 1


def is_run_dir(path: str) -> bool:
    """
    Whether `path` is a folder created by a training run of this project: it holds a `RUN_MARKER` file (a regular file,
    not a link) whose JSON records it.
    """
    marker = os.path.join(path, RUN_MARKER)
    if not os.path.isdir(path) or os.path.islink(marker) or not os.path.isfile(marker):
        return False
    try:
        with open(marker) as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(content, dict) and content.get("ddpm_hf_run") == RUN_MARKER_FORMAT


def write_run_marker(run_dir: str, script: str | None = None) -> str:
    """
    Mark `run_dir` as created by a training run: write `RUN_MARKER` there with what wrote it and when.

    Args:
        run_dir (`str`): An existing folder.
        script (`str`, *optional*): Name of the writing script; defaults to that of the running program.

    Returns:
        `str`: The marker's path.
    """
    from .. import __version__

    content = {
        "ddpm_hf_run": RUN_MARKER_FORMAT,
        "written_by": script or os.path.basename(sys.argv[0]) or "python",
        "ddpm_hf_version": __version__,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path = os.path.join(run_dir, RUN_MARKER)
    with open(path + ".tmp", "w") as f:
        json.dump(content, f, indent=2)
    os.replace(path + ".tmp", path)
    return path


def _overlapping_data_path(output_dir: str, data_paths) -> str | None:
    """The first local data path that `output_dir` is, lies inside, or contains (links resolved), else None."""
    output_real = os.path.realpath(output_dir)
    for data_path in data_paths:
        if not data_path or not os.path.exists(data_path):
            continue  # a Hub dataset id or a built-in name: nothing on disk to protect
        data_real = os.path.realpath(data_path)
        if os.path.commonpath([output_real, data_real]) in (output_real, data_real):
            return data_path
    return None


def check_output_dir(output_dir: str, overwrite_output_dir: bool = False, data_paths=(), resume: bool = False) -> None:
    """
    Refuse an `output_dir` a training run must not write into. Checks only; writes nothing.

    Refused: a file; a folder that is, lies inside, or contains one of `data_paths` (whatever the flags); a non-empty
    folder without `overwrite_output_dir` or `resume`; with `overwrite_output_dir`, a non-empty folder that is not a
    run folder of this project (`is_run_dir`) or that holds the current working directory; with `resume`, a non-empty
    folder that is not a run folder. A missing or empty folder is always accepted.

    Args:
        output_dir (`str`): The run folder.
        overwrite_output_dir (`bool`, defaults to `False`): The run will delete the folder when it holds an earlier
            run.
        data_paths (`Iterable[str]`, defaults to `()`): Local files or folders the run reads its data from (training
            data, dataset cache); paths that do not exist (Hub dataset ids) are skipped.
        resume (`bool`, defaults to `False`): The run will resume in the folder (and never delete it).

    Raises:
        `ValueError`: Naming the folder and why it is refused.
    """
    if os.path.isfile(output_dir):
        raise ValueError(f"output_dir {output_dir!r} is a file; give a folder path.")
    data_path = _overlapping_data_path(output_dir, data_paths)
    if data_path is not None:
        raise ValueError(
            f"output_dir {output_dir!r} overlaps the training data {data_path!r} (one is, holds or lies inside the "
            "other); a run writes and may delete its output_dir, so choose a folder apart from the data."
        )
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return
    not_a_run = (
        f"output_dir {output_dir!r} holds files and is not a run folder of ddpm-hf (a training run marks each folder "
        f"it creates with a {RUN_MARKER} file, and this one has none)"
    )
    if resume:
        if not is_run_dir(output_dir):
            raise ValueError(f"{not_a_run}; resuming would write over its files. Choose the folder of the run.")
        return
    if not overwrite_output_dir:
        raise ValueError(
            f"output_dir {output_dir!r} already holds files; choose another folder, resume it with "
            "--resume_from_checkpoint latest, or pass --overwrite_output_dir to replace an earlier run."
        )
    if not is_run_dir(output_dir):
        raise ValueError(
            f"{not_a_run}; --overwrite_output_dir deletes only an earlier run's folder. Choose another folder, or "
            "empty this one yourself."
        )
    working_dir = os.path.realpath(os.getcwd())
    if os.path.commonpath([working_dir, os.path.realpath(output_dir)]) == os.path.realpath(output_dir):
        raise ValueError(
            f"output_dir {output_dir!r} holds the current working directory; --overwrite_output_dir will not delete "
            "it. Run from another folder."
        )


def prepare_output_dir(
    output_dir: str,
    overwrite_output_dir: bool = False,
    data_paths=(),
    resume: bool = False,
    script: str | None = None,
) -> str:
    """
    Check `output_dir` again (`check_output_dir`, so nothing changed since the flags were checked), delete it when
    `overwrite_output_dir` is set and it holds an earlier run (never when resuming), create it, and mark it as a run
    folder (`write_run_marker`). Call on the main process only.

    Args:
        output_dir (`str`): The run folder.
        overwrite_output_dir (`bool`, defaults to `False`): Replace an earlier run's folder.
        data_paths (`Iterable[str]`, defaults to `()`): See `check_output_dir`.
        resume (`bool`, defaults to `False`): Keep the folder's contents (resuming a run, or starting it in an empty
            folder).
        script (`str`, *optional*): Recorded in the marker; defaults to the running program's name.

    Returns:
        `str`: `output_dir`.
    """
    check_output_dir(output_dir, overwrite_output_dir, data_paths, resume=resume)
    if overwrite_output_dir and not resume and is_run_dir(output_dir):
        shutil.rmtree(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    if not is_run_dir(output_dir):
        write_run_marker(output_dir, script)
    return output_dir


@contextmanager
def staged_output_dir(output_dir: str, overwrite_output_dir: bool = False, data_paths=(), script: str | None = None):
    """
    Yield a fresh, marked staging folder beside `output_dir`; on success it replaces `output_dir` in one rename, on
    failure it is deleted, so `output_dir` never holds a half-written run. `output_dir` is checked with
    `check_output_dir` before the staging folder is made and again before it is replaced.
    """
    check_output_dir(output_dir, overwrite_output_dir, data_paths)
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=parent)
    try:
        write_run_marker(staging_dir, script)
        yield staging_dir
        check_output_dir(output_dir, overwrite_output_dir, data_paths)
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    if os.path.isdir(output_dir):
        shutil.rmtree(output_dir)  # empty, or an earlier run's folder: check_output_dir refused anything else
    os.replace(staging_dir, output_dir)
