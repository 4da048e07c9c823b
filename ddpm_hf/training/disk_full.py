"""A full disk named as such: which file or folder was being written, and how much space is left.

torch and safetensors report a full disk in their own words (`basic_ios::clear: iostream error`, `unexpected pos ...`,
`PytorchStreamWriter failed writing file`, `IoError(... StorageFull ...)`), and Python's `OSError` says "No space
left on device" without the file; `naming_a_full_disk` turns any of them into a `DiskFullError` that says what was
being written.
"""

import errno
import os
import shutil
from contextlib import contextmanager

# Phrases of the errors torch (its C++ stream and zip writers) and safetensors raise when a write fails for want of
# space, besides an OSError with errno ENOSPC or EDQUOT.
DISK_FULL_PHRASES = (
    "no space left",
    "basic_ios::clear",
    "unexpected pos",
    "file write failed",
    "failed writing file",
    "storagefull",
    "disk quota exceeded",
)


class DiskFullError(OSError):
    """A write failed because the disk (or the user's quota) is full; the message names what was being written."""


def is_disk_full(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, says that the disk is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(phrase in str(error).lower() for phrase in DISK_FULL_PHRASES):
            return True
        error = error.__cause__ or error.__context__
    return False


def free_space(path: str) -> str:
    """The space left on the disk holding `path` (or its nearest existing parent), in words."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "an unknown amount of space"
    if free < 1024:
        return f"{free} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        free /= 1024
        if free < 1024 or unit == "TiB":
            return f"{free:.1f} {unit}"


def _last_written_file(path: str) -> str | None:
    """The most recently modified file under the folder `path`, relative to it (the one a failed save was writing)."""
    if not os.path.isdir(path):
        return None
    newest, newest_time = None, None
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                modified = os.stat(os.path.join(folder, name)).st_mtime_ns
            except OSError:
                continue
            if newest_time is None or modified >= newest_time:
                newest, newest_time = os.path.relpath(os.path.join(folder, name), path), modified
    return newest


@contextmanager
def naming_a_full_disk(path: str, kept: str = "what was saved before is kept"):
    """
    Raise a `DiskFullError` naming `path` (and, for a folder, the last file written in it), the space left and `kept`
    when the block fails for want of disk space (`is_disk_full`); other errors pass through unchanged.

    Args:
        path (`str`): The file or folder being written.
        kept (`str`, defaults to `"what was saved before is kept"`): What the failure leaves as it was.
    """
    try:
        yield
    except Exception as error:
        if isinstance(error, DiskFullError) or not is_disk_full(error):
            raise  # named already by an inner block, or not a full disk
        last_file = _last_written_file(path)
        detail = f" (last file written: {last_file})" if last_file else ""
        raise DiskFullError(
            errno.ENOSPC,
            f"The disk is full: writing {path}{detail} failed with {free_space(path)} left on its disk "
            f"({type(error).__name__}: {str(error)[:200]}); {kept}. Free some space, or write to another disk, and "
            "run again.",
        ) from error
