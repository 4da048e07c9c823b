"""
Training checkpoints: written atomically, verified before they are resumed, pruned without ever deleting the only good
one, and holding no state that is restored by unpickling.

A checkpoint folder `checkpoint-<step>` holds what `accelerator.save_state` writes (model weights as safetensors;
optimizer, data sampler and random states as torch files, which accelerate reads back with `torch.load(...,
weights_only=True)`: see `load_accelerator_state` in accelerate/checkpointing.py, whose `load` helper sets it), the
script's own states (LR scheduler, EMA weights, training noise generator) as safetensors + JSON under
`training_states/`, and `CHECKPOINT_MANIFEST`, the size of every file and the id of the run that wrote it, written
last. A run resumes (and export_checkpoint.py exports) only its own checkpoints: those in its checkpoints folder whose
manifest records its run id, or no id (checkpoints written before runs had ids). States registered with
`accelerator.register_for_checkpointing` are not used: accelerate stores them as `custom_checkpoint_<i>.pkl` and
reads them with `weights_only=False`, so a replaced file would run code on resume.
"""

import json
import logging
import os
import re
import shutil
import zipfile

from accelerate.utils import load as accelerate_load
from safetensors import safe_open

from .disk_full import DiskFullError, naming_a_full_disk
from .state_files import load_state_files, read_state_json, save_state_files

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
CHECKPOINT_MANIFEST = "ddpm_hf_checkpoint.json"
CHECKPOINT_FORMAT = 1
STATES_FOLDER = "training_states"
PICKLED_STATE_PATTERN = re.compile(r"^custom_checkpoint_\d+\.pkl$")
TORCH_FILE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")


def list_checkpoints(checkpoints_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints in `checkpoints_dir` as (step, path), oldest first. Half-written ones have another name."""
    if not os.path.isdir(checkpoints_dir):
        return []
    found = []
    for name in os.listdir(checkpoints_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match and os.path.isdir(os.path.join(checkpoints_dir, name)):
            found.append((int(match.group(1)), os.path.join(checkpoints_dir, name)))
    return sorted(found)


def _process_state_name(name: str, process_index: int) -> str:
    return f"{name}.process_{process_index}"


def _check_file(path: str, relative: str) -> str | None:
    """What is wrong with one file of a checkpoint, by its kind, or None."""
    try:
        if relative.endswith(".safetensors"):
            with safe_open(path, framework="pt") as f:  # checks the header and that it covers the whole file
                f.keys()
        elif relative.endswith(".json"):
            with open(path) as f:
                json.load(f)
        elif relative.endswith(TORCH_FILE_SUFFIXES):
            with zipfile.ZipFile(path) as archive:  # torch.save's format: a zip with a CRC-32 per record
                bad_record = archive.testzip()
            if bad_record is not None:
                return f"{relative}: record {bad_record} fails its CRC check"
            # the restricted unpickler accelerate resumes with, on memory-mapped storages (nothing big is read)
            accelerate_load(path, map_location="cpu", mmap=True)
    except Exception as error:  # each reader raises its own types; any of them means the file cannot be resumed
        return f"{relative}: {type(error).__name__}: {str(error)[:200]}"
    return None


def find_checkpoint_problem(path: str) -> str | None:
    """
    What makes the checkpoint folder `path` unfit to resume from, or None when it verifies: its manifest missing or
    unreadable (an interrupted save, or a checkpoint of an older version), a file missing or of another size than
    written, a pickled accelerate custom state, or a file its reader rejects (safetensors header, JSON, torch zip CRC
    and `weights_only` load, state files and the tensors they refer to). Nothing is unpickled beyond what
    `weights_only=True` allows.
    """
    manifest_path = os.path.join(path, CHECKPOINT_MANIFEST)
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        files = manifest["files"]
        if manifest.get("format") != CHECKPOINT_FORMAT or not isinstance(files, dict):
            raise ValueError(f"not a manifest of format {CHECKPOINT_FORMAT}")
    except FileNotFoundError:
        return f"{CHECKPOINT_MANIFEST}: missing (the save was interrupted, or an older version wrote the checkpoint)"
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        return f"{CHECKPOINT_MANIFEST}: unreadable ({type(error).__name__}: {str(error)[:200]})"
    for relative, size in sorted(files.items()):
        file_path = os.path.join(path, relative)
        if not os.path.isfile(file_path):
            return f"{relative}: missing"
        if os.path.getsize(file_path) != size:
            return f"{relative}: {os.path.getsize(file_path)} bytes, written with {size} (truncated or changed)"
    for folder, _, names in os.walk(path):
        for name in sorted(names):
            relative = os.path.relpath(os.path.join(folder, name), path)
            if PICKLED_STATE_PATTERN.match(name):
                return f"{relative}: a pickled state, which is never loaded (unpickling it could run code)"
            problem = _check_file(os.path.join(folder, name), relative)
            if problem is not None:
                return problem
    states_folder = os.path.join(path, STATES_FOLDER)
    for name in manifest.get("states", []) + [
        _process_state_name(name, index)
        for name in manifest.get("process_states", [])
        for index in range(manifest.get("num_processes", 1))
    ]:
        try:
            read_state_json(states_folder, name)
        except ValueError as error:
            return str(error).replace(path + os.sep, "")
    return None


def verify_checkpoint(path: str) -> None:
    """
    Raise a `ValueError` naming the checkpoint and the damaged file when `find_checkpoint_problem(path)` finds one.
    """
    problem = find_checkpoint_problem(path)
    if problem is not None:
        raise ValueError(f"Checkpoint {path} cannot be resumed: {problem}.")


def _manifest_run(path: str) -> tuple[str | None, str | None]:
    """(run id, run folder) recorded in the manifest of checkpoint `path`; None for what it does not record."""
    try:
        with open(os.path.join(path, CHECKPOINT_MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(manifest, dict):
        return None, None
    run_id, run_dir = manifest.get("run_id"), manifest.get("run_dir")
    return (run_id if isinstance(run_id, str) else None), (run_dir if isinstance(run_dir, str) else None)


def other_run_problem(path: str, checkpoints_dir: str, run_id: str | None = None) -> str | None:
    """
    Why the checkpoint folder `path` is not one of the run whose checkpoints folder is `checkpoints_dir` and whose id
    is `run_id`, or None when it is: it lies elsewhere (links resolved), or its manifest records another run id. A
    checkpoint without a run id (written before runs had ids) in `checkpoints_dir` is the run's own.
    """
    saved_id, saved_dir = _manifest_run(path)
    parent = os.path.dirname(os.path.realpath(path))
    if parent != os.path.realpath(checkpoints_dir):
        owner = os.path.dirname(parent) if os.path.basename(parent) == "checkpoints" else parent
    elif run_id is not None and saved_id is not None and saved_id != run_id:
        owner = saved_dir or "another folder"
    else:
        return None
    return f"it belongs to the run in {owner}" + (f" (run id {saved_id})" if saved_id else "")


def check_checkpoint_of_run(path: str, checkpoints_dir: str, run_id: str | None = None) -> None:
    """
    Raise a `ValueError` naming the checkpoint, the run it belongs to and how to start from other weights when
    `other_run_problem` finds it is not this run's.
    """
    problem = other_run_problem(path, checkpoints_dir, run_id)
    if problem is None:
        return
    this_run = os.path.dirname(os.path.normpath(checkpoints_dir)) or "."
    raise ValueError(
        f"Checkpoint {path} is not one of this run's ({this_run}): {problem}. A run resumes and exports only its own "
        f"checkpoints (those in {checkpoints_dir}); to export that one, give its run's folder as --run_dir, and to "
        "train from its weights, export it, then start a new run with train_image.py --pretrained_model_name_or_path "
        "EXPORTED_FOLDER in another output_dir."
    )


def resolve_checkpoint(
    checkpoints_dir: str, resume_from_checkpoint: str, run_id: str | None = None
) -> tuple[int, str] | None:
    """
    The checkpoint to resume from, checked to be this run's (`other_run_problem`) and verified
    (`find_checkpoint_problem`) before it is chosen.

    Args:
        checkpoints_dir (`str`): The run's checkpoints folder.
        resume_from_checkpoint (`str`): `"latest"`: the newest complete checkpoint of the run that verifies; a newer
            damaged one, or one of another run, is skipped with a logged warning naming both (None when there is no
            checkpoint yet). Or a `checkpoint-N` name, a path in `checkpoints_dir`, or diffusers' naming of it,
            RUN/checkpoint-N for RUN/checkpoints/checkpoint-N.
        run_id (`str`, *optional*): The run's id (`read_run_id`); checkpoints whose manifest records another one are
            refused. Without it, only where the checkpoint lies is checked.

    Returns:
        `tuple[int, str]` or `None`: (step, path).

    Raises:
        `ValueError`: For a name that is not a checkpoint folder, a checkpoint of another run (naming that run), a
            damaged checkpoint asked for by name, or when no checkpoint verifies; the message names each damaged
            checkpoint and file and the complete ones that verify.
    """
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(checkpoints_dir)
        damaged = []
        for step, path in reversed(checkpoints):
            problem = other_run_problem(path, checkpoints_dir, run_id) or find_checkpoint_problem(path)
            if problem is None:
                for damaged_path, damaged_problem in damaged:
                    logger.warning(
                        f"Checkpoint {damaged_path} cannot be resumed ({damaged_problem}); resuming from {path}, the "
                        "newest complete checkpoint of this run that verifies."
                    )
                return step, path
            damaged.append((path, problem))
        if damaged:
            details = "; ".join(f"{path}: {problem}" for path, problem in damaged)
            raise ValueError(
                f"No checkpoint in {checkpoints_dir} can be resumed ({details}). Start a new run in another "
                "output_dir."
            )
        return None
    path = _named_checkpoint_path(checkpoints_dir, resume_from_checkpoint)
    match = CHECKPOINT_PATTERN.match(os.path.basename(os.path.normpath(path)))
    if not os.path.isdir(path) or match is None:
        available = [os.path.basename(p) for _, p in list_checkpoints(checkpoints_dir)]
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint!r} is not a checkpoint folder; use 'latest' or one of "
            f"{available}."
        )
    check_checkpoint_of_run(path, checkpoints_dir, run_id)
    problem = find_checkpoint_problem(path)
    if problem is not None:
        checkpoints_dir = os.path.dirname(os.path.normpath(path))
        intact = [
            os.path.basename(other)
            for _, other in list_checkpoints(checkpoints_dir)
            if os.path.normpath(other) != os.path.normpath(path) and find_checkpoint_problem(other) is None
        ]
        raise ValueError(
            f"Checkpoint {path} cannot be resumed: {problem}. Complete checkpoints in {checkpoints_dir} that verify: "
            f"{intact or 'none'}."
        )
    return int(match.group(1)), path


def _named_checkpoint_path(checkpoints_dir: str, name: str) -> str:
    """
    The folder `name` points to: a checkpoint-N name in `checkpoints_dir` first, else the path itself, else, for
    diffusers' naming RUN/checkpoint-N (diffusers writes a run's checkpoints into the run folder itself),
    RUN/checkpoints/checkpoint-N, where this project keeps them.
    """
    for path in (os.path.join(checkpoints_dir, name), name):
        if os.path.isdir(path):
            return path
    parent, base = os.path.split(os.path.normpath(name))
    in_checkpoints_folder = os.path.join(parent, "checkpoints", base)
    if CHECKPOINT_PATTERN.match(base) and os.path.isdir(in_checkpoints_folder):
        return in_checkpoints_folder
    return name


def save_checkpoint(
    accelerator,
    checkpoints_dir: str,
    step: int,
    total_limit: int | None = None,
    states: dict | None = None,
    process_states: dict | None = None,
    run_id: str | None = None,
) -> str:
    """
    Save a checkpoint: `accelerator.save_state` into a temporary folder, then `states` and `process_states` as
    safetensors + JSON (`save_state_files`) and the manifest, then rename the folder to `checkpoint-<step>`, so an
    interrupted save never looks complete; then delete the oldest complete checkpoints of steps up to `step` beyond
    `total_limit` (checkpoints of later steps, left by an earlier attempt, are neither counted nor deleted). Call on
    every process.

    Args:
        accelerator (`accelerate.Accelerator`): With no objects registered for checkpointing (they would be pickled).
        checkpoints_dir (`str`): Where the checkpoint folders live.
        step (`int`): The optimizer step the state is at.
        total_limit (`int`, *optional*): Complete checkpoints to keep (at least 1).
        states (`dict[str, object]`, *optional*): Name -> object with `state_dict()` / `load_state_dict()` whose state
            is the same on every process (an LR scheduler, `diffusers.training_utils.EMAModel`); the main process
            saves it. Entries whose object is None are left out.
        process_states (`dict[str, object]`, *optional*): The same for states that differ between processes (each
            process's `TrainingRNG`); every process saves its own.
        run_id (`str`, *optional*): The id of the run (`read_run_id`), recorded in the manifest so that no other run
            takes the checkpoint for its own.

    Returns:
        `str`: The checkpoint's path.

    Raises:
        `DiskFullError`: When the disk fills up, naming the checkpoint being written and the space left; the
            half-written checkpoint is deleted and the earlier ones stay.
    """
    if getattr(accelerator, "_custom_objects", None):
        raise ValueError(
            "Objects registered with accelerator.register_for_checkpointing would be saved as pickles; pass them to "
            "save_checkpoint(states=...) and load_checkpoint(states=...) instead."
        )
    states = {name: obj for name, obj in (states or {}).items() if obj is not None}
    process_states = {name: obj for name, obj in (process_states or {}).items() if obj is not None}
    final_path = os.path.join(checkpoints_dir, f"checkpoint-{step}")
    temporary_path = os.path.join(checkpoints_dir, f"tmp-checkpoint-{step}")
    if accelerator.is_main_process:
        os.makedirs(checkpoints_dir, exist_ok=True)
        shutil.rmtree(temporary_path, ignore_errors=True)
    accelerator.wait_for_everyone()
    kept = f"the half-written checkpoint is deleted, and the earlier checkpoints in {checkpoints_dir} stay"
    try:
        with naming_a_full_disk(temporary_path, kept=kept):
            _write_checkpoint(accelerator, temporary_path, step, states, process_states, run_id)
    except DiskFullError:
        shutil.rmtree(temporary_path, ignore_errors=True)  # frees what it took
        raise
    if accelerator.is_main_process:
        shutil.rmtree(final_path, ignore_errors=True)
        os.replace(temporary_path, final_path)
        if total_limit is not None:
            checkpoints = [(saved, path) for saved, path in list_checkpoints(checkpoints_dir) if saved <= step]
            for _, old_path in checkpoints[: max(len(checkpoints) - max(total_limit, 1), 0)]:
                shutil.rmtree(old_path)
    accelerator.wait_for_everyone()
    return final_path


def _write_checkpoint(accelerator, temporary_path, step, states, process_states, run_id) -> None:
    """The checkpoint's files in `temporary_path`, the manifest last (every process)."""
    states_folder = os.path.join(temporary_path, STATES_FOLDER)
    accelerator.save_state(temporary_path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, obj in states.items():
            save_state_files(obj.state_dict(), states_folder, name)
    for name, obj in process_states.items():
        save_state_files(obj.state_dict(), states_folder, _process_state_name(name, accelerator.process_index))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {}
        for folder, _, names in os.walk(temporary_path):
            for name in names:
                file_path = os.path.join(folder, name)
                files[os.path.relpath(file_path, temporary_path)] = os.path.getsize(file_path)
        manifest = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "run_id": run_id,
            "run_dir": os.path.dirname(os.path.dirname(os.path.abspath(temporary_path))),
            "num_processes": accelerator.num_processes,
            "states": sorted(states),
            "process_states": sorted(process_states),
            "files": files,
        }
        with open(os.path.join(temporary_path, CHECKPOINT_MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2)


def load_checkpoint(accelerator, path: str, states: dict | None = None, process_states: dict | None = None) -> None:
    """
    Restore a checkpoint written by `save_checkpoint`: verify it, then `accelerator.load_state(path)` (safetensors and
    `weights_only=True` loads only), then each of `states` and `process_states` (this process's own) from its
    safetensors + JSON files, tensors placed on the device of those they replace. Call on every process.

    Args:
        accelerator (`accelerate.Accelerator`): With no objects registered for checkpointing.
        path (`str`): The checkpoint folder (e.g. from `resolve_checkpoint`).
        states (`dict[str, object]`, *optional*): As given to `save_checkpoint`; the names must be those saved.
        process_states (`dict[str, object]`, *optional*): As given to `save_checkpoint`.

    Raises:
        `ValueError`: For a damaged checkpoint (naming it and the file), or when the checkpoint holds other states
            than those asked for (e.g. it was saved with EMA and this run has none), or was saved by fewer processes.
    """
    verify_checkpoint(path)
    if getattr(accelerator, "_custom_objects", None):
        raise ValueError(
            "Objects registered with accelerator.register_for_checkpointing would be loaded from pickles; pass them "
            "to load_checkpoint(states=...) instead."
        )
    states = {name: obj for name, obj in (states or {}).items() if obj is not None}
    process_states = {name: obj for name, obj in (process_states or {}).items() if obj is not None}
    with open(os.path.join(path, CHECKPOINT_MANIFEST)) as f:
        manifest = json.load(f)
    for kind, asked, saved in (
        ("states", sorted(states), manifest.get("states", [])),
        ("process_states", sorted(process_states), manifest.get("process_states", [])),
    ):
        if asked != saved:
            raise ValueError(
                f"Checkpoint {path} holds the {kind} {saved}, and this run has {asked}; resume with the settings it "
                "was saved with (e.g. --use_ema when it holds 'ema')."
            )
    if process_states and accelerator.process_index >= manifest.get("num_processes", 1):
        raise ValueError(
            f"Checkpoint {path} was saved by {manifest.get('num_processes', 1)} process(es) and holds no state for "
            f"process {accelerator.process_index}; resume with at most that many processes."
        )
    # Everything accelerate reads here is safetensors or torch.load(..., weights_only=True): its `load` helper sets
    # weights_only=True unless told otherwise, and only registered custom objects (none here) are read without it.
    accelerator.load_state(path)
    states_folder = os.path.join(path, STATES_FOLDER)
    for name, obj in states.items():
        obj.load_state_dict(load_state_files(states_folder, name, like=obj.state_dict()))
    for name, obj in process_states.items():
        state_name = _process_state_name(name, accelerator.process_index)
        obj.load_state_dict(load_state_files(states_folder, state_name, like=obj.state_dict()))
