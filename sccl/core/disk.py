"""Writing files safely: free space checked first, a temporary file renamed at the end, every failure one line.

Results and checkpoints (:mod:`sccl.core.results`), splits, the data files sccl makes (merge, generator, download) and
the bins cache go through :func:`atomic_path` (or :func:`atomic_write_bytes`): each is written as
``<name>.tmp<pid>`` next to its final place and renamed over it only when complete, so a crash never leaves a
half-written file under the final name. On failure (a full disk, a read-only folder) the temporary file is removed
and the error is one :class:`DataError` naming the file. A temporary file left by a process that was killed
(SIGKILL leaves no chance to clean up) is removed by the next write of the same file, once its process is gone.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path

from sccl.core.errors import DataError


TMP_MARK = ".tmp"
# what to tell the user, by errno, when a write fails
ADVICE = {
    errno.ENOSPC: "free some space (or choose another folder) and rerun the same command",
    errno.EDQUOT: "free some space (or choose another folder) and rerun the same command",
    errno.EFBIG: "the file is larger than this system allows; choose another folder",
    errno.EROFS: "the folder is read-only; choose a folder you can write to",
    errno.EACCES: "check its permissions or choose a folder you can write to",
    errno.EPERM: "check its permissions or choose a folder you can write to",
}


class WriteError(DataError):
    """A file could not be written; ``reason`` is the short cause (for callers that only warn)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def temp_path(path: Path) -> Path:
    """This process's temporary name for ``path``."""
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` whose process is gone (or is this one: it is not writing it now)."""
    removed = []
    # this module's names, and ".<name>.tmp-<pid>" of the offline generator's first version
    name = re.escape(path.name + TMP_MARK)
    pattern = re.compile(rf"(?:{name}|\.{name}-)(\d+)")
    for tmp in path.parent.glob("*" + glob.escape(path.name + TMP_MARK) + "*"):
        m = pattern.fullmatch(tmp.name)
        if m and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1)))):
            with suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the file system of ``folder`` (or of its nearest existing parent); None if unknown."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """One clear error, before anything is written, when ``folder`` has less than ``needed`` bytes free."""
    free = free_bytes(folder)
    if free is not None and free < needed:
        sizes = f"needs {human(needed)} ({needed} bytes), {human(free)} ({free} bytes) free"
        raise WriteError(f"not enough free space in {folder} for {what}: {sizes}; free some space or choose another "
                         "folder", f"not enough free space: {sizes}")


def write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or type(exc).__name__
    advice = ADVICE.get(exc.errno, "check the folder and rerun the same command")
    return WriteError(f"could not write {path}: {reason}; {advice}", reason)


@contextmanager
def atomic_path(path: str | os.PathLike, needed: int | None = None, what: str | None = None):
    """Yield a temporary path to write ``path`` to; rename it over ``path`` when the block ends without error.

    ``needed`` (bytes, when known) is checked against the free space first. Any failure removes the temporary
    file; an :class:`OSError` becomes one :class:`DataError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    remove_stale_temps(path)
    if needed is not None:
        check_free_space(path.parent, needed, what or path.name)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes, what: str | None = None) -> None:
    """Write ``payload`` to ``path`` atomically, after checking there is room for it."""
    with atomic_path(path, needed=len(payload), what=what) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(payload)


def prepare_out_dir(out_dir: Path, outputs, force: bool, force_hint: str = "--force") -> None:
    """Make ``out_dir`` ready for a tool's ``outputs``: refuse to replace any that exist unless ``force``, create
    the folder, check that it can be written; each failure one :class:`DataError` line."""
    out_dir = Path(out_dir)
    existing = [str(p) for p in outputs if Path(p).exists()]
    if existing and not force:
        raise DataError(f"refusing to overwrite {' and '.join(existing)} (use {force_hint})")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise DataError(f"{out_dir}: the output folder is not writable; choose a folder you can write to")
