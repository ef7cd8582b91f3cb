"""Merge the official SHD train and test files into one file (train samples first, then test).

Per-sample datasets are concatenated in one vectorised write each. Lookup tables indexed by word or
speaker id (``extra/keys``, ``extra/meta_info/*``) are copied once, not concatenated as the original
did (it turned the 20 keys into 40). ``extra/source`` records where each sample came from
(0 = train file, 1 = test file), so the official split stays recoverable. The result is written to a
temporary file and renamed at the end: a failed or interrupted merge leaves no merged file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import h5py
import numpy as np

from sccl.data import SOURCE_KEY, load_shd
from sccl.errors import DataError

TRAIN_FILE = "shd_train.h5"
TEST_FILE = "shd_test.h5"
MERGED_FILE = "shd_merged.h5"
LOOKUP_PREFIXES = ("extra/keys", "extra/meta_info/")


def _dataset_paths(f: h5py.File) -> list[str]:
    paths: list[str] = []
    f.visititems(lambda name, obj: paths.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(paths)


def _is_lookup(name: str) -> bool:
    return any(name == p or name.startswith(p) for p in LOOKUP_PREFIXES)


def _write_like(dst: h5py.File, name: str, src: h5py.Dataset, values: np.ndarray) -> None:
    if h5py.check_vlen_dtype(src.dtype) is not None:
        ds = dst.create_dataset(name, (len(values),), dtype=src.dtype, maxshape=(None,), chunks=True)
        if len(values):
            try:
                ds[:] = values
            except (TypeError, ValueError):  # equal-length arrays: h5py broadcasts them as 2-D
                for i, v in enumerate(values):
                    ds[i] = v
    else:
        dst.create_dataset(name, data=values, dtype=src.dtype, maxshape=(None,) + values.shape[1:], chunks=True)


def merge_files(train_path: Path, test_path: Path, out_path: Path, force: bool = False) -> Path:
    """Write ``out_path`` = ``train_path`` samples followed by ``test_path`` samples, every key kept."""
    train_path, test_path, out_path = Path(train_path), Path(test_path), Path(out_path)
    if out_path.exists() and not force:
        raise DataError(f"{out_path} already exists; pass --force to overwrite it")
    n_train, n_test = len(load_shd(train_path)), len(load_shd(test_path))  # validates both files
    tmp = out_path.with_name(f"{out_path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(train_path, "r") as ftr, h5py.File(test_path, "r") as fte, h5py.File(tmp, "w") as out:
            for name in _dataset_paths(ftr):
                src = ftr[name]
                if name == SOURCE_KEY:
                    raise DataError(f"{train_path}: already holds '{SOURCE_KEY}' (is it a merged file?)")
                if _is_lookup(name):
                    values = src[()]
                    if name in fte and not np.array_equal(np.asarray(fte[name][()]), np.asarray(values)):
                        print(f"warning: '{name}' differs between the files; keeping the train file's", file=sys.stderr)
                    _write_like(out, name, src, np.asarray(values))
                    continue
                if name not in fte:
                    raise DataError(f"{test_path}: missing key '{name}' that {train_path.name} has")
                a, b = src[()], fte[name][()]
                if len(a) != n_train or len(b) != n_test:
                    raise DataError(
                        f"'{name}' is neither per-sample ({len(a)}/{len(b)} entries for {n_train}/{n_test} samples)"
                        " nor a known lookup table"
                    )
                _write_like(out, name, src, np.concatenate([a, b]))
            out.create_dataset(
                SOURCE_KEY, data=np.repeat(np.array([0, 1], np.uint8), [n_train, n_test]), maxshape=(None,), chunks=True
            )
            for key, value in ftr.attrs.items():
                out.attrs[key] = value
            out.attrs["merged_from"] = f"{train_path.name} ({n_train} samples) + {test_path.name} ({n_test} samples)"
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def merged_path(data_dir: Path) -> Path:
    return Path(data_dir) / MERGED_FILE


def no_data_message(data_dir: Path) -> str:
    return (
        f"no SHD files in {data_dir} (expected {TRAIN_FILE} and {TEST_FILE}, or {MERGED_FILE}). "
        f"Download them with `python heidelberg_unite_datasets.py --download --data-dir {data_dir}`, "
        f"or generate the embedded synthetic dataset with `python -m sccl.offline --out-dir {data_dir}`"
    )


def ensure_merged(data_dir: str | os.PathLike, quiet: bool = False) -> Path:
    """Path of the merged file in ``data_dir``, merging the official files first if needed."""
    data_dir = Path(data_dir).expanduser()
    merged = merged_path(data_dir)
    if merged.is_file():
        return merged
    train, test = data_dir / TRAIN_FILE, data_dir / TEST_FILE
    if not train.is_file() or not test.is_file():
        raise DataError(no_data_message(data_dir))
    if not quiet:
        print(f"merging {train} + {test} -> {merged}")
    return merge_files(train, test, merged)
