"""The testsuite engine: run a list of jobs, skip those already finished, retry failures (a crashed run is never
counted done), run several at once with ``jobs``, and print a table.

A run that exits with status 2 (:data:`sccl.core.entry.EXIT_USER_ERROR`: bad input, a ``ConfigError``) is not retried: it
would fail the same way. Any other failure (another status, a signal, a dead worker, no results) may be transient
and is retried. The summary names each distinct reason once, with its count (:func:`failure_summary`), and
suggests rerunning only when some failure may be transient.

Python commands run in persistent workers (:mod:`sccl.jobs.worker`, one process per parallel slot), which saves the
3-4 s of CPU that starting Python with torch costs per run; a worker that dies is replaced and its run counted as
failed.

A job is done only when its own ``is_done()`` says so (its result files exist); there is no counter
file to advance past a failure, as the original's ``test.conf`` did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sccl.core.defaults import SHD
from sccl.core.entry import EXIT_USER_ERROR
from sccl.core.errors import ConfigError
from sccl.data.hdf5 import MAX_ID
from sccl.data.shape import file_ids, format_ids, resolve_groups
from sccl.learn.pretraining import is_finished, run_dir, run_id


@dataclass
class Job:
    name: str
    argv: list[str]
    is_done: Callable[[], bool]
    status: str = "pending"
    seconds: float = 0.0
    tail: list[str] = field(default_factory=list)
    attempts: int = 0
    reason: str = ""  # why it failed, one line (failure_reason)
    deterministic: bool = False  # it failed on bad input (exit status 2): rerunning cannot help


class _Worker:
    """One persistent ``python -m sccl.jobs.worker``; commands that are not this Python's run as plain processes."""

    def __init__(self, env: dict):
        self.env, self.proc = env, None

    def run(self, argv: list[str]) -> tuple[int, list[str]]:
        if argv[0] != sys.executable:
            proc = subprocess.run(argv, capture_output=True, text=True, env=self.env)
            return proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "sccl.jobs.worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env)
        try:
            self.proc.stdin.write(json.dumps({"argv": argv}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:  # the worker died with the run (killed, out of memory, a crash in native code)
            code = self.proc.wait()
            self.proc = None  # a dead worker is a crash, never bad input: its status is never 0 or 2 here
            return (1 if code in (0, EXIT_USER_ERROR) else code), [f"the run's process died (exit status {code})"]
        reply = json.loads(line)
        return reply["code"], reply["tail"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


def failure_reason(code: int, tail: list[str]) -> str:
    """Why a run failed, in one line: its ``error: ...`` line (what :func:`sccl.core.entry.run_cli` prints; argparse's
    ``PROG: error: ...``), else the last line of its output (a traceback's exception) with the exit status, else
    the exit status."""
    for line in reversed(tail):
        before, marker, reason = line.partition("error: ")
        if marker and (not before or before.endswith(": ")):
            return reason.strip()
    if code == 0:
        return "it exited without error but its results are missing"
    return f"{tail[-1].strip()} (exit status {code})" if tail else f"exit status {code}"


def _run_one(job: Job, retries: int, worker: _Worker, quiet: bool) -> Job:
    for attempt in range(1, retries + 2):
        t0 = time.perf_counter()
        code, tail = worker.run(job.argv)
        job.seconds += time.perf_counter() - t0
        job.attempts = attempt
        if code == 0 and job.is_done():
            job.status = "done"
            return job
        job.tail, job.reason, job.deterministic = tail, failure_reason(code, tail), code == EXIT_USER_ERROR
        if not quiet:
            print(f"  {job.name}: failed (exit {code}, attempt {attempt}"
                  f"{', bad input: not retried' if job.deterministic else ''}): {job.reason}", flush=True)
        if job.deterministic:
            break
    job.status = "failed"
    return job


def failure_summary(jobs: list[Job]) -> str | None:
    """One line on the failed ``jobs``: how many, each distinct reason once (with its count when several differ),
    and a rerun suggested only for those that may have failed transiently (None: nothing failed)."""
    failed = [j for j in jobs if j.status == "failed"]
    if not failed:
        return None
    reasons = Counter(j.reason for j in failed)
    why = "; ".join(r if len(reasons) == 1 else f"{n} x {r}" for r, n in reasons.items())
    transient = sum(not j.deterministic for j in failed)
    if transient == len(failed):
        advice = "; run the same command again to retry them"
    elif transient:
        advice = f"; run the same command again to retry the {transient} that may have failed transiently"
    else:
        advice = ""
    return f"{len(failed)} run(s) failed: {why}{advice}"


def run_jobs(jobs: list[Job], parallel: int = 1, retries: int = 1, dry_run: bool = False, quiet: bool = False,
             summarise: bool = True) -> int:
    """Run the pending jobs; returns the number that failed. Prints progress and a summary table, and (with
    ``summarise``) the :func:`failure_summary` line."""
    root = str(Path(__file__).resolve().parents[2])  # jobs run ``python -m sccl...`` without an installed package
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    pending = []
    for job in jobs:
        if job.is_done():
            job.status = "skipped (done)"
        else:
            pending.append(job)
    print(f"{len(jobs)} runs: {len(jobs) - len(pending)} already done, {len(pending)} to run"
          + (f", {parallel} at a time" if parallel > 1 and pending else ""), flush=True)
    if dry_run:
        for job in pending:
            print("  would run: " + " ".join(job.argv[1:]))
        return 0
    finished = 0
    slots, workers = threading.local(), []

    def run(job: Job) -> Job:
        if not hasattr(slots, "worker"):
            slots.worker = _Worker(env)
            workers.append(slots.worker)
        return _run_one(job, retries, slots.worker, quiet)

    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            for job in pool.map(run, pending):
                finished += 1
                print(f"[{finished}/{len(pending)}] {job.name}: {job.status} in {job.seconds:.1f} s", flush=True)
    finally:
        for worker in workers:
            worker.close()
    width = max((len(j.name) for j in jobs), default=4)
    print("\n" + f"{'run':<{width}}  status")
    for job in jobs:
        print(f"{job.name:<{width}}  {job.status}" + (f" ({job.seconds:.1f} s)" if job.seconds else ""))
    failed = sum(j.status == "failed" for j in jobs)
    if failed and summarise:
        print("\n" + failure_summary(jobs), file=sys.stderr, flush=True)
    return failed


def pretrain_job(scenario: str, held: int | None, seed: int, epochs: int, out_dir, split: str,
                 argv: list[str], require_epochs: bool = True, first_speakers=None, data_file=None,
                 first_classes=None, classes_per_step: int = 1) -> Job:
    """A job running statedicts/pretrain.py for one scenario's model (a held-out speaker or class, a first group
    of classes, or a first group of speakers; the groups default to the first half of ``data_file``'s).

    ``argv``: further flags (data dir, device, batch size...). The job is done once the model exists, trained
    for ``epochs`` epochs when ``require_epochs`` (a shorter finished model is then trained on), else any."""

    speakers, classes = first_speakers, first_classes
    if data_file is not None and Path(data_file).is_file() and scenario in ("speakers", "progressive"):
        speakers, classes = resolve_groups(first_speakers, first_classes, data_file)
    flag, value = {"sample_incremental": ("--speaker", held), "class_incremental": ("--removed-class", held),
                   "progressive": ("--classes", format_ids(first_classes) if first_classes else "first-half"),
                   "speakers": ("--first-speakers", format_ids(speakers if speakers is not None else range(SHD["first_speakers"])))}[scenario]
    step = ["--classes-per-step", str(classes_per_step)] if scenario == "progressive" and classes_per_step != 1 else []
    folder = run_dir(out_dir, split, scenario, held, seed, speakers, classes, classes_per_step)
    script = Path(__file__).resolve().parents[2] / "statedicts" / "pretrain.py"
    return Job(f"pretrain {run_id(scenario, held, speakers, classes, classes_per_step)} seed {seed}",
               [sys.executable, str(script), flag, str(value), "--seed", str(seed), "--epochs", str(epochs),
                "--out-dir", str(out_dir), "--split", split] + step + argv,
               lambda: is_finished(folder, epochs if require_epochs else None))


def id_list(text: str, data_file, what: str) -> list[int]:
    """Speaker or class ids of a sweep: 'all' = those with samples in ``data_file``, else e.g. '0-3,7' (an id the
    file lacks fails in its own run, with a clear message)."""

    if text == "all":
        if data_file is None or not Path(data_file).is_file():
            raise ConfigError(f"'all' {what}s: no merged data file to read them from ({data_file})")
        speakers, classes = file_ids(data_file)
        return list(speakers if what == "speaker" else classes)
    return parse_int_list(text, 0, MAX_ID, what)


def parse_int_list(text: str, low: int, high: int, what: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; 'all' -> low..high; values checked against [low, high]."""

    if text == "all":
        return list(range(low, high + 1))
    values: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                values.extend(range(int(a), int(b) + 1))
            elif part.strip():
                values.append(int(part))
    except ValueError:
        raise ConfigError(f"cannot read {what} list '{text}' (use e.g. 0-3,7 or all)") from None
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise ConfigError(f"{what} {bad[0]} is outside {low}..{high}")
    return sorted(set(values))
