"""Real recordings -> SHD-layout spike files: ``python -m sccl.audio``.

    python -m sccl.audio --input FOLDER --labels '(?P<speaker>\\w+)_(?P<label>\\d+)_\\d+\\.wav' --out-dir OUT

Every ``.wav`` (and ``.flac``, with the ``soundfile`` package) under FOLDER is read, mixed to mono, resampled to
``--sample-rate`` (48 kHz, SHD's rate) and turned into spikes by a front-end: ``builtin`` (:mod:`sccl.audio.cochlea`;
several times faster again with the optional numba package, ``pip install 'sccl[fast]'``, same spikes) or
``lauscher`` (the converter SHD was made with; ``pip install lauscher``, minutes per second of audio).

Labels and speakers come from a rule: a regular expression with named groups ``label`` and ``speaker`` matched
against each file's name (or, failing that, its path below FOLDER), or a CSV file with columns
``path,label,speaker`` (paths relative to FOLDER). Files the rule does not match are skipped and counted.

Class ids (:mod:`sccl.audio.classes`): with ``--classes`` they come from a map and are the same whichever classes
a folder holds, so two conversions (a subset, later recordings) agree on what class 3 means: an ordered list
(``--classes zero,one,two``: id = position), a CSV file ``label,id`` (explicit ids, gaps allowed) or
``shd-digits`` (SHD's 20 keywords and ids: ``zero``..``nine`` 0-9, ``null``..``neun`` 10-19). A mapped class
without recordings has no samples; a label the map lacks is an error. Without ``--classes`` the ids follow the
sorted names of the classes present (numerically when all are numbers), so they shift when another folder holds
other classes; the mapping used is printed (``class ids: 0=..., 1=...``). Either way ``extra/keys`` holds the
name of each id (``class <id>`` in a gap) and the ``class_ids`` attribute says where the ids came from. Speaker
ids likewise: ``--speakers-order a,b,c`` (id = position), else the sorted names present; the names are stored in
the ``speaker_names`` attribute (JSON, index = id).

Split (deterministic, as SHD: whole speakers held out): the speakers named by ``--test-speakers``, or by default
the last fifth (rounded up) of the speakers present in id order, go to ``<name>_test.h5``; the rest to
``<name>_train.h5``. Each file gets its own seed, from ``--seed`` and its path below FOLDER, so its spikes do
not depend on the other files, on ``--workers`` or on resuming.

Resumable: each converted recording is kept at once (written atomically) in ``OUT/<name>.partial/``, keyed by
its file (path, size, modification time) and the settings; a rerun converts only the rest. The spike files are
validated, written under temporary names and renamed at the end; then the partial folder is removed. Memory per
worker: one recording at a time, ~135 MiB per second of 48 kHz audio with 700 channels (:mod:`sccl.audio.cochlea`).

Sample rates: a rate R carries frequencies below R/2 only. ``--sample-rate`` (the cochlea's rate) below twice the
highest channel frequency (2 x 20.3 kHz) is refused unless ``--allow-low-rate`` (channels above R/2 cannot be
driven, and the cochlea, calibrated at 48 kHz, fires differently); input files below it are resampled up with one
warning line (their top channels carry only spontaneous spikes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sccl.audio.classes import IdMap, check_covered, class_map, present_in_id_order, speaker_map
from sccl.audio.cochlea import MODEL_VERSION, cochlea, lowest_full_rate, resolve_engine, undriven_channels
from sccl.audio.files import Recording  # noqa: F401 (some re-exported)
from sccl.audio.files import _one_line, find_recordings, held_out_speakers, read_audio, resample
from sccl.core.defaults import SHD
from sccl.core.disk import _alive, atomic_path, check_free_space, prepare_out_dir
from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError, DataError, SCCLError
from sccl.data.hdf5 import MAX_ID, UNITS_ATTR, SHDData, estimated_size, load_shd, write_shd


SAMPLE_RATE = 48000
N_CHANNELS = SHD["nb_units"]  # SHD's cochlea channels
PARTIAL_SUFFIX = ".partial"  # OUT/<name>.partial/: the recordings converted so far, one file each


# ----------------------------------------------------------------------------------------------
# sample rates the channels need


def check_model_rate(rate: int, n_channels: int, allow: bool) -> None:
    """Refuse (or, with ``allow``, warn about) a cochlea rate that cannot drive the top channels."""
    need = lowest_full_rate(n_channels)
    if rate >= need:
        return
    problem = (f"--sample-rate {rate} Hz is below {need:.0f} Hz (twice the highest channel frequency): "
               f"{undriven_channels(rate, n_channels)} of the {n_channels} channels cannot be driven, and the cochlea, "
               f"calibrated at {SAMPLE_RATE} Hz, fires differently at other rates")
    if not allow:
        raise ConfigError(f"{problem}; use --sample-rate {SAMPLE_RATE} (or --allow-low-rate to convert anyway)")
    print(f"warning: {problem}; converting anyway (--allow-low-rate)", file=sys.stderr)


def warn_low_rate_files(rates: dict[Path, int], n_channels: int) -> None:
    """One warning line when some recordings are sampled too low to drive the top channels."""
    need = lowest_full_rate(n_channels)
    low = {path: rate for path, rate in rates.items() if rate < need}
    if low:
        path, lowest = min(low.items(), key=lambda item: item[1])
        print(f"warning: {len(low)} of {len(rates)} files are sampled below {need:.0f} Hz (lowest: {lowest} Hz, "
              f"{path.name}): for them the top {undriven_channels(lowest, n_channels)} of the {n_channels} channels "
              "carry only spontaneous spikes", file=sys.stderr)


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


def check_front_end(name: str, engine: str) -> str:
    """The cochlea engine the builtin front-end will use, compiled now (forked workers inherit it); one error line
    for a front-end or engine that is not installed or does not work here."""
    if name == "lauscher" and importlib.util.find_spec("lauscher") is None:
        raise ConfigError("--front-end lauscher needs the lauscher package: pip install 'sccl[audio]' "
                          "(or use --front-end builtin)")
    try:
        resolved = resolve_engine(engine)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"--engine {engine}: {exc}") from None
    if name == "builtin" and resolved == "numba":
        try:
            cochlea(np.ones(64), SAMPLE_RATE, n_channels=4, engine="numba")
        except Exception as exc:  # a numba that cannot compile here
            if engine == "numba":
                raise ConfigError(f"--engine numba does not work here ({_one_line(exc)}); use --engine numpy") from None
            print(f"note: the numba engine does not work here ({_one_line(exc)}): using numpy", file=sys.stderr)
            return "numpy"
    return resolved


@dataclass(frozen=True)
class Job:
    """One recording to convert, with everything its spikes depend on."""

    path: Path
    front_end: str
    sample_rate: int
    n_channels: int
    seed: int
    engine: str = "auto"


def file_seed(seed: int, relative_path: str) -> int:
    """A recording's seed: from ``--seed`` and its path below the input folder only."""
    digest = np.frombuffer(hashlib.sha256(relative_path.encode("utf-8")).digest()[:16], dtype=np.uint32)
    return int(np.random.SeedSequence([seed, *digest.tolist()]).generate_state(1)[0])


def convert_one(job: Job) -> tuple[np.ndarray, np.ndarray, float]:
    """(spike times, units, audio seconds) of one file."""
    x, rate = read_audio(job.path)
    x = resample(x, rate, job.sample_rate)
    if job.front_end == "lauscher":
        times, units = lauscher_spikes(x, job.sample_rate, job.n_channels, job.seed)
    else:
        times, units = cochlea(x, job.sample_rate, job.n_channels, seed=job.seed, engine=job.engine)
    order = np.argsort(times, kind="stable")
    return times[order], units[order], len(x) / job.sample_rate


# ----------------------------------------------------------------------------------------------
# the partial store: one file per converted recording, so that an interrupted run resumes


def job_key(job: Job) -> str:
    """Names the recording's result: its file (path, size, modification time) and every setting its spikes
    depend on, so a changed file or setting is converted again."""
    stat = job.path.stat()
    front_end = job.front_end if job.front_end == "builtin" else f"lauscher-{importlib.metadata.version('lauscher')}"
    fields = [str(job.path.resolve()), stat.st_size, stat.st_mtime_ns, front_end, MODEL_VERSION, job.sample_rate,
              job.n_channels, job.seed]
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()[:32]


def _result_path(store: Path, key: str) -> Path:
    return store / f"{key}.npz"


def store_result(store: Path, key: str, times: np.ndarray, units: np.ndarray, seconds: float) -> None:
    """Write one result under a temporary name and rename it: a killed run leaves no half-written result."""
    final = _result_path(store, key)
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, times=times.astype(np.float64), units=units.astype(np.uint16), seconds=np.float64(seconds))
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not write {final}: {exc.strerror or exc}") from None


def load_result(store: Path, key: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """A stored result, or None when there is none (or it cannot be read: it is converted again)."""
    path = _result_path(store, key)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return stored["times"], stored["units"].astype(np.int64), float(stored["seconds"])
    except FileNotFoundError:
        return None
    except Exception:  # damaged: drop it
        path.unlink(missing_ok=True)
        return None


def remove_dead_temporaries(store: Path) -> None:
    """Temporary results left by a process that was killed."""
    for tmp in store.glob("*.npz.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[1]
        if not pid.isdigit() or not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def convert_to_store(job: Job, store: Path, key: str) -> float:
    """Convert one recording into the store; returns its audio seconds (runs in a worker process)."""
    times, units, seconds = convert_one(job)
    store_result(store, key, times, units, seconds)
    return seconds


def _ignore_interrupts() -> None:  # workers: Ctrl-C is the main process's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def convert_missing(jobs: list[Job], keys: list[str], store: Path, workers: int) -> float:
    """Convert the recordings not in the store yet; returns their audio seconds. Each result is in the store as
    soon as it is done; on an error or Ctrl-C the queued ones are cancelled and those done are kept."""
    todo = [(job, key) for job, key in zip(jobs, keys) if not _result_path(store, key).exists()]
    bar = tqdm(total=len(todo), desc="cochlea", unit="file")
    seconds = 0.0
    try:
        if workers == 1:
            for job, key in todo:
                seconds += convert_to_store(job, store, key)
                bar.update()
            return seconds
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupts)
        try:
            pending = {pool.submit(convert_to_store, job, store, key) for job, key in todo}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    seconds += future.result()  # raises the worker's error
                    bar.update()
        except BrokenProcessPool:
            raise SCCLError(f"a worker process died (out of memory, or killed): the recordings converted so far are "
                            f"kept in {store}; rerun the same command to convert the rest") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return seconds
    finally:
        bar.close()


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
    p.add_argument("--engine", choices=("auto", "numba", "numpy"), default="auto",
                   help="the builtin cochlea's engine: numba (compiled, needs numba), numpy, or auto (numba when "
                        "installed); both give the same spikes")
    p.add_argument("--classes", default=None, metavar="MAP",
                   help="class ids that do not depend on which classes are present: an ordered list "
                        "(zero,one,two: id = position), a CSV file with columns label,id (gaps allowed), or "
                        "shd-digits (SHD's 20 keywords and ids). Without it, ids follow the sorted names of the "
                        "classes present, so they depend on which classes the folder holds")
    p.add_argument("--speakers-order", default=None, metavar="NAMES",
                   help="speaker ids as an ordered list (anna,ben: id = position); default: the sorted names present")
    p.add_argument("--test-speakers", nargs="+", default=None, help="speaker names held out for the test file")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE, help="rate every file is resampled to (Hz)")
    p.add_argument("--allow-low-rate", action="store_true",
                   help="convert even when --sample-rate is too low to drive the top channels")
    p.add_argument("--channels", type=int, default=N_CHANNELS)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace existing output files")
    return p


def _check_args(args) -> str:
    """Every flag checked before anything is read; returns the engine the builtin cochlea will use."""
    for flag, value, low in (("--workers", args.workers, 1), ("--sample-rate", args.sample_rate, 1000),
                             ("--channels", args.channels, 1), ("--seed", args.seed, 0)):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if args.channels > MAX_ID + 1:
        raise ConfigError(f"--channels must be at most {MAX_ID + 1} (units are stored as uint16), got {args.channels}")
    engine = check_front_end(args.front_end, args.engine)
    check_model_rate(args.sample_rate, args.channels, args.allow_low_rate)
    return engine


def _note_engine(args, engine: str) -> None:
    """Once everything is checked (an error stays one line): say when the compiled engine could be faster."""
    if args.front_end == "builtin" and engine == "numpy" and args.engine == "auto":
        print("note: numba is not installed: the built-in cochlea runs several times slower "
              "(pip install 'sccl[fast]' for the compiled engine; same spikes)", file=sys.stderr)


def _split(recordings: list[Recording], results: list, classes: IdMap, speakers: IdMap,
           held: set[str]) -> list[SHDData]:
    keys = np.array([name.encode("utf-8") for name in classes.names])
    datas = []
    for is_test in (False, True):
        idx = [i for i, r in enumerate(recordings) if (r.speaker in held) == is_test]
        datas.append(SHDData(
            times=_objects([results[i][0] for i in idx]), units=_objects([results[i][1] for i in idx]),
            labels=np.array([classes.ids[recordings[i].label] for i in idx], dtype=np.int64),
            speakers=np.array([speakers.ids[recordings[i].speaker] for i in idx], dtype=np.int64), keys=keys))
    return datas


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    engine = _check_args(args)
    out_dir = args.out_dir
    paths = [out_dir / f"{args.name}_{part}.h5" for part in ("train", "test")]
    merged = out_dir / f"{args.name}_merged.h5"
    store = out_dir / f"{args.name}{PARTIAL_SUFFIX}"
    recordings = find_recordings(args.input, args.labels)
    classes = class_map(args.classes, (r.label for r in recordings))
    check_covered("label", "--classes", classes, [(r.label, r.path) for r in recordings])
    speakers = speaker_map(args.speakers_order, (r.speaker for r in recordings))
    check_covered("speaker", "--speakers-order", speakers, [(r.speaker, r.path) for r in recordings])
    present_speakers = present_in_id_order(speakers, (r.speaker for r in recordings))
    held = held_out_speakers(present_speakers, args.test_speakers)
    # a damaged file fails now, in one line, not in a worker after minutes of work
    warn_low_rate_files({r.path: read_audio(r.path)[1] for r in recordings}, args.channels)
    prepare_out_dir(out_dir, paths + [merged], args.force)  # everything is checked: only now is anything made
    _note_engine(args, engine)
    jobs = [Job(r.path, args.front_end, args.sample_rate, args.channels,
                file_seed(args.seed, r.path.relative_to(args.input).as_posix()), engine) for r in recordings]
    keys = [job_key(job) for job in jobs]
    try:
        store.mkdir(exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {store}: {exc.strerror or exc}") from None
    remove_dead_temporaries(store)
    kept = sum(_result_path(store, key).exists() for key in keys)
    if kept:
        print(f"resuming: {kept} of {len(jobs)} recordings already converted (in {store})", file=sys.stderr)
    start = time.time()
    try:
        converted_seconds = convert_missing(jobs, keys, store, args.workers)
    except KeyboardInterrupt:
        print(f"the recordings converted so far are kept in {store}: rerun the same command to convert the rest",
              file=sys.stderr)
        raise
    elapsed = time.time() - start
    results = []
    for job, key in zip(jobs, keys):
        result = load_result(store, key)
        if result is None:  # removed or damaged since: convert it again
            convert_to_store(job, store, key)
            result = load_result(store, key)
        results.append(result)
    attrs = {"description": f"SHD-layout data: {args.name} (recordings from {args.input.name}, "
                            f"{args.front_end} cochlea)", "front_end": args.front_end, "seed": args.seed,
             "sample_rate": args.sample_rate, UNITS_ATTR: args.channels,
             "speaker_names": json.dumps(list(speakers.names)),
             "test_speakers": json.dumps(present_in_id_order(speakers, held)), "class_ids": classes.source,
             "speaker_ids": speakers.source}
    datas = _split(recordings, results, classes, speakers, held)
    check_free_space(out_dir, sum(estimated_size(d) for d in datas), "the spike files")
    with contextlib.ExitStack() as stack:  # both renamed into place only when both are written and valid
        for path, data, part in zip(paths, datas, ("train", "test")):
            tmp = stack.enter_context(atomic_path(path))
            write_shd(tmp, data, attrs={**attrs, "split": part})
            load_shd(tmp)  # the file must pass the reader's validation before it gets its name
        merged.unlink(missing_ok=True)  # made from an older pair
    shutil.rmtree(store, ignore_errors=True)
    speed = (f"{elapsed / converted_seconds:.2f} s per second of audio" if converted_seconds
             else "nothing left to convert")
    how = f"{args.front_end}{f', {engine} engine' if args.front_end == 'builtin' else ''}, {args.workers} workers"
    with_samples = len({r.label for r in recordings})
    if args.classes is None:
        print(f"class ids: {classes.id_list()}")
    else:
        print(f"class ids: from {classes.source} ({len(classes.ids)} classes, {with_samples} with recordings)")
    print(f"wrote {paths[0]} ({len(datas[0])} samples) and {paths[1]} ({len(datas[1])} samples, speakers "
          f"{' '.join(present_in_id_order(speakers, held))}); {with_samples} classes, {len(present_speakers)} "
          f"speakers; {speed} ({how})")


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


if __name__ == "__main__":
    sys.exit(run_cli(main))
