"""Saving a pipeline into a run folder that also holds the run's checkpoints, logs and figures."""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable

from .disk_full import naming_a_full_disk
from .folder_swap import OLD_PREFIX, recover_replaced_folders, replace_folder

STAGING_PREFIX = ".pipeline-"


def clean_run_folder(output_dir: str) -> list[str]:
    """
    Undo what a save killed half-way left in `output_dir`: move back each component folder set aside and not yet
    replaced (`recover_replaced_folders`), then delete the left-over `.old-*` and `.pipeline-*` staging folders. Call
    only while holding the folder (`lock_run_folder`): a live save of another process would lose its staging folder.

    Returns:
        `list[str]`: The component folders moved back into place.
    """
    restored = recover_replaced_folders(output_dir)
    if os.path.isdir(output_dir):
        for entry in os.listdir(output_dir):
            path = os.path.join(output_dir, entry)
            if entry.startswith((STAGING_PREFIX, OLD_PREFIX)) and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
    return restored


def save_pipeline(pipeline, folder: str) -> None:
    """
    `pipeline.save_pretrained(folder)` as the scripts save a model: as diffusers' own `DDPMPipeline` where the model
    can be one (`DDPMCFGPipeline.ddpm_pipeline_obstacle()` is None: an unconditional `UNet2DModel` predicting epsilon,
    x0 or v), so that `DDPMPipeline.from_pretrained(folder)` loads it with no custom code and gives the same images;
    every other model with its pipeline's source copies.
    """
    obstacle = getattr(pipeline, "ddpm_pipeline_obstacle", None)
    if obstacle is not None and obstacle() is None:
        pipeline.save_pretrained(folder, as_ddpm_pipeline=True)
    else:
        pipeline.save_pretrained(folder)


@contextlib.contextmanager
def staged_pipeline(pipeline, output_dir: str, write_extras: Callable[[str], None] | None, kept: str):
    """
    `save_pipeline` (and `write_extras(staging_folder)`) into a new staging folder inside `output_dir`, after cleaning
    the left-overs of killed saves; yields the staging folder for the caller to move into place, and removes what is
    left of it afterwards. A full disk, while writing or moving, raises `DiskFullError` saying `kept`.
    """
    clean_run_folder(output_dir)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir)
    try:
        with naming_a_full_disk(staging, kept=kept):
            save_pipeline(pipeline, staging)
            if write_extras is not None:
                write_extras(staging)
        with naming_a_full_disk(output_dir, kept=kept):
            yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_pipeline_folder(pipeline, output_dir: str, write_extras: Callable[[str], None] | None = None) -> None:
    """
    `save_pipeline` into `output_dir`, which may already hold an earlier save and the run's other files.

    The pipeline, and what `write_extras(staging_folder)` adds beside it (a model card, metrics), is written to a
    staging folder inside `output_dir` first. Then each component folder replaces the old one in one atomic exchange
    (`replace_folder`) and each file by a rename, model_index.json last: a run killed at any instant leaves every
    component whole (the older or the newer one), and a first save killed before model_index.json leaves a folder
    that `from_pretrained` refuses naming model_index.json. Left-overs of a save killed earlier are cleaned first
    (`clean_run_folder`). When the disk fills up, a `DiskFullError` names the file being written and the space left,
    and the earlier save stays as it was. Call while holding the folder (`lock_run_folder`).

    Args:
        pipeline (`diffusers.DiffusionPipeline`): The pipeline to save.
        output_dir (`str`): The run folder.
        write_extras (`Callable[[str], None]`, *optional*): Writes more files into the staging folder it is given.
    """
    os.makedirs(output_dir, exist_ok=True)
    kept = f"the pipeline saved before in {output_dir}, if any, is kept whole"
    with staged_pipeline(pipeline, output_dir, write_extras, kept) as staging:
        for name in sorted(os.listdir(staging), key=lambda entry: entry == "model_index.json"):  # the index last
            source, target = os.path.join(staging, name), os.path.join(output_dir, name)
            if os.path.isdir(source):
                replace_folder(source, target)
            else:
                os.replace(source, target)


BEST_DIR = "best"


def save_best_pipeline(pipeline, output_dir: str, write_extras: Callable[[str], None] | None = None) -> None:
    """
    `save_pipeline` as `OUTPUT_DIR/best/`, the run's best model so far: written whole into a staging folder inside
    `output_dir` (with what `write_extras(staging_folder)` adds: its card and metrics.json), then put in place of the
    earlier `best/` in one atomic exchange (`replace_folder`). A run killed at any instant leaves either the earlier
    best or the new one loadable; a full disk raises `DiskFullError` and keeps the earlier one. Call while holding the
    folder (`lock_run_folder`).
    """
    kept = f"the best model saved before in {os.path.join(output_dir, BEST_DIR)}, if any, is kept whole"
    with staged_pipeline(pipeline, output_dir, write_extras, kept) as staging:
        replace_folder(staging, os.path.join(output_dir, BEST_DIR))


def read_best_record(output_dir: str) -> dict | None:
    """The held-out record of `OUTPUT_DIR/best/` ({"epoch", "step", "heldout_loss"} from its metrics.json), or None
    when the run has no best model yet."""
    path = os.path.join(output_dir, BEST_DIR, "metrics.json")
    if not os.path.isfile(path) or not os.path.isfile(os.path.join(output_dir, BEST_DIR, "model_index.json")):
        return None
    with open(path) as f:
        return (json.load(f).get("heldout") or {}).get("best")
