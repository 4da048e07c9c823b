"""Run folders: marked when a training run creates them, replaced only when marked, never over the training data, and
written by one process at a time."""

import datetime
import json
import os
import shutil
import sys
import tempfile
import uuid
from contextlib import contextmanager

from .disk_full import naming_a_full_disk
from .folder_swap import recover_replaced_folders, replace_folder
from .run_folder import clean_run_folder
from .run_lock import RUN_LOCK, RunFolderLock, check_run_folder_free, lock_run_folder

# Written into every folder a training run of this project creates. `--overwrite_output_dir` deletes only a folder that
# holds it, and resuming writes only into one, so a folder of the user's is never taken for a run.
RUN_MARKER = ".ddpm_hf_run.json"
RUN_MARKER_FORMAT = 1


def _read_marker(path: str) -> dict | None:
    """The content of the run marker of folder `path`, or None when it is not a run folder of this project."""
    marker = os.path.join(path, RUN_MARKER)
    if not os.path.isdir(path) or os.path.islink(marker) or not os.path.isfile(marker):
        return None
    try:
        with open(marker) as f:
            content = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("ddpm_hf_run") != RUN_MARKER_FORMAT:
        return None
    return content


def is_run_dir(path: str) -> bool:
    """
    Whether `path` is a folder created by a training run of this project: it holds a `RUN_MARKER` file (a regular file,
    not a link) whose JSON records it.
    """
    return _read_marker(path) is not None


def read_run_id(run_dir: str) -> str | None:
    """
    The id of the run in `run_dir`, drawn when the run created the folder and written into its marker and into each
    of its checkpoints; None for a folder that is not a run folder, or whose run began before runs had ids.
    """
    run_id = (_read_marker(run_dir) or {}).get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _write_marker_content(run_dir: str, content: dict) -> str:
    path = os.path.join(run_dir, RUN_MARKER)
    with open(path + ".tmp", "w") as f:
        json.dump(content, f, indent=2)
    os.replace(path + ".tmp", path)
    return path


def write_run_marker(run_dir: str, script: str | None = None) -> str:
    """
    Mark `run_dir` as created by a training run: write `RUN_MARKER` there with a new run id, what wrote it and when.

    Args:
        run_dir (`str`): An existing folder.
        script (`str`, *optional*): Name of the writing script; defaults to that of the running program.

    Returns:
        `str`: The marker's path.
    """
    from .. import __version__

    content = {
        "ddpm_hf_run": RUN_MARKER_FORMAT,
        "run_id": uuid.uuid4().hex,
        "written_by": script or os.path.basename(sys.argv[0]) or "python",
        "ddpm_hf_version": __version__,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return _write_marker_content(run_dir, content)


def _folder_entries(path: str) -> list[str]:
    """What `path` holds, but its lock file (which only says who writes there)."""
    return [entry for entry in os.listdir(path) if entry != RUN_LOCK]


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

    Refused: a file; a folder that is, lies inside, or contains one of `data_paths` (whatever the flags); a folder
    another process writes in (it holds its lock, `check_run_folder_free`), naming that process; a non-empty
    folder without `overwrite_output_dir` or `resume`; with `overwrite_output_dir`, a non-empty folder that is not a
    run folder of this project (`is_run_dir`) or that holds the current working directory; with `resume`, a non-empty
    folder that is not a run folder. A missing or empty folder (a lock file left by a killed run aside) is accepted.

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
    if not os.path.isdir(output_dir):
        return
    check_run_folder_free(output_dir)
    if not _folder_entries(output_dir):
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


def _empty_run_folder(output_dir: str) -> None:
    """Delete what an earlier run left in `output_dir`, but its lock; the marker is rewritten, never missing."""
    for entry in _folder_entries(output_dir):
        if entry == RUN_MARKER:
            continue
        path = os.path.join(output_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def prepare_output_dir(
    output_dir: str,
    overwrite_output_dir: bool = False,
    data_paths=(),
    resume: bool = False,
    script: str | None = None,
) -> str:
    """
    Check `output_dir` again (`check_output_dir`, so nothing changed since the flags were checked), empty it when
    `overwrite_output_dir` is set and it holds an earlier run (never when resuming), create it, and mark it as a run
    folder with a new run id (`write_run_marker`); a resumed run from before runs had ids gets one. Call on the main
    process only; `open_run_folder` also holds the folder for the run.

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
        _empty_run_folder(output_dir)
        write_run_marker(output_dir, script)
    os.makedirs(output_dir, exist_ok=True)
    marker = _read_marker(output_dir)
    if marker is None:
        write_run_marker(output_dir, script)
    elif read_run_id(output_dir) is None:
        _write_marker_content(output_dir, {**marker, "run_id": uuid.uuid4().hex})
    return output_dir


def open_run_folder(
    output_dir: str,
    overwrite_output_dir: bool = False,
    data_paths=(),
    resume: bool = False,
    script: str | None = None,
) -> RunFolderLock:
    """
    Take `output_dir` for this process's run: check it (`check_output_dir`), take its lock (`lock_run_folder`, refused
    naming the holder when another process writes there), then, under the lock, `prepare_output_dir` and clean what a
    save killed half-way left (`clean_run_folder`). Nothing is written into a folder another process holds. Call on
    the main process only, before it writes anything there, and keep the lock until the run ends.

    Args:
        output_dir (`str`): The run folder.
        overwrite_output_dir (`bool`, defaults to `False`): Replace an earlier run's folder.
        data_paths (`Iterable[str]`, defaults to `()`): See `check_output_dir`.
        resume (`bool`, defaults to `False`): Keep the folder's contents.
        script (`str`, *optional*): Recorded in the marker and the lock; defaults to the running program's name.

    Returns:
        `RunFolderLock`: Release it when the run ends (the end of the process releases it too).
    """
    check_output_dir(output_dir, overwrite_output_dir, data_paths, resume=resume)
    existed = os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    lock = None
    try:
        lock = lock_run_folder(output_dir, script)
        prepare_output_dir(output_dir, overwrite_output_dir, data_paths, resume=resume, script=script)
        clean_run_folder(output_dir)
    except BaseException:
        if lock is not None:
            lock.release()
        if not existed and os.path.isdir(output_dir) and not os.listdir(output_dir):
            os.rmdir(output_dir)
        raise
    return lock


def _remove_dead_staging_folders(parent: str, name: str, keep: str) -> None:
    """Delete the staging folders of `name` in `parent` whose writer has ended (their lock is free)."""
    prefix = f".{name}.partial-"
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if not entry.startswith(prefix) or path == keep or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            lock = lock_run_folder(path, what="staging folder")
        except ValueError:
            continue  # its run is still going
        shutil.rmtree(path, ignore_errors=True)
        lock.release()


@contextmanager
def staged_output_dir(output_dir: str, overwrite_output_dir: bool = False, data_paths=(), script: str | None = None):
    """
    Yield a fresh, marked staging folder beside `output_dir`, held by this process (`lock_run_folder`); on success it
    replaces `output_dir` in one atomic exchange (`replace_folder`), on failure it is deleted, so `output_dir` never
    holds a half-written run. `output_dir` is checked with `check_output_dir` before the staging folder is made and
    again, holding its lock, before it is replaced. Staging folders of runs that were killed are deleted, and a full
    disk is named (`naming_a_full_disk`).
    """
    check_output_dir(output_dir, overwrite_output_dir, data_paths)
    output_dir = os.path.abspath(output_dir)
    parent, name = os.path.split(output_dir)
    os.makedirs(parent, exist_ok=True)
    recover_replaced_folders(parent, name)  # a replacement killed half-way, where no atomic exchange exists
    staging_dir = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    staging_lock = lock_run_folder(staging_dir, script, what="staging folder")
    try:
        _remove_dead_staging_folders(parent, name, keep=staging_dir)
        write_run_marker(staging_dir, script)
        with naming_a_full_disk(staging_dir, kept=f"{output_dir} is as it was"):
            yield staging_dir
        target_lock = lock_run_folder(output_dir, script) if os.path.isdir(output_dir) else None
        try:
            # empty, or an earlier run's folder with overwrite_output_dir: anything else is refused here
            check_output_dir(output_dir, overwrite_output_dir, data_paths)
            replace_folder(staging_dir, output_dir)
        finally:
            if target_lock is not None:
                target_lock.release()
    except BaseException:
        staging_lock.release()
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    staging_lock.moved(output_dir)
    staging_lock.release()
