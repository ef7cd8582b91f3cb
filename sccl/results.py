"""Atomic writers: every result file is written to a temporary name and renamed, so a crash never
leaves a half-written CSV, JSON or checkpoint behind."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from pathlib import Path

import torch


def _atomic_bytes(path: Path, payload: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    _atomic_bytes(Path(path), text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    """Strict JSON: NaN and infinities (undefined metrics) are written as null."""
    obj = json.loads(json.dumps(obj, default=_jsonable), parse_constant=lambda _: None)
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike):
    with open(path) as fh:
        return json.load(fh)


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
    """Load tensors and plain containers only (``weights_only=True``: a checkpoint cannot run code)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def package_versions() -> dict[str, str]:
    import h5py
    import numpy

    import sccl

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "h5py": h5py.__version__, "sccl": sccl.__version__}
