"""Atomic writers: every result file is written to a temporary name and renamed, so a crash never
leaves a half-written CSV, JSON or checkpoint behind."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import platform
from pathlib import Path

import h5py
import numpy
import torch

from sccl import __version__
from sccl.core.disk import atomic_write_bytes
from sccl.core.errors import DataError


def _atomic_bytes(path: Path, payload: bytes) -> None:
    """Temporary file + rename, free space checked first; a failure is one :class:`DataError` (sccl.core.disk)."""
    atomic_write_bytes(path, payload)


def write_text(path: str | os.PathLike, text: str) -> None:
    _atomic_bytes(Path(path), text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    """Strict JSON: NaN and infinities (undefined metrics) are written as null."""
    obj = json.loads(json.dumps(obj, default=_jsonable), parse_constant=lambda _: None)
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike):
    """A JSON file's content; a missing, unreadable or damaged file is one clear :class:`DataError`."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read this JSON file ({type(exc).__name__}: {exc}); delete it or rerun "
                        "with --force") from None


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")


def write_csv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write rows (dicts) with a header line; floats as given (callers round where they want)."""
    columns = columns or (list(rows[0]) if rows else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def torch_save(path: str | os.PathLike, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_bytes(Path(path), buf.getvalue())


def torch_load(path: str | os.PathLike, map_location="cpu"):
    """Load tensors and plain containers only (``weights_only=True``: a checkpoint cannot run code). A file that
    needs more (a pickle of code or objects) is refused, and a damaged one reported, each in one line."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: this file is not a plain weights file; refusing to load it") from None
    except Exception as exc:  # truncated, not a zip, garbage: torch raises many kinds
        raise DataError(f"{path}: damaged or not a weights file ({type(exc).__name__}); delete it or rerun with "
                        "--force") from None


def package_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "h5py": h5py.__version__, "sccl": __version__}
