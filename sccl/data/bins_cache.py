"""The sparse bins cache next to a data file (``<stem>.bins-T<steps>-max<time>.npz``): read with every array
checked, rebuilt when damaged, kept in memory only when it cannot be written.

A cache is used only while its stamp (cache version, size and modification time of the data file) matches. A
stale cache is rebuilt silently; a damaged one (truncated, not a zip, missing arrays, wrong shapes or values) is
rebuilt with a one-line warning. When the cache cannot be written (a read-only data folder, a full disk) the
binned data stay in memory for this run, with a one-line warning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sccl.core.disk import WriteError, atomic_path


CACHE_VERSION = 1
ARRAYS = {"stamp": np.int64, "offsets": np.int64, "steps": np.uint8, "units": np.uint16, "counts": np.uint8,
          "dropped": np.int64}


def cache_path_for(path: Path, nb_steps: int, max_time: float) -> Path:
    return path.with_name(f"{path.stem}.bins-T{nb_steps}-max{max_time:g}.npz")


def source_stamp(path: Path) -> np.ndarray:
    st = path.stat()
    return np.array([CACHE_VERSION, st.st_size, st.st_mtime_ns], dtype=np.int64)


def _check(z: dict[str, np.ndarray], nb_steps: int, nb_units: int) -> str | None:
    """What is wrong with the arrays of a cache, or None."""
    for key, dtype in ARRAYS.items():
        if key not in z:
            return f"no '{key}' array"
        if z[key].dtype != dtype:
            return f"'{key}' is {z[key].dtype}, not {np.dtype(dtype)}"
    offsets, n = z["offsets"], len(z["steps"])
    if z["stamp"].shape != (3,) or z["dropped"].shape != () or offsets.ndim != 1 or len(offsets) < 1:
        return "wrong array shapes"
    if any(z[k].shape != (n,) for k in ("units", "counts")) or z["steps"].ndim != 1:
        return "wrong array shapes"
    if offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) < 0).any():
        return "offsets inconsistent with the entries"
    if n and (z["steps"].max() >= nb_steps or z["units"].max() >= nb_units or z["counts"].min() < 1):
        return "values out of range"
    if z["dropped"] < 0:
        return "negative dropped count"
    return None


def read_cache(cache: Path, stamp: np.ndarray, nb_steps: int, nb_units: int) -> dict[str, np.ndarray] | None:
    """The arrays of a valid, current cache; None (after a warning if it is damaged) when it must be rebuilt."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            if "stamp" in z.files and not np.array_equal(z["stamp"], stamp):
                return None  # stale: the data file or the cache format changed
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # truncated, not a zip, garbage: numpy and zipfile raise many kinds
        problem = f"{type(exc).__name__}: {exc}"
    else:
        problem = _check(arrays, nb_steps, nb_units)
        if problem is None:
            return arrays
    print(f"warning: {cache}: damaged bins cache ({problem}); rebuilding it", file=sys.stderr)
    return None


def write_cache(cache: Path, stamp: np.ndarray, offsets, steps, units, counts, dropped: int) -> bool:
    """Write the cache atomically; on failure warn in one line and return False (the caller keeps the bins)."""
    arrays = {"stamp": stamp, "offsets": offsets, "steps": steps, "units": units, "counts": counts,
              "dropped": np.int64(dropped)}
    needed = sum(np.asarray(a).nbytes for a in arrays.values()) + 4096
    try:
        with atomic_path(cache, needed=needed, what="the bins cache") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    except WriteError as exc:
        print(f"warning: could not write the bins cache {cache} ({exc.reason}); keeping the binned data in memory "
              "for this run", file=sys.stderr)
        return False
    return True
