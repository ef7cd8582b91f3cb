"""Merge the official SHD train and test files into one file (train samples first, then test).

Per-sample datasets are concatenated in one vectorised write each. Lookup tables indexed by word or
speaker id (``extra/keys``, ``extra/meta_info/*``) are copied once, not concatenated as the original
did (it turned the 20 keys into 40). ``extra/source`` records where each sample came from
(0 = train file, 1 = test file), so the official split stays recoverable; the ``sources`` attribute records each
source's name, SHA-256 and whether it is an official SHD file (:mod:`sccl.provenance`). The result is written to a
temporary file and renamed at the end: a failed or interrupted merge leaves no merged file. Keys that are
neither (a note, a table in one file only) are concatenated when they hold one entry per sample in both files,
copied when equal in both, and otherwise left out with a one-line warning each.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import h5py
import numpy as np

from sccl.data import H5_ERRORS, SOURCE_KEY, damage_reason, load_shd
from sccl.disk import atomic_write_bytes, check_free_space
from sccl.errors import DataError
from sccl.provenance import SOURCES_ATTR, source_record

TRAIN_FILE = "shd_train.h5"
TEST_FILE = "shd_test.h5"
MERGED_FILE = "shd_merged.h5"
LOOKUP_PREFIXES = ("extra/keys", "extra/meta_info/")


def _read_all(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.dtype], dict]:
    """(values, stored dtypes, file attributes) of every dataset of ``path``; a damaged file is one line."""
    values, dtypes = {}, {}
    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            for name in sorted(names):
                values[name], dtypes[name] = f[name][()], f[name].dtype
            attrs = dict(f.attrs)
    except H5_ERRORS as exc:
        raise DataError(f"{path}: damaged HDF5 file ({damage_reason(exc)}); replace it (download it again)") from None
    return values, dtypes, attrs


def _is_lookup(name: str) -> bool:
    return any(name == p or name.startswith(p) for p in LOOKUP_PREFIXES)


def _write_like(dst: h5py.File, name: str, dtype: np.dtype, values: np.ndarray) -> None:
    if values.ndim == 0:
        dst.create_dataset(name, data=values, dtype=dtype)
    elif h5py.check_vlen_dtype(dtype) is not None:
        ds = dst.create_dataset(name, (len(values),), dtype=dtype, maxshape=(None,), chunks=True)
        if len(values):
            try:
                ds[:] = values
            except (TypeError, ValueError):  # equal-length arrays: h5py broadcasts them as 2-D
                for i, v in enumerate(values):
                    ds[i] = v
    else:
        dst.create_dataset(name, data=values, dtype=dtype, maxshape=(None,) + values.shape[1:], chunks=True)


def _plan(train: dict, test: dict, dtypes: tuple[dict, dict], n: tuple[int, int]) -> tuple[dict, list[str]]:
    """What the merged file holds, name -> (dtype, values), and one warning per key that cannot be kept.

    Lookup tables are copied once (the train file's). Any other key present in both files with one entry per
    sample (and the same dtype and trailing shape) is concatenated; one with the same value in both files (a
    scalar note) is copied; anything else (a key in one file only, different values) is left out."""
    out, warnings = {}, []
    for name in sorted(set(train) | set(test)):
        a, b = train.get(name), test.get(name)
        dtype = dtypes[0].get(name, dtypes[1].get(name))
        if _is_lookup(name):
            if a is not None and b is not None and not np.array_equal(np.asarray(a), np.asarray(b)):
                warnings.append(f"'{name}' differs between the files; keeping the train file's")
            out[name] = (dtype, np.asarray(a if a is not None else b))
        elif a is None or b is None:
            warnings.append(f"ignoring '{name}': only the {'train' if b is None else 'test'} file has it")
        elif (np.ndim(a) >= 1 and np.ndim(b) >= 1 and len(a) == n[0] and len(b) == n[1]
              and np.shape(a)[1:] == np.shape(b)[1:] and dtypes[0][name] == dtypes[1][name]):
            out[name] = (dtype, np.concatenate([a, b]))
        elif dtypes[0][name] == dtypes[1][name] and np.array_equal(np.asarray(a), np.asarray(b)):
            out[name] = (dtype, np.asarray(a))
        else:
            warnings.append(f"ignoring '{name}': neither one entry per sample in both files nor the same value")
    return out, warnings


def merge_files(train_path: Path, test_path: Path, out_path: Path, force: bool = False) -> Path:
    """Write ``out_path`` = ``train_path`` samples followed by ``test_path`` samples, every key that can be kept.

    The file is built in memory and written once (HDF5 never writes to the disk: see :func:`sccl.data.shd_image`),
    under a temporary name renamed at the end, after checking the free space."""
    train_path, test_path, out_path = Path(train_path), Path(test_path), Path(out_path)
    if out_path.exists() and not force:
        raise DataError(f"{out_path} already exists; pass --force to overwrite it")
    n_train, n_test = len(load_shd(train_path)), len(load_shd(test_path))  # validates both files
    estimate = int(1.02 * (train_path.stat().st_size + test_path.stat().st_size)) + 65536
    check_free_space(out_path.parent, estimate, f"the merged file {out_path.name}")
    train, dtypes_tr, attrs = _read_all(train_path)
    test, dtypes_te, _ = _read_all(test_path)
    for path, values in ((train_path, train), (test_path, test)):
        if SOURCE_KEY in values:
            raise DataError(f"{path}: already holds '{SOURCE_KEY}' (is it a merged file?)")
    plan, warnings = _plan(train, test, (dtypes_tr, dtypes_te), (n_train, n_test))
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    with h5py.File(f"sccl-merge-{os.getpid()}", "w", driver="core", backing_store=False) as out:
        for name, (dtype, values) in plan.items():
            _write_like(out, name, dtype, values)
        out.create_dataset(
            SOURCE_KEY, data=np.repeat(np.array([0, 1], np.uint8), [n_train, n_test]), maxshape=(None,), chunks=True
        )
        for key, value in attrs.items():
            out.attrs[key] = value
        out.attrs["merged_from"] = f"{train_path.name} ({n_train} samples) + {test_path.name} ({n_test} samples)"
        out.attrs[SOURCES_ATTR] = source_record([train_path, test_path])  # what the data is (sccl.provenance)
        out.flush()
        image = out.id.get_file_image()
    atomic_write_bytes(out_path, image, what=f"the merged file {out_path.name}")
    return out_path


def merged_path(data_dir: Path) -> Path:
    return Path(data_dir) / MERGED_FILE


def no_data_message(data_dir: Path) -> str:
    return (
        f"no SHD files in {data_dir} (expected {TRAIN_FILE} and {TEST_FILE}, or {MERGED_FILE}). "
        f"Download them with `python heidelberg_unite_datasets.py --download --data-dir {data_dir}`, "
        f"or generate the embedded synthetic dataset with `python -m sccl.offline --out-dir {data_dir}`"
    )


def merged_if_present(data_dir: str | os.PathLike, quiet: bool = False) -> Path:
    """The merged file when the folder holds data (merging it first if needed), else its would-be path: a sweep
    submitted from a machine without the data (a cluster's login node) still expands, and anything that needs
    the file's contents ('all' ids, default groups) says so in one line."""
    data_dir = Path(data_dir).expanduser()
    if merged_path(data_dir).is_file() or ((data_dir / TRAIN_FILE).is_file() and (data_dir / TEST_FILE).is_file()):
        return ensure_merged(data_dir, quiet)
    return merged_path(data_dir)


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
