"""Where a sweep's jobs run: here (``--launcher local``: processes, ``--jobs N`` at a time) or on a Slurm cluster
(``--launcher slurm``: one job array per stage through ``submitit``, the continual-learning array waiting for the
pretraining array with ``afterok``; the command submits and returns).

Idempotence is the same in both: a job whose results exist is never run again, a failed one is run (or
submitted) again by the next call, never counted done. On Slurm, ``OUT_DIR/slurm/submitted.json`` remembers the
job id of every submitted run; a run whose job is still pending or running (``squeue``) is not submitted twice.
``--runs-per-job N`` packs N runs into one array task, run as N processes at once (several tiny runs per GPU).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sccl.core.errors import ConfigError
from sccl.jobs.sweep import Job, failure_summary, run_jobs


ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}


def add_launcher_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("launcher (where the runs execute)")
    g.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: processes on this machine (--jobs at a time); slurm: job arrays through submitit "
                        "(pip install -e .[slurm]); the command submits and returns (default: %(default)s)")
    g.add_argument("--runs-per-job", type=int, default=1,
                   help="runs packed into one Slurm array task, run as that many processes at once (e.g. several "
                        "runs per GPU) (default: %(default)s)")
    g.add_argument("--slurm-partition", help="partition (sbatch --partition)")
    g.add_argument("--slurm-account", help="account to charge (sbatch --account)")
    g.add_argument("--slurm-qos", help="quality of service (sbatch --qos)")
    g.add_argument("--slurm-time", type=int, default=240, help="time limit per array task in minutes (default: 240)")
    g.add_argument("--slurm-cpus-per-task", type=int, default=1, help="(default: 1; one thread per run)")
    g.add_argument("--slurm-mem", default="4G", help="memory per array task (default: 4G)")
    g.add_argument("--slurm-gpus-per-task", type=int, default=None,
                   help="GPUs per array task (default: 1 with --device cuda, else 0)")
    g.add_argument("--slurm-array-parallelism", type=int, default=64,
                   help="array tasks running at once (sbatch --array=0-N%%K) (default: 64)")
    g.add_argument("--slurm-max-array", type=int, default=1000,
                   help="largest array submitted at once (clusters cap MaxArraySize, often at 1001); a larger stage "
                        "becomes several arrays (default: %(default)s)")
    g.add_argument("--slurm-setup", action="append", default=[],
                   help="a shell line run before each job, e.g. 'source ~/venv/bin/activate' (repeatable)")
    g.add_argument("--slurm-logs", default=None, help="log folder (default: OUT_DIR/slurm/logs)")
    g.add_argument("--slurm-executor", choices=["slurm", "local"], default="slurm", help=argparse.SUPPRESS)


#: the launcher flags' destinations (:func:`add_launcher_flags`), by prefix
LAUNCHER_DESTS = ("launcher", "runs_per_job", "slurm_")


def launcher_argv(args) -> list[str]:
    """The launcher flags of parsed ``args`` as command-line words (what a study hands on to its sweeps)."""
    out: list[str] = []
    for dest, value in vars(args).items():
        if dest.startswith(LAUNCHER_DESTS) and value is not None:
            for v in value if isinstance(value, list) else [value]:
                out += ["--" + dest.replace("_", "-"), str(v)]
    return out


def check_launcher_args(args) -> None:
    if args.runs_per_job < 1:
        raise ConfigError(f"--runs-per-job must be >= 1, got {args.runs_per_job}")
    if args.launcher == "slurm":
        if min(args.slurm_time, args.slurm_cpus_per_task, args.slurm_array_parallelism, args.slurm_max_array) < 1:
            raise ConfigError("--slurm-time, --slurm-cpus-per-task, --slurm-array-parallelism and --slurm-max-array "
                              "must be >= 1")
        try:
            importlib.import_module("submitit")
        except ImportError:
            raise ConfigError("--launcher slurm needs submitit: pip install -e .[slurm] (or pip install submitit)") \
                from None
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if args.slurm_executor == "slurm" and missing and not args.dry_run:
            raise ConfigError(f"--launcher slurm: {' and '.join(missing)} not found on PATH; run this on the cluster's "
                              "login node (or use --dry-run to see the arrays)")


def run_commands(argvs: list[list[str]]) -> list[int]:
    """What one array task runs: its commands as processes at once; raises when any fails (the task fails)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen(argv, env=env) for argv in argvs]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"{sum(c != 0 for c in codes)} of {len(codes)} runs failed (exit codes {codes})")
    return codes


def launch(stages: list[tuple[str, list[Job]]], args, out_dir, summarise: bool = True) -> int:
    """Run (local) or submit (slurm) the stages in order; returns the number of runs known to have failed (on a
    real cluster none are known yet: the command returns once the arrays are submitted). Locally, one line at the
    end says why runs failed (:func:`sccl.jobs.sweep.failure_summary`, over every stage), unless ``summarise`` is off
    (a caller that prints it after its own output)."""
    check_launcher_args(args)
    if args.launcher == "local":
        failed = sum(run_jobs(jobs, parallel=args.jobs, retries=args.retries, dry_run=args.dry_run, summarise=False)
                     for _, jobs in stages)
        summary = failure_summary([job for _, jobs in stages for job in jobs])
        if summary and summarise:
            print("\n" + summary, file=sys.stderr, flush=True)
        return failed
    return _submit(stages, args, Path(out_dir))


# ----------------------------------------------------------------------------------------------
# Slurm


def _record_path(out_dir: Path) -> Path:
    return out_dir / "slurm" / "submitted.json"


def _active_jobs(job_ids: set[str]) -> set[str]:
    """The given job ids that squeue lists as pending or running (none when squeue is missing)."""
    if not job_ids or shutil.which("squeue") is None:
        return set()
    # this user's jobs, one line per array task (-r: pending tasks are otherwise folded into "ID_[1-9]"); asking
    # for ids with -j fails as a whole when one of them has left the queue
    r = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %T"], capture_output=True, text=True)
    active = set()
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in ACTIVE_STATES and parts[0] in job_ids:
            active.add(parts[0])
    return active


def _executor(args, folder: Path, gpus: int, dependency: str | None):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=args.slurm_executor)
    extra = {"dependency": dependency} if dependency else {}
    params = {"timeout_min": args.slurm_time, "cpus_per_task": args.slurm_cpus_per_task * args.runs_per_job,
              "name": "sccl"}
    if args.slurm_executor == "slurm":
        params.update(slurm_partition=args.slurm_partition, slurm_account=args.slurm_account,
                      slurm_qos=args.slurm_qos, slurm_mem=args.slurm_mem,
                      slurm_gpus_per_task=gpus or None, slurm_setup=list(args.slurm_setup),
                      slurm_array_parallelism=args.slurm_array_parallelism, slurm_additional_parameters=extra)
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    return executor


def _map_array(executor, commands: list, folder: Path, stage: str) -> list:
    """``executor.map_array(run_commands, commands)``; a submission sbatch refuses is one error line, and the
    files submitit wrote for it (pickles, submission script) are removed, since nothing will read them."""
    from submitit.core.utils import FailedJobError

    before = set(folder.rglob("*")) if folder.exists() else set()
    try:
        return executor.map_array(run_commands, commands)
    except FailedJobError as e:
        for path in sorted(set(folder.rglob("*")) - before, reverse=True):  # files before their folders
            path.unlink() if path.is_file() else path.rmdir()
        reason = next((line.strip() for line in str(e).splitlines() if line.strip()), "no message")
        raise ConfigError(f"sbatch refused the {stage} array: {reason} (nothing of it was submitted; check "
                          f"--slurm-partition, --slurm-account, --slurm-qos and --slurm-time)") from None


def _submit(stages, args, out_dir: Path) -> int:
    record_file = _record_path(out_dir)
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    active = _active_jobs({v for v in record.values()})
    gpus = args.slurm_gpus_per_task if args.slurm_gpus_per_task is not None else int(args.device == "cuda")
    logs = Path(args.slurm_logs) if args.slurm_logs else out_dir / "slurm" / "logs"
    previous_ids: list[str] = []
    failed = 0  # only known with the local executor, which waits
    for name, jobs in stages:
        pending = [j for j in jobs if not j.is_done()]
        waiting = [j for j in pending if record.get(j.name) in active]
        todo = [j for j in pending if record.get(j.name) not in active]
        stage_ids = sorted({record[j.name].split("_")[0] for j in waiting})
        chunks = [todo[i:i + args.runs_per_job] for i in range(0, len(todo), args.runs_per_job)]
        print(f"[slurm] {name}: {len(jobs)} runs, {len(jobs) - len(pending)} done, {len(waiting)} already queued, "
              f"{len(todo)} to submit as {len(chunks)} array task(s)", flush=True)
        dependency = "afterok:" + ":".join(previous_ids) if previous_ids else None
        if args.dry_run:
            for chunk in chunks:
                print("  would submit: " + " ; ".join(" ".join(j.argv[1:]) for j in chunk))
            if dependency:
                print(f"  (after {dependency})")
        for start in range(0, 0 if args.dry_run else len(chunks), args.slurm_max_array):
            part = chunks[start:start + args.slurm_max_array]
            executor = _executor(args, logs / name, gpus, dependency)
            submitted = _map_array(executor, [[j.argv for j in chunk] for chunk in part], logs / name, name)
            for chunk, job in zip(part, submitted):
                for j in chunk:
                    record[j.name] = str(job.job_id)
            stage_ids.append(str(submitted[0].job_id).split("_")[0])
            print(f"[slurm] {name}: submitted array {stage_ids[-1]} ({len(part)} tasks"
                  + (f", after {dependency}" if dependency else "") + f"); logs in {logs / name}", flush=True)
            record_file.parent.mkdir(parents=True, exist_ok=True)
            record_file.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            if args.slurm_executor == "local":  # no dependencies there: wait for the stage
                failed += sum(job.exception() is not None for job in submitted)
        previous_ids = stage_ids
    if not args.dry_run:
        print("[slurm] submitted; run the same command again to resubmit what failed, and "
              "`python -m sccl.report` when the arrays are done", flush=True)
    return failed
