"""accelerate checkpoints that are written atomically and pruned without ever deleting the only good one."""

import os
import re
import shutil

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


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


def resolve_checkpoint(checkpoints_dir: str, resume_from_checkpoint: str) -> tuple[int, str] | None:
    """
    The checkpoint to resume from: `"latest"` (None when there is none yet), or a path / `checkpoint-N` name.
    """
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(checkpoints_dir)
        return checkpoints[-1] if checkpoints else None
    path = resume_from_checkpoint
    if not os.path.isdir(path):
        path = os.path.join(checkpoints_dir, resume_from_checkpoint)
    match = CHECKPOINT_PATTERN.match(os.path.basename(os.path.normpath(path)))
    if not os.path.isdir(path) or match is None:
        available = [os.path.basename(p) for _, p in list_checkpoints(checkpoints_dir)]
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint!r} is not a checkpoint folder; use 'latest' or one of "
            f"{available}."
        )
    return int(match.group(1)), path


def save_checkpoint(accelerator, checkpoints_dir: str, step: int, total_limit: int | None = None) -> str:
    """
    `accelerator.save_state` into a temporary folder, then rename it to `checkpoint-<step>`, so an interrupted save
    never looks complete; then delete the oldest complete checkpoints beyond `total_limit`. Call on every process.
    """
    final_path = os.path.join(checkpoints_dir, f"checkpoint-{step}")
    temporary_path = os.path.join(checkpoints_dir, f"tmp-checkpoint-{step}")
    if accelerator.is_main_process:
        os.makedirs(checkpoints_dir, exist_ok=True)
        shutil.rmtree(temporary_path, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary_path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final_path, ignore_errors=True)
        os.replace(temporary_path, final_path)
        if total_limit is not None:
            checkpoints = list_checkpoints(checkpoints_dir)
            for _, old_path in checkpoints[: max(len(checkpoints) - max(total_limit, 1), 0)]:
                shutil.rmtree(old_path)
    accelerator.wait_for_everyone()
    return final_path
