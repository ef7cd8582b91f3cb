"""Merge a dataset's official files into one file: SHD's train and test, SSC's train, valid and test.

Per-sample datasets are concatenated in one vectorised write each. Lookup tables indexed by word or
speaker id (``extra/keys``, ``extra/meta_info/*``) are copied once, not concatenated as the original
did (it turned the 20 keys into 40). ``extra/source`` records where each sample came from
(0 = train file, 1 = test file, 2 = validation file), so the official split stays recoverable; the ``sources`` attribute records each
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

from sccl.datasets import PARTS, SOURCE_CODES, detect, merged_file, part_file, part_files
from sccl.data import H5_ERRORS, SOURCE_KEY, damage_reason, load_shd
from sccl.disk import atomic_write_bytes, check_free_space
from sccl.errors import DataError
from sccl.provenance import SOURCES_ATTR, source_record

TRAIN_FILE, TEST_FILE = part_files("shd")
MERGED_FILE = merged_file("shd")
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


def _plan(files: list[dict], dtypes: list[dict], n: list[int], parts: list[str]) -> tuple[dict, list[str]]:
    """What the merged file holds, name -> (dtype, values), and one warning per key that cannot be kept.

    Lookup tables are copied once (the first file's). Any other key present in every file with one entry per
    sample (and the same dtype and trailing shape) is concatenated; one with the same value in every file (a
    scalar note) is copied; anything else (a key some files lack, different values) is left out."""
    out, warnings = {}, []
    for name in sorted(set().union(*files)):
        values = [f.get(name) for f in files]
        kinds = [d[name] for d in dtypes if name in d]
        have = [v for v in values if v is not None]
        if _is_lookup(name):
            if any(not np.array_equal(np.asarray(have[0]), np.asarray(v)) for v in have[1:]):
                warnings.append(f"'{name}' differs between the files; keeping the {parts[values.index(have[0])]} "
                                "file's")
            out[name] = (kinds[0], np.asarray(have[0]))
        elif len(have) < len(values):
            owners = " and ".join(p for p, v in zip(parts, values) if v is not None)
            warnings.append(f"ignoring '{name}': only the {owners} file{'s' if ' and ' in owners else ''} "
                            f"{'have' if ' and ' in owners else 'has'} it")
        elif len(set(kinds)) > 1:
            warnings.append(f"ignoring '{name}': stored with different types in the files")
        elif (all(np.ndim(v) >= 1 and len(v) == k for v, k in zip(values, n))
              and len({np.shape(v)[1:] for v in values}) == 1):
            out[name] = (kinds[0], np.concatenate(values))
        elif all(np.array_equal(np.asarray(values[0]), np.asarray(v)) for v in values[1:]):
            out[name] = (kinds[0], np.asarray(values[0]))
        else:
            warnings.append(f"ignoring '{name}': neither one entry per sample in every file nor the same value")
    return out, warnings


def merge_files(train_path: Path, test_path: Path, out_path: Path, force: bool = False,
                valid_path: Path | None = None) -> Path:
    """Write ``out_path`` = the train samples, then the validation samples (when given), then the test samples,
    with every key that can be kept; ``extra/source`` records each sample's file (:data:`SOURCE_CODES`).

    The file is built in memory and written once (HDF5 never writes to the disk: see :func:`sccl.data.shd_image`),
    under a temporary name renamed at the end, after checking the free space."""
    paths = {"train": Path(train_path), **({"valid": Path(valid_path)} if valid_path is not None else {}),
             "test": Path(test_path)}
    out_path = Path(out_path)
    if out_path.exists() and not force:
        raise DataError(f"{out_path} already exists; pass --force to overwrite it")
    counts = {part: len(load_shd(path)) for part, path in paths.items()}  # validates every file
    estimate = int(1.02 * sum(p.stat().st_size for p in paths.values())) + 65536
    check_free_space(out_path.parent, estimate, f"the merged file {out_path.name}")
    contents = {part: _read_all(path) for part, path in paths.items()}
    for part, path in paths.items():
        if SOURCE_KEY in contents[part][0]:
            raise DataError(f"{path}: already holds '{SOURCE_KEY}' (is it a merged file?)")
    parts = list(paths)
    plan, warnings = _plan([contents[p][0] for p in parts], [contents[p][1] for p in parts],
                           [counts[p] for p in parts], parts)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    source = np.repeat(np.array([SOURCE_CODES[p] for p in parts], np.uint8), [counts[p] for p in parts])
    with h5py.File(f"sccl-merge-{os.getpid()}", "w", driver="core", backing_store=False) as out:
        for name, (dtype, values) in plan.items():
            _write_like(out, name, dtype, values)
        out.create_dataset(SOURCE_KEY, data=source, maxshape=(None,), chunks=True)
        for key, value in contents["train"][2].items():
            out.attrs[key] = value
        out.attrs["merged_from"] = " + ".join(f"{paths[p].name} ({counts[p]} samples)" for p in parts)
        out.attrs[SOURCES_ATTR] = source_record(list(paths.values()))  # what the data is (sccl.provenance)
        out.flush()
        image = out.id.get_file_image()
    atomic_write_bytes(out_path, image, what=f"the merged file {out_path.name}")
    return out_path


def merged_path(data_dir: Path, dataset: str | None = None) -> Path:
    data_dir = Path(data_dir).expanduser()
    return data_dir / merged_file(dataset or detect(data_dir))


def no_data_message(data_dir: Path) -> str:
    return (
        f"no SHD or SSC files in {data_dir} (expected {TRAIN_FILE} and {TEST_FILE}, or {MERGED_FILE}; or SSC's "
        f"{', '.join(part_files('ssc'))}). Download them with `python heidelberg_unite_datasets.py --download "
        f"--data-dir {data_dir}` (add --dataset ssc for the Spiking Speech Commands), or generate the embedded "
        f"synthetic dataset with `python -m sccl.offline --out-dir {data_dir}`"
    )


def part_paths(data_dir: Path, dataset: str) -> dict[str, Path]:
    """``{part: path}`` of a dataset's files in ``data_dir`` (``train``, ``test``, and ``valid`` for SSC)."""
    return {part: Path(data_dir) / part_file(dataset, part) for part in PARTS[dataset]}


def merge_folder(data_dir: Path, dataset: str, force: bool = False) -> Path:
    """Merge the dataset's part files in ``data_dir`` into its merged file."""
    paths = part_paths(data_dir, dataset)
    return merge_files(paths["train"], paths["test"], Path(data_dir) / merged_file(dataset), force,
                       valid_path=paths.get("valid"))


def merged_if_present(data_dir: str | os.PathLike, quiet: bool = False) -> Path:
    """The merged file when the folder holds data (merging it first if needed), else its would-be path: a sweep
    submitted from a machine without the data (a cluster's login node) still expands, and anything that needs
    the file's contents ('all' ids, default groups) says so in one line."""
    data_dir = Path(data_dir).expanduser()
    dataset = detect(data_dir)
    if merged_path(data_dir, dataset).is_file() or all(p.is_file() for p in part_paths(data_dir, dataset).values()):
        return ensure_merged(data_dir, quiet)
    return merged_path(data_dir, dataset)


def ensure_merged(data_dir: str | os.PathLike, quiet: bool = False) -> Path:
    """Path of the merged file in ``data_dir`` (SHD's or SSC's, whichever the folder holds), merging the
    official files first if needed."""
    data_dir = Path(data_dir).expanduser()
    dataset = detect(data_dir)
    merged = merged_path(data_dir, dataset)
    if merged.is_file():
        return merged
    paths = part_paths(data_dir, dataset)
    if not all(p.is_file() for p in paths.values()):
        raise DataError(no_data_message(data_dir))
    if not quiet:
        print(f"merging {' + '.join(str(p) for p in paths.values())} -> {merged}")
    return merge_folder(data_dir, dataset)
