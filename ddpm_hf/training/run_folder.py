"""Saving a pipeline into a run folder that also holds the run's checkpoints, logs and figures."""

import os
import shutil
import tempfile
from collections.abc import Callable


def save_pipeline_folder(pipeline, output_dir: str, write_extras: Callable[[str], None] | None = None) -> None:
    """
    `pipeline.save_pretrained` into `output_dir`, which may already hold an earlier save and the run's other files.
    The pipeline, and what `write_extras(staging_folder)` adds beside it (a model card, metrics), is written to a
    staging folder inside `output_dir` first; then each file and component folder replaces the old one by a rename,
    model_index.json last, so a run killed at any moment leaves every component whole (an older or a newer one) and
    `from_pretrained` can load the folder.
    """
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pipeline-", dir=output_dir)
    try:
        pipeline.save_pretrained(staging)
        if write_extras is not None:
            write_extras(staging)
        for name in sorted(os.listdir(staging), key=lambda entry: entry == "model_index.json"):  # the index last
            source, target = os.path.join(staging, name), os.path.join(output_dir, name)
            if os.path.isdir(source):
                old = None
                if os.path.isdir(target):
                    old = tempfile.mkdtemp(prefix=f".old-{name}-", dir=output_dir)
                    os.replace(target, os.path.join(old, name))
                os.replace(source, target)
                if old is not None:
                    shutil.rmtree(old)
            else:
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
