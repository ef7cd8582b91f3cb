"""Real recordings -> SHD-layout spike files: ``python -m sccl.audio``.

    python -m sccl.audio --input FOLDER --labels '(?P<speaker>\\w+)_(?P<label>\\d+)_\\d+\\.wav' --out-dir OUT

Every ``.wav`` (and ``.flac``, with the ``soundfile`` package) under FOLDER is read, mixed to mono, resampled to
``--sample-rate`` (48 kHz, SHD's rate) and turned into spikes by a front-end: ``builtin`` (:mod:`sccl.cochlea`,
fast) or ``lauscher`` (the converter SHD was made with; ``pip install lauscher``, minutes per second of audio).

Labels and speakers come from a rule: a regular expression with named groups ``label`` and ``speaker`` matched
against each file's name (or, failing that, its path below FOLDER), or a CSV file with columns
``path,label,speaker`` (paths relative to FOLDER). Files the rule does not match are skipped and counted. Class
ids follow the sorted class names (numerically when all are numbers), stored as ``extra/keys``; speaker ids
follow the sorted speaker names, stored in the ``speaker_names`` attribute (JSON).

Split (deterministic, as SHD: whole speakers held out): the speakers named by ``--test-speakers``, or by default
the last fifth (rounded up) of the speakers in sorted order, go to ``<name>_test.h5``; the rest to
``<name>_train.h5``. Each file gets its own seed (``--seed`` and its index in sorted order), so the output does
not depend on ``--workers``. Files are validated and written under temporary names, renamed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import math
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sccl.cli import run_cli
from sccl.data import UNITS_ATTR, SHDData, estimated_size, load_shd, write_shd
from sccl.defaults import SHD
from sccl.disk import atomic_path, check_free_space, prepare_out_dir
from sccl.errors import ConfigError, DataError

AUDIO_SUFFIXES = (".wav", ".flac")
SAMPLE_RATE = 48000
N_CHANNELS = SHD["nb_units"]  # SHD's cochlea channels
TEST_FRACTION = 1 / 5


@dataclass(frozen=True)
class Recording:
    path: Path
    label: str
    speaker: str


# ----------------------------------------------------------------------------------------------
# finding the recordings and their labels


def audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder}: no .wav or .flac files in it")
    return files


def _from_csv(table: Path, folder: Path) -> list[Recording]:
    try:
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{table}: cannot read the label table ({exc})") from None
    if not rows or not {"path", "label", "speaker"} <= set(rows[0]):
        raise ConfigError(f"{table}: the label table needs the columns path,label,speaker")
    out = []
    for i, row in enumerate(rows, start=2):
        path = folder / row["path"]
        if not path.is_file():
            raise DataError(f"{table}, line {i}: {path} not found")
        out.append(Recording(path, row["label"].strip(), row["speaker"].strip()))
    return out


def _from_pattern(rule: str, folder: Path) -> list[Recording]:
    try:
        pattern = re.compile(rule)
    except re.error as exc:
        raise ConfigError(f"--labels {rule!r} is not a valid regular expression ({exc})") from None
    if not {"label", "speaker"} <= set(pattern.groupindex):
        raise ConfigError(f"--labels {rule!r} needs the named groups (?P<label>...) and (?P<speaker>...)")
    files = audio_files(folder)
    out = []
    for path in files:
        m = pattern.fullmatch(path.name) or pattern.fullmatch(path.relative_to(folder).as_posix())
        if m:
            out.append(Recording(path, m["label"], m["speaker"]))
    if not out:
        raise ConfigError(f"--labels {rule!r} matches none of the {len(files)} audio files in {folder} "
                          f"(e.g. {files[0].name})")
    if len(out) < len(files):
        print(f"skipping {len(files) - len(out)} of {len(files)} files that --labels does not match", file=sys.stderr)
    return out


def find_recordings(folder: Path, labels: str) -> list[Recording]:
    """The labelled recordings, from a regular expression or a CSV table (a ``.csv`` path that exists)."""
    if labels.lower().endswith(".csv") and Path(labels).is_file():
        return _from_csv(Path(labels), folder)
    return _from_pattern(labels, folder)


def _sorted_names(names) -> list[str]:
    names = sorted(set(names))
    return sorted(names, key=int) if all(n.isdigit() for n in names) else names


def held_out_speakers(speakers: list[str], chosen: list[str] | None) -> set[str]:
    """The held-out speakers: ``chosen``, or the last fifth (rounded up) of the sorted names."""
    if chosen:
        unknown = sorted(set(chosen) - set(speakers))
        if unknown:
            raise ConfigError(f"--test-speakers {' '.join(unknown)}: no such speaker (speakers: {' '.join(speakers)})")
        held = set(chosen)
    else:
        if len(speakers) < 2:
            raise ConfigError(f"only one speaker ({speakers[0]}): at least two are needed to hold one out for the "
                              "test file")
        held = set(speakers[-math.ceil(len(speakers) * TEST_FRACTION):])
    if held == set(speakers):
        raise ConfigError("every speaker would be a test speaker: leave at least one for training")
    return held


# ----------------------------------------------------------------------------------------------
# audio


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples in [-1, 1] and the sample rate; any problem is one :class:`DataError`."""
    try:
        if path.suffix.lower() == ".flac":
            try:
                import soundfile
            except ImportError:
                raise DataError(f"{path}: reading .flac needs the soundfile package (pip install soundfile), "
                                "or convert the files to .wav") from None
            samples, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
        else:
            from scipy.io import wavfile
            rate, samples = wavfile.read(path)
            if np.issubdtype(samples.dtype, np.integer):
                info = np.iinfo(samples.dtype)
                samples = (samples.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
            samples = samples.reshape(len(samples), -1)
    except DataError:
        raise
    except Exception as exc:  # scipy/soundfile raise many types on a damaged file
        raise DataError(f"{path}: not a readable audio file ({exc})") from None
    if len(samples) == 0:
        raise DataError(f"{path}: holds no audio samples")
    return np.asarray(samples, dtype=np.float64).mean(axis=1), int(rate)


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Exact rational resampling (polyphase, anti-aliased) from ``rate`` to ``target`` Hz."""
    if rate == target:
        return x
    from scipy.signal import resample_poly
    ratio = Fraction(target, rate)
    return resample_poly(x, ratio.numerator, ratio.denominator)


# ----------------------------------------------------------------------------------------------
# front-ends


def lauscher_spikes(x: np.ndarray, rate: int, n_channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """lauscher's own chain (RMS 0.3, Hann, basilar membrane, Meddis hair cell, bushy cells), single process."""
    from lauscher.audiowaves import MonoAudioWave
    from lauscher.helpers import CommandLineArguments
    from lauscher.transformations.wave2spike import Wave2Spike

    CommandLineArguments().num_concurrent_jobs = 1
    np.random.seed(seed % 2**32)  # lauscher draws from numpy's global generator
    train = MonoAudioWave(x.copy(), rate).transform(Wave2Spike(num_channels=n_channels))
    return np.asarray(train.spike_times, dtype=np.float64), np.asarray(train.spike_labels).astype(np.int64)


def check_front_end(name: str) -> None:
    if name == "lauscher" and importlib.util.find_spec("lauscher") is None:
        raise ConfigError("--front-end lauscher needs the lauscher package: pip install 'sccl[audio]' "
                          "(or use --front-end builtin)")


def convert_one(job: tuple[Path, str, int, int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """(spike times, units, audio seconds) of one file; runs in a worker process."""
    path, front_end, sample_rate, n_channels, seed = job
    x, rate = read_audio(path)
    x = resample(x, rate, sample_rate)
    if front_end == "lauscher":
        times, units = lauscher_spikes(x, sample_rate, n_channels, seed)
    else:
        from sccl.cochlea import cochlea
        times, units = cochlea(x, sample_rate, n_channels, seed=seed)
    order = np.argsort(times, kind="stable")
    return times[order], units[order], len(x) / sample_rate


# ----------------------------------------------------------------------------------------------
# the command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sccl.audio", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, type=Path, help="folder of .wav / .flac recordings (searched recursively)")
    p.add_argument("--labels", required=True,
                   help="regex with named groups label and speaker, matched on file names; or a CSV path,label,speaker")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--name", default="shd", help="file prefix: NAME_train.h5, NAME_test.h5 (default shd)")
    p.add_argument("--front-end", choices=("builtin", "lauscher"), default="builtin")
    p.add_argument("--test-speakers", nargs="+", default=None, help="speaker names held out for the test file")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE, help="rate every file is resampled to (Hz)")
    p.add_argument("--channels", type=int, default=N_CHANNELS)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace existing output files")
    return p


def _convert_all(jobs: list, workers: int) -> list:
    if workers == 1:
        return [convert_one(j) for j in tqdm(jobs, desc="cochlea", unit="file")]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(convert_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))),
                         total=len(jobs), desc="cochlea", unit="file"))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    for flag, value, low in (("--workers", args.workers, 1), ("--sample-rate", args.sample_rate, 1000),
                             ("--channels", args.channels, 1), ("--seed", args.seed, 0)):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    check_front_end(args.front_end)
    out_dir = args.out_dir
    paths = [out_dir / f"{args.name}_{part}.h5" for part in ("train", "test")]
    merged = out_dir / f"{args.name}_merged.h5"
    recordings = find_recordings(args.input, args.labels)
    classes = _sorted_names(r.label for r in recordings)
    speakers = _sorted_names(r.speaker for r in recordings)
    held = held_out_speakers(speakers, args.test_speakers)
    for r in recordings:  # a damaged file fails now, in one line, not in a worker after minutes of work
        read_audio(r.path)
    prepare_out_dir(out_dir, paths + [merged], args.force)  # everything is checked: only now is anything made
    jobs = [(r.path, args.front_end, args.sample_rate, args.channels, int(np.random.SeedSequence([args.seed, i])
             .generate_state(1)[0])) for i, r in enumerate(recordings)]
    start = time.time()
    results = _convert_all(jobs, args.workers)
    elapsed = time.time() - start
    audio_seconds = sum(r[2] for r in results)
    attrs = {"description": f"SHD-layout data: {args.name} (recordings from {args.input.name}, "
                            f"{args.front_end} cochlea)", "front_end": args.front_end, "seed": args.seed,
             "sample_rate": args.sample_rate, UNITS_ATTR: args.channels, "speaker_names": json.dumps(speakers),
             "test_speakers": json.dumps(sorted(held, key=speakers.index))}
    keys = np.array([c.encode("utf-8") for c in classes])
    datas = []
    for is_test in (False, True):
        idx = [i for i, r in enumerate(recordings) if (r.speaker in held) == is_test]
        datas.append(SHDData(
            times=_objects([results[i][0] for i in idx]), units=_objects([results[i][1] for i in idx]),
            labels=np.array([classes.index(recordings[i].label) for i in idx], dtype=np.int64),
            speakers=np.array([speakers.index(recordings[i].speaker) for i in idx], dtype=np.int64), keys=keys))
    check_free_space(out_dir, sum(estimated_size(d) for d in datas), "the spike files")
    with contextlib.ExitStack() as stack:  # both renamed into place only when both are written and valid
        for path, data, part in zip(paths, datas, ("train", "test")):
            tmp = stack.enter_context(atomic_path(path))
            write_shd(tmp, data, attrs={**attrs, "split": part})
            load_shd(tmp)  # the file must pass the reader's validation before it gets its name
        merged.unlink(missing_ok=True)  # made from an older pair
    print(f"wrote {paths[0]} ({len(datas[0])} samples) and {paths[1]} ({len(datas[1])} samples, speakers "
          f"{' '.join(sorted(held, key=speakers.index))}); {len(classes)} classes, {len(speakers)} speakers; "
          f"{elapsed / max(audio_seconds, 1e-9):.2f} s per second of audio ({args.front_end}, {args.workers} workers)")


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


if __name__ == "__main__":
    sys.exit(run_cli(main))
