"""A sweep checks every --set value and pairing before it launches anything; a run failing on bad input (exit
status 2) is not retried, a crash is; the summary names the reasons; a model with non-finite weights is refused."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sccl.cli import cl_sweep
from sccl.cli.continual import main_any
from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError
from sccl.jobs.sweep import Job, failure_summary, run_jobs
from sccl.learn.pretraining import PretrainConfig, load_pretrained, pretrain


ROOT = Path(__file__).resolve().parents[1]


def sweep_argv(data_dir, out_dir, *extra):
    return ["--scenario", "class_incremental", "--classes", "7", "--depths", "2", "--latent-batches", "1",
            "--epochs", "1", "--batch-size", "8", "--data-dir", str(data_dir), "--out-dir", str(out_dir), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--strategies", "ewc", "--set", "ewc.ewc-lambda=-1"],
     "--set ewc.ewc-lambda=-1: --ewc-lambda must be a number >= 0, got -1.0"),
    (["--strategies", "ewc", "--set", "ewc.ewc-lambda=nan"],
     "--set ewc.ewc-lambda=nan: --ewc-lambda must be a number >= 0, got nan"),
    (["--strategies", "ewc", "--set", "ewc.ewc-lambda=inf"],
     "--set ewc.ewc-lambda=inf: --ewc-lambda must be a number >= 0, got inf"),
    (["--strategies", "ewc,si", "--set", "ewc.ewc-lambda=1,-2", "--set", "si.si-c=3"],  # one bad value of several
     "--set ewc.ewc-lambda=-2: --ewc-lambda must be a number >= 0, got -2.0"),
    (["--strategies", "si", "--set", "si.si-c=-0.5"], "--set si.si-c=-0.5: --si-c must be a number >= 0, got -0.5"),
    (["--strategies", "projection", "--set", "projection.energy=1.5"],
     "--set projection.energy=1.5: --energy must be in (0, 1], got 1.5"),
    (["--strategies", "lwf", "--set", "lwf.lwf-temperature=0"],
     "--set lwf.lwf-temperature=0: --lwf-temperature must be a number > 0, got 0.0"),
    (["--strategies", "lwf", "--set", "lwf.lwf-warmup-epochs=-1"],
     "--set lwf.lwf-warmup-epochs=-1: --lwf-warmup-epochs must be an integer >= 0, got -1"),
    (["--strategies", "ewc", "--set", "ewc.ewc-lambda=abc"], "--set ewc.ewc-lambda=abc: --ewc-lambda takes a number, "
                                                              "got 'abc'"),
    (["--strategies", "lwf", "--set", "lwf.lwf-loss=l1"], "--set lwf.lwf-loss=l1: --lwf-loss takes one of mse, kl, "
                                                           "got 'l1'"),
    (["--strategies", "latent_replay", "--set", "latent_replay.float16=1"],
     "--set latent_replay.float16=1: --float16 is an on/off switch without a value; --set cannot sweep it"),
    (["--strategies", "naive", "--set", "ewc.ewc-lambda=1"],
     "--set ewc.ewc-lambda=1: ewc is not among the sweep's strategies (naive), so no run would use it"),
    (["--strategies", "latent_replay", "--set", "ewc.ewc-lambda=1"],
     "--set ewc.ewc-lambda=1: ewc is not among the sweep's strategies (latent_replay), so no run would use it; for "
     "the ewc that latent_replay hosts, use --set latent_replay.ewc-lambda=1 with --set latent_replay.regularizer=ewc"),
    (["--strategies", "latent_replay", "--set", "latent_replay.ewc-lambda=1"],  # hosted, but never asked for
     "--set latent_replay.ewc-lambda=1: no latent_replay run of this sweep uses --ewc-lambda (a flag of ewc, used "
     "only with --set latent_replay.regularizer=ewc)"),
    (["--strategies", "latent_replay", "--set", "latent_replay.regularizer=none,lwf", "--set",
      "latent_replay.importance-norm=none"],
     "--set latent_replay.importance-norm=none: no latent_replay run of this sweep uses --importance-norm (a flag of "
     "ewc or si, used only with --set latent_replay.regularizer=ewc or si)"),
    (["--strategies", "latent_replay", "--set", "latent_replay.regularizer=ewc", "--set",
      "latent_replay.ewc-lambda=-3"],  # a hosted strategy's own rule
     "--set latent_replay.ewc-lambda=-3: --ewc-lambda must be a number >= 0, got -3.0"),
    (["--strategies", "naive", "--lr", "nan"], "--lr must be a positive number, got nan"),  # not a --set: plain
])
def test_a_bad_sweep_is_one_line_exit_2_and_nothing_launched_or_written(embedded_tiny, tmp_path, capsys, extra,
                                                                         message):
    out = tmp_path / "runs"
    assert run_cli(cl_sweep.main, sweep_argv(embedded_tiny.path.parent, out, *extra)) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""  # no stage started: nothing listed, nothing run
    assert not out.exists()


def test_a_good_sweep_passes_the_checks_and_its_sets_reach_their_runs(embedded_tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = sweep_argv(embedded_tiny.path.parent, out, "--strategies", "ewc,latent_replay", "--dry-run",
                      "--set", "ewc.ewc-lambda=0,10", "--set", "latent_replay.regularizer=none,ewc",
                      "--set", "latent_replay.ewc-lambda=2")
    assert run_cli(cl_sweep.main, argv) == 0
    planned = [line for line in capsys.readouterr().out.splitlines()
               if "would run:" in line and "sccl.cli.continual" in line]
    lambdas = sorted(line.split("--ewc-lambda ")[1].split()[0] for line in planned)
    assert lambdas == ["0", "10", "2", "2"]  # ewc at 0 and 10; latent replay (none and ewc) with the hosted value
    assert not out.exists()


def test_a_bad_value_from_the_command_line_prints_no_other_parser_s_usage(embedded_tiny, tmp_path):
    out = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "sccl.cli.cl_sweep", *sweep_argv(embedded_tiny.path.parent, out,
                                                                         "--strategies", "ewc", "--set",
                                                                         "ewc.ewc-lambda=abc")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2
    assert r.stderr == "error: --set ewc.ewc-lambda=abc: --ewc-lambda takes a number, got 'abc'\n"
    assert r.stdout == "" and not out.exists()


# ---------------------------------------------------------------------------------------------- retries and summary


def counted(tmp_path, name: str, script: str) -> tuple[list[str], Path]:
    """A shell command that records each attempt in a file, then runs ``script``."""
    count = tmp_path / f"{name}.attempts"
    return ["sh", "-c", f'echo attempt >> "{count}"; {script}'], count


def attempts(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_bad_input_is_attempted_once_and_a_crash_is_retried(tmp_path, capsys):
    bad, bad_count = counted(tmp_path, "bad", "echo 'error: --x must be > 0, got -1' >&2; exit 2")
    done = tmp_path / "flaky.done"  # exits 1 on its first attempt, then succeeds
    flaky, flaky_count = counted(tmp_path, "flaky", f'[ $(wc -l < "{tmp_path}/flaky.attempts") -ge 2 ] || '
                                                    f'{{ echo boom >&2; exit 1; }}; touch "{done}"')
    crash, crash_count = counted(tmp_path, "crash", "echo 'Segfault-like crash' >&2; exit 1")
    jobs = [Job("bad", bad, lambda: False), Job("flaky", flaky, done.exists), Job("crash", crash, lambda: False)]
    assert run_jobs(jobs, retries=3) == 2
    assert (attempts(bad_count), attempts(flaky_count), attempts(crash_count)) == (1, 2, 4)
    assert [j.status for j in jobs] == ["failed", "done", "failed"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("2 run(s) failed: 1 x --x must be > 0, got -1; 1 x Segfault-like crash (exit status 1); run the "
                       "same command again to retry the 1 that may have failed transiently")


def test_a_python_run_refused_with_exit_2_in_a_worker_is_not_retried(tmp_path, capsys):
    count = tmp_path / "attempts"
    script = tmp_path / "refuses.py"
    script.write_text("import sys\nfrom sccl.core.entry import run_cli\nfrom sccl.core.errors import ConfigError\n\n\n"
                      "def main(argv=None):\n"
                      f"    with open({str(count)!r}, 'a') as fh:\n        fh.write('attempt\\n')\n"
                      "    raise ConfigError('--energy must be in (0, 1], got 1.5')\n\n\n"
                      "sys.exit(run_cli(main))\n")
    jobs = [Job(f"run {i}", [sys.executable, str(script)], lambda: False) for i in range(2)]
    assert run_jobs(jobs, retries=2) == 2
    assert attempts(count) == 2  # each of the two runs once
    assert capsys.readouterr().err.strip().splitlines()[-1] == "2 run(s) failed: --energy must be in (0, 1], got 1.5"


def test_the_summary_groups_reasons_and_suggests_a_rerun_only_for_crashes():
    def failed(reason, deterministic):
        return Job("j", [], lambda: False, status="failed", reason=reason, deterministic=deterministic)

    assert failure_summary([Job("ok", [], lambda: True, status="done")]) is None
    assert failure_summary([failed("bad", True)] * 3) == "3 run(s) failed: bad"
    assert failure_summary([failed("killed (exit status -9)", False)] * 2) == (
        "2 run(s) failed: killed (exit status -9); run the same command again to retry them")


# ---------------------------------------------------------------------------------------------- non-finite models


@pytest.fixture(scope="module")
def pretrained(embedded_tiny, tmp_path_factory):
    runs = tmp_path_factory.mktemp("sweep_validation") / "runs"
    pretrain(PretrainConfig("sample_incremental", 3, epochs=1, batch_size=16, quiet=True), embedded_tiny, runs)
    return runs / "pretrain" / "paper" / "speaker3_seed0"


@pytest.mark.parametrize("name, value", [("w1", float("nan")), ("w_out", float("inf"))])
def test_a_model_with_non_finite_weights_is_refused_in_one_line(embedded_tiny, pretrained, tmp_path, capsys, name,
                                                                 value):
    load_pretrained(pretrained)  # the model as pretrained loads
    damaged = tmp_path / "damaged"
    shutil.copytree(pretrained, damaged)
    state = torch.load(damaged / "model.pt", weights_only=True)
    state[name].view(-1)[0] = value
    torch.save(state, damaged / "model.pt")
    expected = (f"{damaged / 'model.pt'}: parameter {name} is not finite (1 of {state[name].numel()} values NaN or "
                "infinite); delete its folder and pretrain again")
    with pytest.raises(ConfigError) as exc:
        load_pretrained(damaged)
    assert str(exc.value) == expected
    out = tmp_path / "out"
    argv = ["--scenario", "sample_incremental", "--strategy", "naive", "--speaker", "3", "--epochs", "1",
            "--batch-size", "16", "--data-dir", str(embedded_tiny.path.parent), "--pretrained", str(damaged),
            "--out-dir", str(out), "--quiet"]
    assert run_cli(main_any, argv) == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not list(out.glob("sample_incremental/naive-*"))  # no run folder: nothing "finished"
