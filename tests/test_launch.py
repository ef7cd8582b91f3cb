"""Sweeps on Slurm without a cluster: the generated submissions (a fake sbatch and squeue on PATH), resubmission,
submitit's local executor end to end, and --jobs 2 giving the same results as one run at a time."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sccl.core.results import read_csv


ROOT = Path(__file__).resolve().parents[1]

FAKE_SBATCH = """#!/usr/bin/env bash
# records the submitted script and answers a job id, as sbatch does
n=$(ls "$FAKE_SLURM_DIR"/script_* 2>/dev/null | wc -l)
id=$((1000 + n))
cp "$1" "$FAKE_SLURM_DIR/script_$id.sh"
echo "Submitted batch job $id"
"""
FAKE_SQUEUE = """#!/usr/bin/env bash
# lists the jobs named in $FAKE_SLURM_DIR/running as RUNNING
[ -f "$FAKE_SLURM_DIR/running" ] && sed 's/$/ RUNNING/' "$FAKE_SLURM_DIR/running"
exit 0
"""


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm_state"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("squeue", FAKE_SQUEUE), ("srun", "#!/bin/sh\nexec \"$@\"\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_SLURM_DIR=str(state))
    return env, state


SWEEP = [sys.executable, "-m", "sccl.cli.cl_sweep", "--scenario", "sample_incremental", "--speakers", "3,5",
         "--strategies", "naive,latent_replay", "--depths", "1", "--latent-batches", "1", "--epochs", "1",
         "--launcher", "slurm", "--slurm-partition", "gpu-small", "--slurm-account", "proj42", "--slurm-qos", "high",
         "--slurm-time", "30", "--slurm-mem", "2G", "--slurm-cpus-per-task", "1", "--slurm-array-parallelism", "3",
         "--slurm-setup", "source /opt/venv/bin/activate"]


def submit(env, tmp_path, *extra):
    r = subprocess.run(SWEEP + ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "runs"), *extra],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_the_generated_arrays_their_dependency_resources_and_setup(fake_slurm, tmp_path):
    env, state = fake_slurm
    out = submit(env, tmp_path)
    scripts = sorted(state.glob("script_*.sh"))
    assert [s.name for s in scripts] == ["script_1000.sh", "script_1001.sh"]
    pre, cl = (s.read_text() for s in scripts)
    assert "#SBATCH --array=0-1%2" in pre  # two pretrainings (speakers 3 and 5)
    assert "#SBATCH --array=0-3%3" in cl  # 2 speakers x (naive, latent replay), at most 3 at once
    assert "#SBATCH --dependency=afterok:1000" in cl and "dependency" not in pre
    for text in (pre, cl):
        for line in ("#SBATCH --partition=gpu-small", "#SBATCH --account=proj42", "#SBATCH --qos=high",
                     "#SBATCH --time=30", "#SBATCH --mem=2G", "#SBATCH --cpus-per-task=1"):
            assert line in text, line
        assert "gpus" not in text  # no GPU unless --device cuda
        assert "source /opt/venv/bin/activate" in text
    assert "submitted array 1001 (4 tasks, after afterok:1000)" in out
    assert (tmp_path / "runs" / "slurm" / "logs" / "sample_incremental").is_dir()


def test_queued_runs_are_not_submitted_twice_and_dead_ones_are_resubmitted(fake_slurm, tmp_path):
    env, state = fake_slurm
    submit(env, tmp_path)
    # every task of both arrays still queued: nothing new
    (state / "running").write_text("".join(f"1000_{i}\n" for i in range(2)) + "".join(f"1001_{i}\n" for i in range(4)))
    out = submit(env, tmp_path)
    assert len(list(state.glob("script_*.sh"))) == 2
    assert "0 to submit" in out and "4 already queued" in out
    # one pretraining task died (not in squeue any more): it and everything not queued is submitted again
    (state / "running").write_text("1000_0\n" + "".join(f"1001_{i}\n" for i in range(2)))
    out = submit(env, tmp_path)
    scripts = sorted(state.glob("script_*.sh"))
    assert len(scripts) == 4
    assert "#SBATCH --array" not in scripts[2].read_text()  # one task: submitit submits a plain job
    # the resubmitted continual-learning runs wait for the pretraining still queued and the new one
    assert "#SBATCH --dependency=afterok:1000:1002" in scripts[3].read_text()


def test_dry_run_submits_nothing(fake_slurm, tmp_path):
    env, state = fake_slurm
    out = submit(env, tmp_path, "--dry-run")
    assert not list(state.glob("script_*.sh"))
    assert out.count("would submit:") == 2 + 4


def test_gpu_runs_ask_for_a_gpu_and_pack_runs(fake_slurm, tmp_path):
    env, state = fake_slurm
    submit(env, tmp_path, "--device", "cuda", "--runs-per-job", "2")
    cl = sorted(state.glob("script_*.sh"))[1].read_text()
    assert "#SBATCH --gpus-per-task=1" in cl and "#SBATCH --array=0-1%2" in cl  # 4 runs, 2 per task
    assert "#SBATCH --cpus-per-task=2" in cl


def test_missing_submitit_is_one_clear_line(tmp_path):
    hide = tmp_path / "hide"
    (hide / "submitit").mkdir(parents=True)
    (hide / "submitit" / "__init__.py").write_text("raise ImportError('No module named submitit')\n")
    env = dict(os.environ, PYTHONPATH=str(hide))
    r = subprocess.run(SWEEP + ["--out-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: --launcher slurm needs submitit: pip install -e .[slurm] "
                                "(or pip install submitit)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from sccl.data.merge import ensure_merged
    from sccl.data.offline import generate_dataset

    root = tmp_path_factory.mktemp("launch")
    generate_dataset(root / "data", size="tiny", seed=0)
    ensure_merged(root / "data", quiet=True)
    return root


LOCAL = [sys.executable, "-m", "sccl.cli.cl_sweep", "--scenario", "sample_incremental", "--speakers", "3",
         "--strategies", "naive,latent_replay", "--depths", "1,2", "--latent-batches", "1", "--epochs", "1",
         "--batch-size", "16", "--pretrain-epochs", "1"]


def test_submitit_local_executor_end_to_end(tiny, tmp_path):
    argv = LOCAL + ["--data-dir", str(tiny / "data"), "--out-dir", str(tmp_path), "--launcher", "slurm",
                    "--slurm-executor", "local"]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    finished = sorted(p.parent.name for p in (tmp_path / "sample_incremental").glob("*/summary.json"))
    assert len(finished) == 3 and sum(name.startswith("latent_replay-") for name in finished) == 2
    again = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0 and re.search(r"sample_incremental: 3 runs, 3 done, 0 already queued, 0 to submit",
                                               again.stdout), again.stdout


def test_two_jobs_at_once_give_the_same_csvs_as_one_at_a_time(tiny, tmp_path):
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        r = subprocess.run(LOCAL + ["--data-dir", str(tiny / "data"), "--out-dir", str(out), "--jobs", jobs,
                                    "--device", "cpu"], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        outs.append(out)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    a, b = (strip(read_csv(o / "sample_incremental" / "all_runs.csv")) for o in outs)
    assert len(a) == 3 * 2 and a == b
    # the sweep ran them in persistent workers; the same command as a process of its own gives the same rows
    (run,) = (outs[0] / "sample_incremental").glob("latent_replay-speaker3-d2-*")
    alone = tmp_path / "alone"
    r = subprocess.run([sys.executable, "-m", "sccl.cli.continual", "--scenario", "sample_incremental", "--strategy",
                        "latent_replay", "--speaker", "3", "--latent-depth", "2", "--latent-batches", "1",
                        "--epochs", "1", "--batch-size", "16",
                        "--data-dir", str(tiny / "data"), "--out-dir", str(alone), "--quiet",
                        "--pretrained", str(outs[0] / "pretrain/paper/speaker3_seed0")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    (again,) = (alone / "sample_incremental").glob("latent_replay-*")
    numbers = lambda rows: [{k: r[k] for k in ("loss", "old_acc", "new_acc", "all_acc")} for r in rows]  # noqa: E731
    assert numbers(read_csv(again / "epochs.csv")) == numbers(read_csv(run / "epochs.csv"))


def test_gpu_benchmark_says_clearly_when_there_is_no_gpu():
    import torch

    if torch.cuda.is_available():  # on a GPU machine the benchmark itself is the check
        r = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--batch-sizes", "64", "--packed", "1",
                            "--steps", "3"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "layer3_spikes_identical True" in r.stdout
        return
    r = subprocess.run([sys.executable, "benchmarks/bench_gpu.py"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: no CUDA device: this benchmark needs a GPU (the CPU benchmark is "
                                "benchmarks/bench_model.py)")
