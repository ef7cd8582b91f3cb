"""Locks that make a results folder safe to share between sweeps, and the check that a folder can be written.

A lock is ``fcntl.flock`` on a small file under ``<folder>/.locks/``: the kernel releases it when its process
ends, however it ends (a kill -9 included), so there is never a stale lock to clean up. The file holds the owner's
pid, for the message of whoever waits. Without ``fcntl`` (not POSIX) nothing is locked.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sccl.core.errors import ConfigError


try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


@contextmanager
def folder_lock(path: Path, waiting_message=None):
    """Hold the lock file ``path`` (created with its folder); wait while another process holds it, calling
    ``waiting_message(pid)`` once if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting_message is not None:
                    fh.seek(0)
                    waiting_message(fh.read().strip() or "?")
                fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def check_writable(folder, flag: str = "--out-dir") -> Path:
    """Create ``folder`` if needed and make sure a file can be written there, or one clear error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, FileExistsError) or (folder.exists() and not folder.is_dir()):
            reason = "a file of that name is in the way"
        raise ConfigError(f"cannot write into {flag} {folder}: {reason}; choose a folder you can write to") from None
    return folder
