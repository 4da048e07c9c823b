"""Replacing a folder by another so that a process killed at any instant leaves one of the two whole at its path.

On Linux (glibc 2.28 or later, and a file system that supports it) the two folders are exchanged in one
`renameat2(..., RENAME_EXCHANGE)` call. Elsewhere the old folder is first moved aside into `.old-<name>-*` and the new
one renamed in: a kill between the two renames leaves `<name>` missing and its old version in `.old-<name>-*`, which
`recover_replaced_folders` (run by the next writer of the folder) moves back.
"""

import ctypes
import errno
import os
import shutil
import tempfile

OLD_PREFIX = ".old-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2 << 0


def _load_renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # another system or C library, or a glibc older than 2.28
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange_paths(first: str, second: str) -> bool:
    """
    Swap the two existing paths `first` and `second` in one atomic step. Returns False, having changed nothing, when
    the system or the file system cannot (the caller then falls back on renames); raises `OSError` for other errors.
    """
    if _renameat2 is None:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(error, f"Cannot exchange {first} and {second}: {os.strerror(error)}")


def replace_folder(source: str, target: str) -> None:
    """
    Move the folder `source` to `target`, replacing (and deleting) the folder there, if any, so that at every instant
    `target` is either the old folder or the new one (`exchange_paths`), or, where no atomic exchange exists, the
    old one is recoverable from `.old-<name>-*` beside it (`recover_replaced_folders`).

    Args:
        source (`str`): The new folder, on the same file system as `target`.
        target (`str`): Where it goes.
    """
    if not os.path.isdir(target) or os.path.islink(target):
        os.replace(source, target)
        return
    if exchange_paths(source, target):
        shutil.rmtree(source)  # now the old folder
        return
    parent, name = os.path.split(os.path.normpath(target))
    aside = tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{name}-", dir=parent)
    os.replace(target, os.path.join(aside, name))
    os.replace(source, target)
    shutil.rmtree(aside)


def recover_replaced_folders(parent: str, name: str | None = None) -> list[str]:
    """
    Finish replacements in `parent` that a killed process left half done: move each `.old-<name>-*/<name>` whose
    `<name>` is missing back into place, then delete the `.old-*` folders. Call only while holding the folder (no other
    process may be replacing folders there).

    Args:
        parent (`str`): The folder the replaced folders live in.
        name (`str`, *optional*): Only the left-overs of this folder name (default: all).

    Returns:
        `list[str]`: The names moved back into place.
    """
    restored = []
    if not os.path.isdir(parent):
        return restored
    prefix = OLD_PREFIX if name is None else f"{OLD_PREFIX}{name}-"
    for entry in sorted(os.listdir(parent)):
        aside = os.path.join(parent, entry)
        if not entry.startswith(prefix) or not os.path.isdir(aside) or os.path.islink(aside):
            continue
        for inner in os.listdir(aside):
            if entry.startswith(f"{OLD_PREFIX}{inner}-") and not os.path.lexists(os.path.join(parent, inner)):
                os.replace(os.path.join(aside, inner), os.path.join(parent, inner))
                restored.append(inner)
        shutil.rmtree(aside)
    return restored
