"""Finding a folder's recordings with their labels and speakers, and reading them as mono samples
(:mod:`sccl.audio.convert`'s input side).

Every problem with a file is one :class:`~sccl.core.errors.DataError` (or :class:`~sccl.core.errors.ConfigError` for a rule
or table) naming it.
"""

from __future__ import annotations

import csv
import math
import re
import sys
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from sccl.core.errors import ConfigError, DataError


AUDIO_SUFFIXES = (".wav", ".flac")
TEST_FRACTION = 1 / 5  # the speakers held out for the test file, as SHD

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
    """The held-out speakers: ``chosen``, or the last fifth (rounded up) of ``speakers`` (the speakers present, in
    the order of their ids: sorted names, or ``--speakers-order``)."""
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rate, samples = wavfile.read(path)
    for w in caught:  # other warnings (chunks it skips, such as LIST) are harmless
        if "EOF prematurely" in str(w.message):
            raise DataError(f"{path}: truncated WAV file ({_one_line(w.message)})")
    if samples.size == 0:
        raise DataError(f"{path}: holds no audio samples")
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        samples = (samples.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    return samples.reshape(len(samples), -1), rate


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples (the channels' mean) and the sample rate; any problem is one :class:`DataError`."""
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes), not an audio recording")
        if path.suffix.lower() == ".flac":
            try:
                import soundfile
            except ImportError:
                raise DataError(f"{path}: reading .flac needs the soundfile package (pip install soundfile), "
                                "or convert the files to .wav") from None
            samples, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
        else:
            samples, rate = _read_wav(path)
    except DataError:
        raise
    except Exception as exc:  # scipy/soundfile raise many types on a damaged file; OSError on an unreadable one
        raise DataError(f"{path}: not a readable audio file ({_one_line(exc)})") from None
    if len(samples) == 0 or samples.shape[1] == 0:
        raise DataError(f"{path}: holds no audio samples")
    if int(rate) <= 0:
        raise DataError(f"{path}: invalid sample rate {rate} Hz in its header")
    mono = np.asarray(samples, dtype=np.float64).mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise DataError(f"{path}: holds non-finite samples (NaN or infinity)")
    return mono, int(rate)


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Exact rational resampling (polyphase, anti-aliased) from ``rate`` to ``target`` Hz."""
    if rate == target:
        return x
    ratio = Fraction(target, rate)
    return resample_poly(x, ratio.numerator, ratio.denominator)
