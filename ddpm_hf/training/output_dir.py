"""Output folders that appear whole or not at all."""

import os
import shutil
import tempfile
from contextlib import contextmanager


def check_output_dir(output_dir: str, overwrite_output_dir: bool = False) -> None:
    """Refuse an `output_dir` that is a file, or a non-empty folder unless `overwrite_output_dir` is set."""
    if os.path.isfile(output_dir):
        raise ValueError(f"output_dir {output_dir!r} is a file; give a folder path.")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite_output_dir:
        raise ValueError(
            f"output_dir {output_dir!r} already holds files; choose another folder or pass --overwrite_output_dir."
        )


@contextmanager
def staged_output_dir(output_dir: str, overwrite_output_dir: bool = False):
    """
    Yield a fresh staging folder beside `output_dir`; on success it replaces `output_dir` in one rename, on failure
    it is deleted, so `output_dir` never holds a half-written run.
    """
    check_output_dir(output_dir, overwrite_output_dir)
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=parent)
    try:
        yield staging_dir
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    if os.path.isdir(output_dir):
        shutil.rmtree(output_dir)
    os.replace(staging_dir, output_dir)
