"""The testsuite engine: run a list of jobs, skip those already finished, retry failures (a crashed run is never
counted done), run several at once with ``jobs``, and print a table.

Python commands run in persistent workers (:mod:`sccl.worker`, one process per parallel slot), which saves the
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    name: str
    argv: list[str]
    is_done: Callable[[], bool]
    status: str = "pending"
    seconds: float = 0.0
    tail: list[str] = field(default_factory=list)


class _Worker:
    """One persistent ``python -m sccl.worker``; commands that are not this Python's run as plain processes."""

    def __init__(self, env: dict):
        self.env, self.proc = env, None

    def run(self, argv: list[str]) -> tuple[int, list[str]]:
        if argv[0] != sys.executable:
            proc = subprocess.run(argv, capture_output=True, text=True, env=self.env)
            return proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "sccl.worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env)
        try:
            self.proc.stdin.write(json.dumps({"argv": argv}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:  # the worker died with the run (killed, out of memory, a crash in native code)
            code = self.proc.wait()
            self.proc = None
            return code or 1, [f"the run's process died (exit status {code})"]
        reply = json.loads(line)
        return reply["code"], reply["tail"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


def _run_one(job: Job, retries: int, worker: _Worker, quiet: bool) -> Job:
    for attempt in range(1, retries + 2):
        t0 = time.perf_counter()
        code, tail = worker.run(job.argv)
        job.seconds += time.perf_counter() - t0
        if code == 0 and job.is_done():
            job.status = "done"
            return job
        job.tail = tail
        if not quiet:
            print(f"  {job.name}: failed (exit {code}, attempt {attempt}): {tail[-1] if tail else ''}", flush=True)
    job.status = "failed"
    return job


def run_jobs(jobs: list[Job], parallel: int = 1, retries: int = 1, dry_run: bool = False, quiet: bool = False) -> int:
    """Run the pending jobs; returns the number that failed. Prints progress and a summary table."""
    root = str(Path(__file__).resolve().parents[1])  # jobs run ``python -m sccl...`` without an installed package
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
    if failed:
        print(f"\n{failed} run(s) failed; run the same command again to retry them", file=sys.stderr)
    return failed


def pretrain_job(scenario: str, held: int | None, seed: int, epochs: int, out_dir, split: str,
                 argv: list[str], require_epochs: bool = True, first_speakers=None, data_file=None,
                 first_classes=None, classes_per_step: int = 1) -> Job:
    """A job running statedicts/pretrain.py for one scenario's model (a held-out speaker or class, a first group
    of classes, or a first group of speakers; the groups default to the first half of ``data_file``'s).

    ``argv``: further flags (data dir, device, batch size...). The job is done once the model exists, trained
    for ``epochs`` epochs when ``require_epochs`` (a shorter finished model is then trained on), else any."""
    from sccl.defaults import SHD
    from sccl.pretraining import is_finished, run_dir, run_id
    from sccl.shape import resolve_groups
    from sccl.splits import format_ids

    speakers, classes = first_speakers, first_classes
    if data_file is not None and Path(data_file).is_file() and scenario in ("speakers", "progressive"):
        speakers, classes = resolve_groups(first_speakers, first_classes, data_file)
    flag, value = {"sample_incremental": ("--speaker", held), "class_incremental": ("--removed-class", held),
                   "progressive": ("--classes", format_ids(first_classes) if first_classes else "first-half"),
                   "speakers": ("--first-speakers", format_ids(speakers if speakers is not None else range(SHD["first_speakers"])))}[scenario]
    step = ["--classes-per-step", str(classes_per_step)] if scenario == "progressive" and classes_per_step != 1 else []
    folder = run_dir(out_dir, split, scenario, held, seed, speakers, classes, classes_per_step)
    script = Path(__file__).resolve().parents[1] / "statedicts" / "pretrain.py"
    return Job(f"pretrain {run_id(scenario, held, speakers, classes, classes_per_step)} seed {seed}",
               [sys.executable, str(script), flag, str(value), "--seed", str(seed), "--epochs", str(epochs),
                "--out-dir", str(out_dir), "--split", split] + step + argv,
               lambda: is_finished(folder, epochs if require_epochs else None))


def id_list(text: str, data_file, what: str) -> list[int]:
    """Speaker or class ids of a sweep: 'all' = those with samples in ``data_file``, else e.g. '0-3,7' (an id the
    file lacks fails in its own run, with a clear message)."""
    from sccl.data import MAX_ID
    from sccl.errors import ConfigError
    from sccl.shape import file_ids

    if text == "all":
        if data_file is None or not Path(data_file).is_file():
            raise ConfigError(f"'all' {what}s: no merged data file to read them from ({data_file})")
        speakers, classes = file_ids(data_file)
        return list(speakers if what == "speaker" else classes)
    return parse_int_list(text, 0, MAX_ID, what)


def parse_int_list(text: str, low: int, high: int, what: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; 'all' -> low..high; values checked against [low, high]."""
    from sccl.errors import ConfigError

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
