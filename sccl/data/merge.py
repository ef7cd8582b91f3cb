"""Merge a dataset's official files into one file: SHD's train and test, SSC's train, valid and test.

Per-sample datasets are concatenated in one vectorised write each. Lookup tables indexed by word or
speaker id (``extra/keys``, ``extra/meta_info/*``) are copied once, not concatenated as the original
did (it turned the 20 keys into 40). ``extra/source`` records where each sample came from
(0 = train file, 1 = test file, 2 = validation file), so the official split stays recoverable; the ``sources`` attribute records each
source's name, SHA-256 and whether it is an official SHD file (:mod:`sccl.data.provenance`). The result is written to a
temporary file and renamed at the end: a failed or interrupted merge leaves no merged file. Keys that are
neither (a note, a table in one file only) are concatenated when they hold one entry per sample in both files,
copied when equal in both, and otherwise left out with a one-line warning each.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from sccl.core.disk import atomic_write_bytes, check_free_space
from sccl.core.errors import DataError
from sccl.data.datasets import LABELS, PARTS, SOURCE_CODES, detect, merged_file, part_file, part_files
from sccl.data.hdf5 import H5_ERRORS, SOURCE_KEY, damage_reason, load_shd_tables
from sccl.data.provenance import SOURCES_ATTR, source_record


TRAIN_FILE, TEST_FILE = part_files("shd")
MERGED_FILE = merged_file("shd")
LOOKUP_PREFIXES = ("extra/keys", "extra/meta_info/")


COPY_CHUNK = 8192  # samples copied at a time: the merge holds one chunk of one dataset, plus the file it writes


def _datasets(path: Path, f: h5py.File) -> dict[str, h5py.Dataset]:
    names: list[str] = []
    try:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return {name: f[name] for name in sorted(names)}
    except H5_ERRORS as exc:
        raise DataError(f"{path}: damaged HDF5 file ({damage_reason(exc)}); replace it (download it again)") from None


def _is_lookup(name: str) -> bool:
    return any(name == p or name.startswith(p) for p in LOOKUP_PREFIXES)


def _put(dst: h5py.Dataset, start: int, values: np.ndarray) -> None:
    try:
        dst[start:start + len(values)] = values
    except (TypeError, ValueError):  # equal-length vlen arrays: h5py broadcasts them as 2-D
        for i, v in enumerate(values):
            dst[start + i] = v


def _new_dataset(dst: h5py.File, name: str, dtype: np.dtype, shape: tuple) -> h5py.Dataset:
    return dst.create_dataset(name, shape, dtype=dtype, maxshape=(None,) + shape[1:], chunks=True if shape[0] else None)


def _write_value(dst: h5py.File, name: str, dtype: np.dtype, values: np.ndarray) -> None:
    if values.ndim == 0:
        dst.create_dataset(name, data=values, dtype=dtype)
    else:
        _put(_new_dataset(dst, name, dtype, values.shape), 0, values)


def _plan(files: list[dict], n: list[int], parts: list[str]) -> tuple[dict, list[str]]:
    """What the merged file holds, name -> (dtype, values to copy, or None: concatenate the files' datasets), and
    one warning per key that cannot be kept. ``files``: each file's datasets (h5py datasets or arrays).

    Lookup tables are copied once (the first file's). Any other key present in every file with one entry per
    sample (and the same dtype and trailing shape) is concatenated; one with the same value in every file (a
    scalar note) is copied; anything else (a key some files lack, different values) is left out."""
    out, warnings = {}, []
    for name in sorted(set().union(*files)):
        have = [(part, f[name]) for part, f in zip(parts, files) if name in f]
        kinds = {ds.dtype for _, ds in have}
        if _is_lookup(name):
            first = np.asarray(have[0][1][()])
            if any(not np.array_equal(first, np.asarray(ds[()])) for _, ds in have[1:]):
                warnings.append(f"'{name}' differs between the files; keeping the {have[0][0]} file's")
            out[name] = (have[0][1].dtype, first)
        elif len(have) < len(files):
            owners = " and ".join(part for part, _ in have)
            many = len(have) > 1
            warnings.append(f"ignoring '{name}': only the {owners} file{'s' if many else ''} {'have' if many else 'has'} it")
        elif len(kinds) > 1:
            warnings.append(f"ignoring '{name}': stored with different types in the files")
        elif (all(len(ds.shape) >= 1 and ds.shape[0] == k for (_, ds), k in zip(have, n))
              and len({ds.shape[1:] for _, ds in have}) == 1):
            out[name] = (have[0][1].dtype, None)
        else:
            first = np.asarray(have[0][1][()])
            if all(np.array_equal(first, np.asarray(ds[()])) for _, ds in have[1:]):
                out[name] = (have[0][1].dtype, first)
            else:
                warnings.append(f"ignoring '{name}': neither one entry per sample in every file nor the same value")
    return out, warnings


def merge_files(train_path: Path, test_path: Path, out_path: Path, force: bool = False,
                valid_path: Path | None = None) -> Path:
    """Write ``out_path`` = the train samples, then the validation samples (when given), then the test samples,
    with every key that can be kept; ``extra/source`` records each sample's file (:data:`SOURCE_CODES`).

    Memory stays near the merged file's size at any scale: every file is validated, then copied, ``COPY_CHUNK``
    samples at a time, into an HDF5 file built in memory (HDF5 never writes to the disk: it crashes when a disk
    fills during a write, see :func:`sccl.data.hdf5.shd_image`), written once under a temporary name renamed at the
    end, after checking the free space."""
    paths = {"train": Path(train_path), **({"valid": Path(valid_path)} if valid_path is not None else {}),
             "test": Path(test_path)}
    out_path = Path(out_path)
    if out_path.exists() and not force:
        raise DataError(f"{out_path} already exists; pass --force to overwrite it")
    counts = {part: len(load_shd_tables(path)) for part, path in paths.items()}  # validates every file, chunk by chunk
    estimate = int(1.02 * sum(p.stat().st_size for p in paths.values())) + 65536
    check_free_space(out_path.parent, estimate, f"the merged file {out_path.name}")
    parts = list(paths)
    try:
        image = _merged_image(paths, counts, parts)
    except H5_ERRORS as exc:
        raise DataError(f"could not merge {' + '.join(p.name for p in paths.values())}: damaged HDF5 file "
                        f"({damage_reason(exc)}); replace it (download it again)") from None
    atomic_write_bytes(out_path, image.getbuffer(), what=f"the merged file {out_path.name}")
    return out_path


def _merged_image(paths: dict[str, Path], counts: dict[str, int], parts: list[str]) -> io.BytesIO:
    """The merged file's bytes (see :func:`merge_files`)."""
    with ExitStack() as stack:
        handles = {part: stack.enter_context(h5py.File(path, "r")) for part, path in paths.items()}
        files = {part: _datasets(paths[part], f) for part, f in handles.items()}
        for part, path in paths.items():
            if SOURCE_KEY in files[part]:
                raise DataError(f"{path}: already holds '{SOURCE_KEY}' (is it a merged file?)")
        plan, warnings = _plan([files[p] for p in parts], [counts[p] for p in parts], parts)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        image = io.BytesIO()
        total = sum(counts.values())
        with h5py.File(image, "w") as out:
            for name, (dtype, values) in plan.items():
                if values is not None:
                    _write_value(out, name, dtype, values)
                    continue
                dst = _new_dataset(out, name, dtype, (total,) + files["train"][name].shape[1:])
                start = 0
                for part in parts:
                    src = files[part][name]
                    for i in range(0, counts[part], COPY_CHUNK):
                        _put(dst, start + i, src[i:min(counts[part], i + COPY_CHUNK)])
                    start += counts[part]
            source = np.repeat(np.array([SOURCE_CODES[p] for p in parts], np.uint8), [counts[p] for p in parts])
            out.create_dataset(SOURCE_KEY, data=source, maxshape=(None,), chunks=True)
            for key, value in handles["train"].attrs.items():
                out.attrs[key] = value
            out.attrs["merged_from"] = " + ".join(f"{paths[p].name} ({counts[p]} samples)" for p in parts)
            out.attrs[SOURCES_ATTR] = source_record(list(paths.values()))  # what the data is (sccl.data.provenance)
    return image


def merged_path(data_dir: Path, dataset: str | None = None) -> Path:
    data_dir = Path(data_dir).expanduser()
    return data_dir / merged_file(dataset or detect(data_dir))


def no_data_message(data_dir: Path, dataset: str | None = None) -> str:
    """Why ``data_dir`` gives no data: the files missing from a dataset it holds part of, the other dataset when it
    holds that one's files and ``dataset`` names this one, else what is expected and how to get it."""

    for name in PARTS:
        paths = part_paths(data_dir, name).values()
        have, missing = [p.name for p in paths if p.is_file()], [p.name for p in paths if not p.is_file()]
        if have and missing:
            return (f"{data_dir} holds {', '.join(have)} but not {', '.join(missing)}: {LABELS[name]} needs all of "
                    f"{', '.join(part_files(name))} (download them with `python heidelberg_unite_datasets.py "
                    f"--download --dataset {name} --data-dir {data_dir}`)")
    other = [d for d in PARTS if d != dataset and all(p.is_file() for p in part_paths(data_dir, d).values())]
    if dataset is not None and other:
        return (f"{data_dir} holds {LABELS[other[0]]}'s files, not {LABELS[dataset]}'s: pass --dataset "
                f"{other[0]}")
    return (
        f"no SHD or SSC files in {data_dir} (expected {TRAIN_FILE} and {TEST_FILE}, or {MERGED_FILE}; or SSC's "
        f"{', '.join(part_files('ssc'))}). Download them with `python heidelberg_unite_datasets.py --download "
        f"--data-dir {data_dir}` (add --dataset ssc for the Spiking Speech Commands), or generate the embedded "
        f"synthetic dataset with `python -m sccl.data.offline --out-dir {data_dir}`"
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
