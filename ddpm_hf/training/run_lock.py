"""One writer per run folder: an advisory lock on a file inside the folder, held for as long as a process writes there.

The lock is `fcntl.flock` on `RUN_LOCK`. The kernel drops it when the holding process ends, however it ends (`kill -9`
included), so a lock left by a killed run is free to take over: no process id is ever guessed at. The holder writes
its process id, host name, program and start time into the file, so that a refused writer can name it. Where there is
no `fcntl` (Windows), folders are not locked, and a warning says so once.
"""

import datetime
import json
import logging
import os
import socket
import sys
import time

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

logger = logging.getLogger(__name__)

RUN_LOCK = ".ddpm_hf_lock"
# A writer that finds the lock taken looks again a few times: `run_folder_holder` takes it for an instant to look.
LOCK_ATTEMPTS = 5
LOCK_RETRY_SECONDS = 0.05

# The locks this process holds, by the real path of their folder: a process never refuses itself.
_held_locks = {}
_warned_unlocked = []
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a lock file that is a link is refused where the system can tell


class RunFolderLock:
    """
    The lock of one run folder, held by this process until `release` (or until the process ends). Made by
    `lock_run_folder`.

    Attributes:
        run_dir (`str`): The folder.
        path (`str`): The lock file, `run_dir/RUN_LOCK`.
    """

    def __init__(self, run_dir: str, file):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, RUN_LOCK)
        self.file = file

    def moved(self, run_dir: str) -> None:
        """The folder was renamed to `run_dir` (the lock goes with it): follow it, so that `release` finds the file."""
        _held_locks.pop(os.path.realpath(self.run_dir), None)
        self.run_dir, self.path = run_dir, os.path.join(run_dir, RUN_LOCK)
        _held_locks[os.path.realpath(run_dir)] = self

    def release(self) -> None:
        """Delete the lock file (when it is still this lock's) and let the lock go. Calling it again does nothing."""
        if self.file is None:
            return
        if _held_locks.get(os.path.realpath(self.run_dir)) is self:
            del _held_locks[os.path.realpath(self.run_dir)]
        try:
            if _same_file(self.file.fileno(), self.path):
                os.unlink(self.path)  # while still locked: a writer waiting on this file then sees it gone and retries
        except OSError:
            pass  # the folder went away with its lock file (replaced or deleted by this process)
        self.file.close()
        self.file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def _same_file(fd: int, path: str) -> bool:
    """Whether `path` (not followed if a link) is the file open as `fd`."""
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def _read_holder(file) -> dict:
    try:
        file.seek(0)
        holder = json.loads(file.read() or "{}")
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe_holder(holder: dict) -> str:
    """`holder` (from `run_folder_holder`) in words: program, PID, host and start time as far as they are known."""
    if not holder:
        return "another process (it has not written its name yet)"
    return (
        f"{holder.get('script', 'a program')} (PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
        f"since {holder.get('started_at', '?')})"
    )


def run_folder_holder(run_dir: str) -> dict | None:
    """
    Who holds the lock of `run_dir` now: a dict with `pid`, `host`, `script` and `started_at` (empty when the holder
    has not written them yet), or None when the lock is free, the folder has no lock file, or this process holds it.
    Writes nothing.
    """
    if fcntl is None or os.path.realpath(run_dir) in _held_locks:
        return None
    try:
        fd = os.open(os.path.join(run_dir, RUN_LOCK), os.O_RDONLY | _NO_FOLLOW)
    except OSError:
        return None  # no lock file (or not a plain one, which `lock_run_folder` refuses): no holder
    with os.fdopen(fd) as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(file)
        fcntl.flock(file, fcntl.LOCK_UN)
    return None


def check_run_folder_free(run_dir: str, what: str = "output_dir") -> None:
    """
    Raise a `ValueError` naming the holder when another process holds `run_dir` (`run_folder_holder`).

    Args:
        run_dir (`str`): The folder.
        what (`str`, defaults to `"output_dir"`): How the message names the folder (the flag that gave it).
    """
    holder = run_folder_holder(run_dir)
    if holder is not None:
        raise ValueError(
            f"{what} {run_dir!r} is in use by {describe_holder(holder)}: a run folder takes one writer at a time. "
            "Wait for that process to end (or stop it), or choose another folder."
        )


def lock_run_folder(run_dir: str, script: str | None = None, what: str = "output_dir") -> RunFolderLock:
    """
    Take the lock of the existing folder `run_dir` for this process, and write who holds it into the lock file. A lock
    this process already holds there is released first and taken again.

    Args:
        run_dir (`str`): An existing folder.
        script (`str`, *optional*): Name of the writing program, for other writers' messages; defaults to that of the
            running program.
        what (`str`, defaults to `"output_dir"`): How messages name the folder.

    Returns:
        `RunFolderLock`: Held until its `release` or the end of the process.

    Raises:
        `ValueError`: When another process holds the lock (naming it), or the lock file is a link or not a file.
    """
    earlier = _held_locks.get(os.path.realpath(run_dir))
    if earlier is not None:
        earlier.release()
    if fcntl is None and not _warned_unlocked:
        logger.warning("This system has no fcntl: run folders are not locked against a second writer.")
        _warned_unlocked.append(True)
    path = os.path.join(run_dir, RUN_LOCK)
    for attempt in range(LOCK_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW, 0o644)
        except OSError as error:
            raise ValueError(f"{what} {run_dir!r}: its lock file {RUN_LOCK} cannot be opened ({error}).") from error
        file = os.fdopen(fd, "r+")
        try:
            if fcntl is not None:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(file)
            file.close()
            if attempt == LOCK_ATTEMPTS - 1:
                raise ValueError(
                    f"{what} {run_dir!r} is in use by {describe_holder(holder)}: a run folder takes one writer at a "
                    "time. Wait for that process to end (or stop it), or choose another folder."
                ) from None
            time.sleep(LOCK_RETRY_SECONDS)
            continue
        if not _same_file(file.fileno(), path):  # released (and deleted) by its holder while this process waited
            file.close()
            continue
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "script": script or os.path.basename(sys.argv[0]) or "python",
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        file.seek(0)
        file.truncate()
        file.write(json.dumps(holder))
        file.flush()
        lock = RunFolderLock(run_dir, file)
        _held_locks[os.path.realpath(run_dir)] = lock
        return lock
    raise ValueError(f"{what} {run_dir!r}: its lock file kept being replaced; try again.")
