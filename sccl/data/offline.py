"""Offline SHD-format dataset: a deterministic, numpy-only generator of synthetic spoken digits.

The real Spiking Heidelberg Digits cannot be downloaded offline, so this module writes a stand-in pair
``shd_train.h5`` / ``shd_test.h5`` in exactly the SHD layout (see :mod:`sccl.data.hdf5`). It is **synthetic
data, not SHD**; results on it are not comparable with published SHD numbers.

How a sample is made: :mod:`sccl.data.offline_speech`.

Files and split (as in SHD): 12 speakers; all samples of speakers 4 and 5 go to the test file; of the
other speakers about 5 % of the samples of each (speaker, word) go to the test file. Every sample has its
own RNG, ``np.random.SeedSequence([seed, speaker, label, rep])``, so the output does not depend on the
order of generation, and the same seed gives byte-identical arrays (with the same numpy version).

Command line::

    python -m sccl.data.offline --out-dir DIR --size demo --seed 0 [--reps N] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from sccl.core.disk import atomic_path, check_free_space, prepare_out_dir
from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError, DataError
from sccl.data.hdf5 import (H5_ERRORS, NB_CLASSES, NB_SPEAKERS, REQUIRED_KEYS, SHDData, damage_reason, estimated_size,
                            write_shd)
from sccl.data.merge import MERGED_FILE
from sccl.data.offline_speech import SPEAKER_TABLE, make_sample, seeded_rng


GENERATOR_VERSION = "1.0"
DESCRIPTION = "synthetic SHD-format data (sccl offline generator), not SHD"
TRAIN_NAME = "shd_train.h5"
TEST_NAME = "shd_test.h5"

HELDOUT_SPEAKERS = (4, 5)
# fraction of each seen speaker's samples in the test file; 444 / 8600 reproduces SHD's 8156 train samples
TEST_FRACTION = 444 / 8600
# size presets: repetitions per (speaker, word); "shd" gives speakers 4 and 5 a few more, as in SHD,
# so that the split is exactly 8156 / 2264
SIZES = {
    "tiny": {"reps": 1},
    "demo": {"reps": 8},
    "shd": {"reps": 43, "heldout_reps": {4: 45, 5: 46}},
}


# ----------------------------------------------------------------------------------------------
# the split and the files


def _resolve_reps(size: str, reps: int | None) -> dict[int, int]:
    if size not in SIZES:
        raise ConfigError(f"unknown size '{size}' (choose from {', '.join(SIZES)})")
    if reps is not None:
        if int(reps) != reps or reps < 1:
            raise ConfigError(f"reps must be a positive integer, got {reps}")
        return {s: int(reps) for s in range(NB_SPEAKERS)}
    preset = SIZES[size]
    per = {s: preset["reps"] for s in range(NB_SPEAKERS)}
    per.update(preset.get("heldout_reps", {}))
    return per


def sample_plan(size: str = "demo", seed: int = 0, reps: int | None = None) -> list[tuple[int, int, int, int]]:
    """(speaker, label, rep, is_test) of every sample, in file order (train and test interleaved)."""
    per = _resolve_reps(size, reps)
    seen = [s for s in range(NB_SPEAKERS) if s not in HELDOUT_SPEAKERS]
    pairs = [(s, w) for s in seen for w in range(NB_CLASSES)]
    n_seen = sum(per[s] for s in seen) * NB_CLASSES
    n_test = int(round(TEST_FRACTION * n_seen))
    # spread the seen-speaker test samples evenly over the (speaker, word) pairs, in a seeded order
    order = seeded_rng(seed, 3).permutation(len(pairs))
    base, extra = divmod(n_test, len(pairs))
    n_test_of = {pairs[j]: base + (1 if rank < extra else 0) for rank, j in enumerate(order)}
    plan = []
    for s in range(NB_SPEAKERS):
        for w in range(NB_CLASSES):
            r_all = per[s]
            k = r_all if s in HELDOUT_SPEAKERS else min(n_test_of[(s, w)], r_all)
            plan += [(s, w, r, int(r >= r_all - k)) for r in range(r_all)]
    return plan


def _meta() -> dict[str, np.ndarray]:
    return {
        "gender": np.array([row[0].encode("ascii") for row in SPEAKER_TABLE]),
        "age": np.array([row[1] for row in SPEAKER_TABLE], dtype=np.uint16),
        "body_height": np.array([row[2] for row in SPEAKER_TABLE], dtype=np.float64),
    }


def _sample(item: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    s, w, r, seed = item
    t, u = make_sample(s, w, r, seed)
    return t.astype(np.float16), u


def _build(items: list[tuple[int, int, int]], seed: int, order_key: int, progress: bool = False,
           workers: int = 1) -> SHDData:
    """The samples of one file; ``workers`` processes make them (each sample has its own RNG: same output)."""
    times = np.empty(len(items), dtype=object)
    units = np.empty(len(items), dtype=object)
    perm = seeded_rng(seed, 4, order_key).permutation(len(items))  # file order: shuffled, as a real recording set
    items = [items[j] for j in perm]
    desc = f"generating {('train', 'test')[order_key]} samples"
    jobs = [(s, w, r, seed) for s, w, r in items]
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
            made = pool.map(_sample, jobs, chunksize=16)
        else:
            made = map(_sample, jobs)
        for i, (t, u) in enumerate(tqdm(made, total=len(jobs), desc=desc, disable=not progress, leave=False)):
            times[i], units[i] = t, u
    labels = np.array([w for _, w, _ in items], dtype=np.int64)
    speakers = np.array([s for s, _, _ in items], dtype=np.int64)
    return SHDData(times, units, labels, speakers, meta=_meta())


def generate_dataset(
    out_dir: str | os.PathLike, size: str = "demo", seed: int = 0, reps: int | None = None, force: bool = False,
    progress: bool = False, workers: int = 1,
) -> tuple[Path, Path]:
    """Write ``shd_train.h5`` and ``shd_test.h5`` into ``out_dir``; return their paths.

    ``size`` is a preset ("tiny", "demo", "shd"); ``reps`` overrides its repetitions per (speaker, word).
    Existing files (and a merged file made from them) are only replaced with ``force=True``. ``workers`` processes generate the samples (the
    output does not depend on it). The free space is checked before anything is written; each file is written
    under a temporary name and renamed at the end, so an interrupted or failed run leaves no partial file (and
    the next run removes the temporary files of a killed one).
    """
    if int(seed) != seed or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    seed = int(seed)
    plan = sample_plan(size, seed, reps)
    out_dir = Path(out_dir)
    train_path, test_path = out_dir / TRAIN_NAME, out_dir / TEST_NAME
    merged = out_dir / MERGED_FILE  # made from the pair: replaced with it
    prepare_out_dir(out_dir, (train_path, test_path, merged), force, "force=True / --force")
    attrs = {
        "description": DESCRIPTION,
        "generator": "sccl.data.offline",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": size if reps is None else f"{size} (reps={reps})",
        "numpy_version": np.__version__,
    }
    datas = [_build([(s, w, r) for s, w, r, is_test in plan if is_test == flag], seed, flag, progress, workers)
             for flag in (0, 1)]
    check_free_space(out_dir, sum(estimated_size(d) for d in datas), f"the {size} dataset")
    try:
        with contextlib.ExitStack() as stack:  # both files renamed into place only when both are written
            for path, data, flag in zip((train_path, test_path), datas, (0, 1)):
                tmp = stack.enter_context(atomic_path(path))
                write_shd(tmp, data, attrs={**attrs, "split": ("train", "test")[flag]})
            merged.unlink(missing_ok=True)  # before the new pair is in place: never a merged file of the old one
    except OSError as exc:
        raise DataError(f"could not write the dataset into {out_dir}: {exc}") from None
    return train_path, test_path


def _file_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED_KEYS if key not in f]
    except H5_ERRORS as exc:
        return f"{path.name} is damaged ({damage_reason(exc)})"
    return f"{path.name} is incomplete (no '{missing[0]}')" if missing else None


def dataset_problem(out_dir: str | os.PathLike) -> str | None:
    """Why the dataset folder ``out_dir`` cannot be used as it is (nothing there, a file missing, truncated or
    damaged: a half-generated folder), or None. A quick check: each file opens and holds the SHD keys."""
    out_dir = Path(out_dir)
    pair = (out_dir / TRAIN_NAME, out_dir / TEST_NAME)
    if (out_dir / MERGED_FILE).exists():
        return _file_problem(out_dir / MERGED_FILE)
    if not any(p.exists() for p in pair):
        return "no dataset yet"
    return next((problem for problem in map(_file_problem, pair) if problem), None)


# ----------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sccl.data.offline",
        description="Write a synthetic SHD-format dataset (shd_train.h5, shd_test.h5). "
        "It is generated offline with numpy and is NOT the real SHD.",
    )
    p.add_argument("--out-dir", required=True, help="folder for shd_train.h5 and shd_test.h5")
    p.add_argument("--size", default="demo", choices=list(SIZES),
                   help="tiny: 240 samples (tests); demo: 1,920; shd: 8,156 train / 2,264 test (default: demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per (speaker, word), overrides --size")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--workers", type=int, default=1, help="processes generating samples (same output; default 1)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    train, test = generate_dataset(args.out_dir, size=args.size, seed=args.seed, reps=args.reps, force=args.force,
                                   progress=True, workers=args.workers)
    secs = time.perf_counter() - start
    for path in (train, test):
        with h5py.File(path, "r") as f:
            n = len(f["labels"])
        print(f"wrote {path}: {n} samples, {path.stat().st_size / 1e6:.1f} MB")
    print(f"{DESCRIPTION}; seed {args.seed}, size {args.size}; {secs:.1f} s")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
