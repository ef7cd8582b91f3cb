"""A hostile or careless user (issue #11), one class of failure at a time: bad flags, full disks, damaged files,
SIGKILL at chosen points, read-only folders, two processes on one folder, and the promises around them (dropped
spikes counted, extra keys merged, half-generated data regenerated).

Every failure must be: exit status 2, one line ``error: ...`` naming the file or flag and what to do, no traceback,
no partial or temporary file left; and the rerun recovers (with the same result as an uninterrupted run).
Cases other test files already cover are not repeated here: the section "What happens when things go
wrong" of docs/USAGE.md lists every guarantee with its test.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.io import wavfile

import sccl.audio.convert as audio
import sccl.cli.pretrain as pretrain_cli
import sccl.core.disk
import sccl.data.offline as offline
from sccl.audio.cochlea import cochlea
from sccl.core.entry import run_cli
from sccl.core.results import read_csv, read_json, torch_save
from sccl.data.hdf5 import bin_spikes, cache_path_for, load_binned, load_shd, write_shd
from sccl.data.merge import MERGED_FILE, TEST_FILE, TRAIN_FILE, ensure_merged, merge_files
from sccl.learn.pretraining import PretrainConfig, pretrain
from sccl.learn.training import load_dataset
from tests.conftest import random_shd
from tests.test_audio_converter import FS, convert, corpus, nothing_written, one_error_line, tone, write


ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = str(ROOT / "statedicts" / "pretrain.py")
MERGE = str(ROOT / "heidelberg_unite_datasets.py")

# Runs a script (or ``-m module``) after arranging a failure: SIGKILL at the N-th os.replace onto a file name,
# a file-size limit (writes fail with EFBIG, as on a full disk), no free-space check, fake cheap samples.
DRIVER = r'''
import os, runpy, signal, sys
kill_name, nth = sys.argv[1], int(sys.argv[2])
if os.environ.get("HOSTILE_FSIZE"):
    import resource
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(os.environ["HOSTILE_FSIZE"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if os.environ.get("HOSTILE_NO_FREE_CHECK"):
    import sccl.core.disk
    sccl.core.disk.free_bytes = lambda folder: None
if os.environ.get("HOSTILE_FAKE_SAMPLES"):
    import numpy as np, sccl.data.offline_speech
    sccl.data.offline_speech.make_sample = lambda s, w, r, seed=0: (np.array([0.1, 0.2 + 0.01 * r]), np.array([s, w]))
real_replace, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    if os.path.basename(str(dst)) == kill_name:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)
os.replace = replace
if sys.argv[3] == "-m":
    sys.argv = [sys.argv[4]] + sys.argv[5:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[3:]
    runpy.run_path(sys.argv[0], run_name="__main__")
'''


def hostile(*args, kill: str = "-", nth: int = 1, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, kill, str(nth), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)


def one_line_error(stderr: str, *fragments: str) -> str:
    """The single ``error:`` line (warnings and progress bars aside), checked for each fragment and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def temps(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if ".tmp" in p.name]


def weights(folder: Path) -> dict:
    return torch.load(folder / "model.pt", weights_only=True)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def pretrain_argv(data: Path, out: Path, *extra) -> list[str]:
    return ["--speaker", "3", "--epochs", "2", "--batch-size", "16", "--data-dir", str(data), "--out-dir", str(out),
            "--quiet", *map(str, extra)]


def run_folder(out: Path) -> Path:
    return out / "pretrain" / "paper" / "speaker3_seed0"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny embedded dataset, merged and binned, and a finished 2-epoch pretraining (speaker 3 held out)."""
    root = tmp_path_factory.mktemp("hostile")
    offline.generate_dataset(root / "data", size="tiny", seed=0)
    ds = load_dataset(ensure_merged(root / "data", quiet=True))
    pre = pretrain(PretrainConfig("sample_incremental", 3, epochs=2, batch_size=16, quiet=True), ds, root / "runs")
    return ds, root, pre


def copy_data(world, dst: Path, names=(TRAIN_FILE, TEST_FILE)) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(world[1] / "data" / name, dst / name)
    return dst


# ----------------------------------------------------------------------------------------------------------------
# 1. bad numeric flags (--lr inf / --batch-size 0 / --seed -5 in pretraining: tests/test_engine.py)


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "--lr must be a positive number, got nan"),
    ("--lr", "-1", "--lr must be a positive number, got -1.0"),
    ("--epochs", "0", "--epochs must be >= 1, got 0"),
    ("--threads", "0", "--threads must be at least 1, got 0"),
    ("--seed", str(2**70), f"--seed must be between 0 and {2**31 - 1}, got {2**70}"),
])
def test_bad_pretraining_flags_write_nothing(world, tmp_path, capsys, flag, value, message):
    out = tmp_path / "out"
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out, flag, value)) == 2
    assert one_line_error(capsys.readouterr().err) == f"error: {message}"
    assert not out.exists()
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out)) == 0  # the corrected command runs


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--reps", "0"], "reps must be a positive integer, got 0"),
    (["--seed", "-1"], "seed must be a non-negative integer, got -1"),
])
def test_bad_generator_flags_write_nothing(tmp_path, capsys, argv, message):
    assert run_cli(offline.main, ["--out-dir", str(tmp_path / "d"), "--size", "tiny", *argv]) == 2
    assert one_line_error(capsys.readouterr().err) == f"error: {message}"
    assert not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------------------------------------------
# 2. full disks: the free-space check first, then a write that fails anyway


def _little_space(monkeypatch, free: int):
    real = shutil.disk_usage
    monkeypatch.setattr(sccl.core.disk.shutil, "disk_usage", lambda p: real(p)._replace(free=free))


def test_too_little_space_for_the_merge_is_one_line_before_writing(world, tmp_path, capsys, monkeypatch):
    data = copy_data(world, tmp_path / "data")
    _little_space(monkeypatch, 1_000_000)
    assert run_cli(merge_main(), ["--data-dir", str(data)]) == 2
    line = one_line_error(capsys.readouterr().err, f"not enough free space in {data} for the merged file",
                          "needs", "(1000000 bytes) free", "free some space or choose another folder")
    needed = int(line.split("needs ")[1].split("(")[1].split(" bytes")[0])
    assert 1.0 <= needed / (world[1] / "data" / MERGED_FILE).stat().st_size <= 1.05  # the size, within 5 %
    assert sorted(p.name for p in data.iterdir()) == [TEST_FILE, TRAIN_FILE]
    monkeypatch.undo()
    assert run_cli(merge_main(), ["--data-dir", str(data)]) == 0  # room again: the rerun merges
    assert (data / MERGED_FILE).read_bytes() == (world[1] / "data" / MERGED_FILE).read_bytes()


def test_too_little_space_for_the_generator_is_one_line_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(offline, "make_sample", lambda s, w, r, seed=0: (np.array([0.1, 0.2]), np.array([s, w])))
    _little_space(monkeypatch, 50_000)
    assert run_cli(offline.main, ["--out-dir", str(tmp_path / "d"), "--size", "tiny"]) == 2
    line = one_line_error(capsys.readouterr().err, f"not enough free space in {tmp_path / 'd'} for the tiny dataset")
    assert "(50000 bytes) free" in line
    assert list((tmp_path / "d").iterdir()) == []


def test_too_little_space_for_a_checkpoint_is_one_line_and_the_rerun_resumes(world, tmp_path, capsys, monkeypatch):
    _little_space(monkeypatch, 100_000)  # room for config.json and split.npz, not for the 2.6 MB checkpoint
    out = tmp_path / "out"
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out)) == 2
    one_line_error(capsys.readouterr().err, f"not enough free space in {run_folder(out)} for checkpoint.pt")
    assert not (run_folder(out) / "checkpoint.pt").exists() and not temps(out)
    monkeypatch.undo()
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out)) == 0
    assert same_weights(run_folder(out), world[2])


def test_too_little_space_during_continual_learning_is_one_line_and_the_rerun_finishes(world, tmp_path, capsys,
                                                                                       monkeypatch):
    from sccl.cli.continual import main_any

    out = tmp_path / "out"
    argv = ["--scenario", "sample_incremental", "--strategy", "naive", "--speaker", "3", "--epochs", "1",
            "--batch-size", "16", "--data-dir", str(world[0].path.parent), "--pretrained", str(world[2]),
            "--out-dir", str(out), "--quiet"]
    _little_space(monkeypatch, 200)
    assert run_cli(main_any, argv) == 2
    one_line_error(capsys.readouterr().err, f"not enough free space in {out / 'sample_incremental'}",
                   "free some space or choose another folder")
    assert not temps(out) and not list(out.rglob("summary.json"))
    monkeypatch.undo()
    assert run_cli(main_any, argv) == 0
    assert len(list(out.rglob("summary.json"))) == 1 and not temps(out)


def test_too_little_space_for_the_bins_cache_keeps_the_bins_in_memory(world, tmp_path, capsys, monkeypatch):
    path = Path(shutil.copy2(world[0].path, tmp_path / MERGED_FILE))
    _little_space(monkeypatch, 1000)
    binned = load_binned(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: could not write the bins cache {tmp_path}")
    assert "not enough free space" in err[0] and "keeping the binned data in memory" in err[0]
    np.testing.assert_array_equal(binned.units, world[0].binned.units)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MERGED_FILE]


def merge_main():
    spec = importlib.util.spec_from_file_location("unite", MERGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("what", ["merge", "generator", "pretraining"])
def test_a_write_that_fails_anyway_is_one_line_and_leaves_no_temporary_file(world, tmp_path, what):
    """The file system refuses the write itself (a file-size limit: EFBIG, as ENOSPC on a full disk). HDF5 used to
    segfault here (exit 139) and leave its temporary file."""
    if what == "merge":
        folder = copy_data(world, tmp_path / "data")
        cmd, limit, env = [MERGE, "--data-dir", folder], 1_000_000, {}
        target = folder / MERGED_FILE
    elif what == "generator":
        folder = tmp_path / "d"
        cmd, limit, env = ["-m", "sccl.data.offline", "--out-dir", folder, "--size", "tiny"], 3000, {"HOSTILE_FAKE_SAMPLES": "1"}
        target = folder / TRAIN_FILE
    else:
        folder = run_folder(tmp_path / "out")
        cmd, limit, env = [PRETRAIN, *pretrain_argv(world[0].path.parent, tmp_path / "out")], 100_000, {}
        target = folder / "checkpoint.pt"
    before = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    r = hostile(*cmd, env={"HOSTILE_FSIZE": str(limit), **env})
    assert r.returncode == 2, r.stderr[-2000:]
    one_line_error(r.stderr, f"could not write {target}: File too large")
    assert not temps(tmp_path) and not target.exists()
    if what != "pretraining":
        assert sorted(p.name for p in folder.iterdir()) == before  # nothing new
    r = hostile(*cmd, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not temps(tmp_path)
    if what == "pretraining":
        assert same_weights(folder, world[2])


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 3 MB file system (tmpfs); skipped where mounting is not allowed."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if not shutil.which("mount") or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                                                   capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root or no mount permission); the fake-writer tests cover it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_disk(world, small_tmpfs):
    """On a real 3 MB file system: the merge (8 MB) is refused by the free-space check; without the check, the
    write fails with ENOSPC, in one line, and leaves nothing."""
    data = copy_data(world, small_tmpfs, names=(TEST_FILE,))  # 2 MB
    os.symlink(world[1] / "data" / TRAIN_FILE, data / TRAIN_FILE)
    r = hostile(MERGE, "--data-dir", data)
    assert r.returncode == 2
    one_line_error(r.stderr, f"not enough free space in {data} for the merged file shd_merged.h5")
    r = hostile(MERGE, "--data-dir", data, env={"HOSTILE_NO_FREE_CHECK": "1"})
    assert r.returncode == 2, r.stderr
    one_line_error(r.stderr, f"could not write {data / MERGED_FILE}: No space left on device", "free some space")
    assert sorted(p.name for p in data.iterdir()) == [TEST_FILE, TRAIN_FILE]


def test_an_oserror_no_writer_caught_is_still_one_line(capsys):
    def full(argv):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/some/run/log.txt")

    assert run_cli(full) == 2
    assert one_line_error(capsys.readouterr().err) == (
        "error: /some/run/log.txt: No space left on device; free some space (or choose another folder) and rerun the "
        "same command")


# ----------------------------------------------------------------------------------------------------------------
# 3. damaged files (a hostile pickle, a truncated model.pt, config.json not JSON: tests/test_engine.py)


def _object_header(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        info = h5py.h5o.get_info(f[name].id)
    if not hasattr(info, "addr"):
        pytest.skip("this HDF5 version does not report object header addresses")
    return info.addr


@pytest.mark.parametrize("name", ["spikes", "spikes/times", "labels", "extra/speaker", "extra/keys"])
@pytest.mark.parametrize("garbage", [b"\xff" * 8, b"\x00\x07" * 12])
def test_damaged_hdf5_object_headers_are_one_line(world, tmp_path, capsys, name, garbage):
    data = copy_data(world, tmp_path)
    with open(data / TRAIN_FILE, "r+b") as fh:
        fh.seek(_object_header(data / TRAIN_FILE, name))
        fh.write(garbage)
    assert run_cli(merge_main(), ["--data-dir", str(data)]) == 2
    one_line_error(capsys.readouterr().err, f"error: {data / TRAIN_FILE}: damaged HDF5 file", "replace it")
    assert sorted(p.name for p in data.iterdir()) == [TEST_FILE, TRAIN_FILE]


def test_damaged_hdf5_header_in_a_subprocess_never_crashes(world, tmp_path):
    data = copy_data(world, tmp_path)
    with open(data / TEST_FILE, "r+b") as fh:
        fh.seek(_object_header(data / TEST_FILE, "spikes/units"))
        fh.write(b"\xff" * 8)
    r = hostile(PRETRAIN, *pretrain_argv(data, tmp_path / "out"))
    assert r.returncode == 2
    one_line_error(r.stderr, f"{data / TEST_FILE}: damaged HDF5 file")


def _cache_damage(cache: Path, how: str) -> None:
    if how == "truncated":
        cache.write_bytes(cache.read_bytes()[:200])
    elif how == "not a zip":
        cache.write_bytes(b"garbage" * 100)
    else:
        with np.load(cache) as z:
            arrays = dict(z)
        if how == "missing key":
            del arrays["counts"]
        elif how == "wrong shapes":
            arrays["units"] = arrays["units"][:-3]
        elif how == "wrong dtype":
            arrays["steps"] = arrays["steps"].astype(np.float32)
        elif how == "out of range":
            arrays["units"][0] = 900
        with open(cache, "wb") as fh:
            np.savez(fh, **arrays)


@pytest.mark.parametrize("how", ["truncated", "not a zip", "missing key", "wrong shapes", "wrong dtype",
                                 "out of range"])
def test_a_damaged_bins_cache_is_rebuilt_with_one_warning(world, tmp_path, capsys, how):
    path = shutil.copy2(world[0].path, tmp_path / MERGED_FILE)
    fresh = load_binned(path)
    cache = cache_path_for(Path(path), 100, 1.4)
    _cache_damage(cache, how)
    capsys.readouterr()
    again = load_binned(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {cache}: damaged bins cache") and "rebuilding" in err[0]
    for key in ("offsets", "steps", "units", "counts"):
        np.testing.assert_array_equal(getattr(again, key), getattr(fresh, key))
    load_binned(path)  # the rebuilt cache is whole: no second warning
    assert capsys.readouterr().err == "" and not temps(tmp_path)


def _damage_run(folder: Path, what: str) -> tuple[Path, str]:
    if what == "split.npz truncated":
        (folder / "split.npz").write_bytes((folder / "split.npz").read_bytes()[:100])
        return folder / "split.npz", "damaged or not a split file"
    if what == "split.npz not a zip":
        (folder / "split.npz").write_bytes(b"\x93NUMPY garbage")
        return folder / "split.npz", "damaged or not a split file"
    if what == "split.npz without meta":
        with np.load(folder / "split.npz") as z:
            arrays = {k: z[k] for k in z.files if k != "_meta"}
        with open(folder / "split.npz", "wb") as fh:
            np.savez(fh, **arrays)
        return folder / "split.npz", "damaged or not a split file"
    if what == "config.json without settings":
        (folder / "config.json").write_text('{"data": {}}')
        return folder / "config.json", "not a pretraining config"
    if what == "model.pt wrong shapes":
        state = weights(folder)
        state[next(iter(state))] = torch.zeros(3, 3)
        torch_save(folder / "model.pt", state)
        return folder / "model.pt", "not the weights of this model"
    if what == "model.pt a bare tensor":
        torch_save(folder / "model.pt", torch.zeros(3))
        return folder / "model.pt", "not the weights of this model"
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["split.npz truncated", "split.npz not a zip", "split.npz without meta",
                                  "config.json without settings", "model.pt wrong shapes", "model.pt a bare tensor"])
def test_a_damaged_pretraining_folder_is_one_line_for_continual_learning(world, tmp_path, capsys, what):
    from sccl.cli.continual import main_any

    pre = Path(shutil.copytree(world[2], tmp_path / "pre"))
    path, message = _damage_run(pre, what)
    argv = ["--scenario", "sample_incremental", "--strategy", "naive", "--speaker", "3", "--epochs", "1",
            "--batch-size", "16", "--data-dir", str(world[0].path.parent), "--pretrained", str(pre),
            "--out-dir", str(tmp_path / "out"), "--quiet"]
    assert run_cli(main_any, argv) == 2
    one_line_error(capsys.readouterr().err, f"error: {path}: {message}")


@pytest.mark.parametrize("damage, message", [
    ("truncated", "damaged or not a weights file"),
    ("missing entries", "not a pretraining checkpoint (missing entries)"),
    ("wrong shapes", "not a checkpoint of this model"),
    ("config without settings", "not a pretraining config"),
])
def test_a_damaged_checkpoint_or_config_stops_the_resume_in_one_line(world, tmp_path, capsys, damage, message):
    out = tmp_path / "out"
    folder = run_folder(out)
    shutil.copytree(world[2], folder)
    (folder / "model.pt").unlink()  # an interrupted run: resumes from checkpoint.pt
    path = folder / ("config.json" if damage.startswith("config") else "checkpoint.pt")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "missing entries":
        torch_save(path, {"model": weights(world[2])})
    elif damage == "wrong shapes":
        ckpt = torch.load(path, weights_only=True)
        ckpt["model"] = {k: torch.zeros(2) for k in ckpt["model"]}
        torch_save(path, ckpt)
    else:
        path.write_text('{"settings": 3}')
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out, "--epochs", 3)) == 2
    one_line_error(capsys.readouterr().err, f"error: {path}: {message}", "--force")
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out, "--force")) == 0  # the way out
    assert same_weights(folder, world[2])


# ----------------------------------------------------------------------------------------------------------------
# 4. SIGKILL at chosen points, then the rerun equals an uninterrupted run


def test_sigkill_while_pretraining_resumes_to_the_same_weights_and_no_temporary_file(world, tmp_path):
    ref = pretrain(PretrainConfig("sample_incremental", 3, epochs=3, batch_size=16, quiet=True), world[0],
                   tmp_path / "ref")
    out = tmp_path / "out"
    r = hostile(PRETRAIN, *pretrain_argv(world[0].path.parent, out, "--epochs", 3), kill="checkpoint.pt", nth=2)
    assert r.returncode == -signal.SIGKILL
    assert [p.name.startswith("checkpoint.pt.tmp") for p in temps(out)] == [True]  # the killed write's, left ...
    assert run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, out, "--epochs", 3)) == 0
    assert not temps(out)  # ... and removed by the rerun, which resumed after epoch 1
    assert "resuming after epoch 1" in (run_folder(out) / "log.txt").read_text()
    assert same_weights(run_folder(out), ref)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(run_folder(out) / "epochs.csv")) == strip(read_csv(ref / "epochs.csv"))


def test_sigkill_while_merging_then_the_rerun_gives_the_same_file(world, tmp_path):
    data = copy_data(world, tmp_path)
    r = hostile(MERGE, "--data-dir", data, kill=MERGED_FILE)
    assert r.returncode == -signal.SIGKILL and not (data / MERGED_FILE).exists() and len(temps(data)) == 1
    r = hostile(MERGE, "--data-dir", data)
    assert r.returncode == 0, r.stderr
    assert not temps(data)
    assert (data / MERGED_FILE).read_bytes() == (world[1] / "data" / MERGED_FILE).read_bytes()


def test_sigkill_while_writing_the_bins_cache_then_the_rerun_writes_it(world, tmp_path):
    path = Path(shutil.copy2(world[0].path, tmp_path / MERGED_FILE))
    cache = cache_path_for(path, 100, 1.4)
    code = f"from sccl.data.hdf5 import load_binned; load_binned({str(path)!r})"
    script = tmp_path / "bin.py"
    script.write_text(code)
    r = hostile(script, kill=cache.name)
    assert r.returncode == -signal.SIGKILL and not cache.exists() and len(temps(tmp_path)) == 1
    again = load_binned(path)
    assert cache.is_file() and not temps(tmp_path)
    np.testing.assert_array_equal(again.units, world[0].binned.units)


@pytest.mark.parametrize("killed_at", [TEST_FILE, TRAIN_FILE])
def test_sigkill_while_generating_then_the_rerun_regenerates(tmp_path, monkeypatch, killed_at):
    """The test file is renamed into place first: killed then, nothing is in place; killed at the train file, the
    folder is half-generated. reproduce.py detects both and regenerates."""
    reproduce = _reproduce()
    folder = tmp_path / "d"
    r = hostile("-m", "sccl.data.offline", "--out-dir", folder, "--size", "tiny", kill=killed_at,
                env={"HOSTILE_FAKE_SAMPLES": "1"})
    assert r.returncode == -signal.SIGKILL and len(temps(folder)) == (2 if killed_at == TEST_FILE else 1)
    expected = "no dataset yet" if killed_at == TEST_FILE else "shd_train.h5 is missing"
    assert offline.dataset_problem(folder) == expected
    monkeypatch.setattr(offline, "make_sample", lambda s, w, r, seed=0: (np.array([0.1, 0.2 + 0.01 * r]),
                                                                          np.array([s, w])))
    reproduce.resolve_data(tmp_path / "no_shd", "tiny", 0, offline_dir=folder)
    offline.generate_dataset(tmp_path / "ref", size="tiny")
    assert not temps(tmp_path) and offline.dataset_problem(folder) is None
    for name in (TRAIN_FILE, TEST_FILE):
        assert (folder / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    assert len(load_shd(folder / MERGED_FILE)) == 240


def test_sigkill_between_a_finished_run_and_the_folder_tables_then_the_rerun_repairs_them(world, tmp_path):
    """Killed after the run's summary.json, while all_runs.csv is being rebuilt: the skip of the rerun rebuilds it."""
    argv = ["-m", "sccl.cli.continual", "--scenario", "sample_incremental", "--strategy", "naive", "--speaker", "3",
            "--epochs", "1", "--batch-size", "16", "--data-dir", world[0].path.parent, "--pretrained", world[2],
            "--quiet"]
    ref = hostile(*argv, "--out-dir", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    r = hostile(*argv, "--out-dir", out, kill="all_runs.csv")
    assert r.returncode == -signal.SIGKILL and len(list(out.rglob("summary.json"))) == 1
    assert not (out / "sample_incremental" / "all_runs.csv").exists() and len(temps(out)) == 1
    r = hostile(*argv, "--out-dir", out)
    assert r.returncode == 0, r.stderr
    strip = lambda rows: [{k: v for k, v in r.items() if "second" not in k} for r in rows]  # noqa: E731
    for name in ("all_runs.csv", "summary.csv"):
        assert strip(read_csv(out / "sample_incremental" / name)) == strip(
            read_csv(tmp_path / "ref" / "sample_incremental" / name))
    assert not temps(out)


# ----------------------------------------------------------------------------------------------------------------
# 5. read-only folders (an --out-dir under /proc or with a file in its place, for continual learning:
#    tests/test_engine.py)


@pytest.mark.parametrize("where", ["proc", "file"])
@pytest.mark.parametrize("tool", ["pretrain", "generator"])
def test_an_out_dir_that_cannot_be_written_is_one_line(world, tmp_path, capsys, where, tool):
    target = Path("/proc/sccl-cannot-write-here") if where == "proc" else tmp_path / "a_file"
    if where == "file":
        target.write_text("in the way")
    if tool == "pretrain":
        code = run_cli(pretrain_cli.main, pretrain_argv(world[0].path.parent, target))
        expected = f"error: cannot write into --out-dir {target}: "
    else:
        code = run_cli(offline.main, ["--out-dir", str(target), "--size", "tiny", "--reps", "1"])
        expected = f"error: cannot create output folder {target}"
    assert code == 2
    one_line_error(capsys.readouterr().err, expected)


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only even for root (chattr +i), or by permissions for other users; else skip."""
    made = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
        elif not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)],
                                                          capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr +i: a read-only folder cannot be made here")
        made.append(folder)
        return folder

    yield make
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)


def test_a_read_only_data_folder_keeps_the_bins_in_memory(world, tmp_path, capsys, read_only):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy2(world[0].path, data / MERGED_FILE)
    read_only(data)
    with pytest.raises(OSError):
        (data / "probe").write_text("x")
    ds = load_dataset(data / MERGED_FILE)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: could not write the bins cache {data}")
    assert "keeping the binned data in memory" in err[0]
    np.testing.assert_array_equal(ds.binned.units, world[0].binned.units)
    assert sorted(p.name for p in data.iterdir()) == [MERGED_FILE]
    out = tmp_path / "out"  # and pretraining from it works
    assert run_cli(pretrain_cli.main, pretrain_argv(data, out)) == 0
    assert same_weights(run_folder(out), world[2])


# ----------------------------------------------------------------------------------------------------------------
# 6. two processes on one folder (two sweeps on one results folder: tests/test_engine.py)


def test_two_pretrainings_of_one_model_train_it_once(world, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, PRETRAIN, *pretrain_argv(world[0].path.parent, out)]
    cmd.remove("--quiet")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    log = (run_folder(out) / "log.txt").read_text()
    assert log.count("pretraining speaker3") == 1 and log.count("done:") == 1
    assert sum("already finished" in o for o, _ in outputs) == 1
    assert same_weights(run_folder(out), world[2]) and not temps(out)


# ----------------------------------------------------------------------------------------------------------------
# 7. promises: dropped spikes counted, extra keys merged, a half-generated folder regenerated (reproduce.py)


def test_dropped_spikes_are_counted_in_the_log_the_config_and_the_output(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_shd(data / TRAIN_FILE, random_shd(240, seed=1, max_time=1.6))
    write_shd(data / TEST_FILE, random_shd(60, seed=2, max_time=1.6))
    merged = load_shd(ensure_merged(data, quiet=True))
    late = int(sum((t.astype(np.float64) >= 1.4).sum() for t in merged.times))
    assert late > 0 and bin_spikes(merged.times, merged.units).dropped == late
    out = tmp_path / "out"
    argv = pretrain_argv(data, out, "--epochs", 1)
    argv.remove("--quiet")
    assert run_cli(pretrain_cli.main, argv) == 0
    line = f"{late} spikes at or after max_time 1.4 s dropped"
    assert line in capsys.readouterr().out
    assert line in (run_folder(out) / "log.txt").read_text()
    assert read_json(run_folder(out) / "config.json")["data"]["dropped_spikes"] == late
    assert load_binned(data / MERGED_FILE).dropped == late  # kept in the cache


def test_merge_keeps_extra_keys_it_can_and_warns_once_per_key_it_cannot(shd_pair, tmp_path, capsys):
    train_p, test_p, train, test = shd_pair
    with h5py.File(train_p, "a") as a, h5py.File(test_p, "a") as b:
        a["extra/snr"], b["extra/snr"] = np.arange(240, dtype=np.float32), np.arange(60, dtype=np.float32)
        a["extra/note"] = b["extra/note"] = b"recorded in 2019"
        a["extra/setup"], b["extra/setup"] = b"room A", b"room B"
        b["extra/speaker_table"] = np.arange(12)
        a["extra/meta_info/dialect"] = np.arange(12)  # a lookup table in one file: copied
    out = merge_files(train_p, test_p, tmp_path / "merged" / MERGED_FILE)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: ignoring 'extra/setup': neither one entry per sample in every file nor the same value",
                   "warning: ignoring 'extra/speaker_table': only the test file has it"]
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["extra/snr"][()], np.r_[np.arange(240), np.arange(60)])
        assert f["extra/note"][()] == b"recorded in 2019"
        np.testing.assert_array_equal(f["extra/meta_info/dialect"][()], np.arange(12))
        assert "extra/setup" not in f and "extra/speaker_table" not in f
    assert len(load_shd(out)) == 300


def _reproduce():
    spec = importlib.util.spec_from_file_location("reproduce_under_test", ROOT / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("state", ["complete", "test file truncated", "merged file damaged", "force"])
def test_reproduce_regenerates_what_is_incomplete_and_force_regenerates_anyway(world, tmp_path, monkeypatch, capsys,
                                                                             state):
    reproduce = _reproduce()
    folder = copy_data(world, tmp_path / "offline", names=(TRAIN_FILE, TEST_FILE, MERGED_FILE))
    if state == "test file truncated":
        (folder / TEST_FILE).write_bytes((folder / TEST_FILE).read_bytes()[:5000])
        (folder / MERGED_FILE).unlink()
    elif state == "merged file damaged":
        (folder / MERGED_FILE).write_bytes(b"not hdf5")
    calls = []

    def fake_generate(out_dir, size, seed, force=False, **kw):  # the real one is tested above and in test_offline
        calls.append(force)
        assert force
        (Path(out_dir) / MERGED_FILE).unlink(missing_ok=True)
        copy_data(world, Path(out_dir))

    monkeypatch.setattr(reproduce, "generate_dataset", fake_generate)
    data_dir, synthetic = reproduce.resolve_data(tmp_path / "no_shd", "tiny", 0, offline_dir=folder,
                                                 force=state == "force")
    assert data_dir == folder and synthetic
    assert calls == ([] if state == "complete" else [True])
    if state != "complete":
        assert f"[data] generating {folder} (" in capsys.readouterr().out
    assert (folder / MERGED_FILE).read_bytes() == (world[1] / "data" / MERGED_FILE).read_bytes()
    with pytest.raises(SystemExit):
        reproduce.main(["--help"])
    assert "--force" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- issue 20, part 6


def write_ssc_parts(folder: Path, damage: str | None = None) -> Path:
    """SSC's three files (tiny random spikes), one of them removed or truncated."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, seed in (("train", 1), ("valid", 2), ("test", 3)):
        write_shd(folder / f"ssc_{part}.h5", random_shd(35, seed=seed, labels=np.arange(35), speakers=np.zeros(35)))
    if damage == "missing":
        (folder / "ssc_valid.h5").unlink()
    elif damage == "truncated":
        data = (folder / "ssc_test.h5").read_bytes()
        (folder / "ssc_test.h5").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("damage, argv, message", [
    ("missing", ["--dataset", "ssc"], "holds ssc_train.h5, ssc_test.h5 but not ssc_valid.h5: SSC needs all of"),
    ("missing", [], "holds ssc_train.h5, ssc_test.h5 but not ssc_valid.h5"),
    ("truncated", ["--dataset", "ssc"], "ssc_test.h5: not a readable HDF5 file"),
    ("truncated", [], "holds SSC's files, not SHD's: pass --dataset ssc"),
])
def test_an_ssc_merge_with_a_missing_or_truncated_file_is_one_line(tmp_path, damage, argv, message):
    folder = write_ssc_parts(tmp_path / "ssc", damage)
    before = sorted(p.name for p in folder.iterdir())
    r = subprocess.run([sys.executable, MERGE, "--data-dir", str(folder), *argv], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in folder.iterdir()) == before  # no merged, temporary or cache file


def test_a_corrupted_md5sums_file_is_one_line_and_downloads_nothing(tmp_path):
    import io

    from sccl.core.errors import DataError
    from sccl.data.download import ensure_shd_files

    asked = []

    def opener(url):
        asked.append(url.rsplit("/", 1)[-1])
        return io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\xff<html>not a checksum list</html>")

    with pytest.raises(DataError, match=r"shd_train\.h5\.gz is not listed in mirror://x/md5sums\.txt"):
        ensure_shd_files(tmp_path / "data", base_url="mirror://x/", opener=opener, progress=False)
    assert asked == ["md5sums.txt"]  # no archive is fetched that cannot be verified
    assert not any((tmp_path / "data").rglob("*"))


def test_reproduce_dry_run_writes_nothing(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("reproduce_dry", ROOT / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    user = copy_data_like_a_user(tmp_path / "user")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for data_dir in (tmp_path / "nothing", user):  # the embedded set to generate; a user's pair to merge
        reproduce.main(["--dry-run", "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "results"),
                        "--offline-dir", str(tmp_path / "offline"), "--stages", "pretrain,class_incremental"])
    out = capsys.readouterr().out
    assert f"would generate {tmp_path / 'offline'}" in out and f"would merge them into {user / MERGED_FILE}" in out
    assert "would run:" in out
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def copy_data_like_a_user(folder: Path) -> Path:
    folder.mkdir(parents=True)
    write_shd(folder / TRAIN_FILE, random_shd(240, seed=1))
    write_shd(folder / TEST_FILE, random_shd(60, seed=2))
    return folder


# Runs ``sccl.cli.continual`` and sends the process a real SIGINT (Ctrl-C) when its EPOCH-th epoch starts: a
# deterministic point mid-run, however fast the machine.
SIGINT_DRIVER = r"""
import os, runpy, signal, sys
import sccl.cl.engine
signal.signal(signal.SIGINT, signal.default_int_handler)  # (a shell's background job starts with SIGINT ignored)
at, real, seen = int(sys.argv[1]), sccl.cl.engine.train_epoch, [0]
def train_epoch(*a, **k):
    seen[0] += 1
    if seen[0] == at:
        os.kill(os.getpid(), signal.SIGINT)
    return real(*a, **k)
sccl.cl.engine.train_epoch = train_epoch
sys.argv = ["continual_cli"] + sys.argv[2:]
runpy.run_module("sccl.cli.continual", run_name="__main__")
"""


def test_sigint_mid_run_is_one_line_and_the_rerun_gives_the_uninterrupted_result(world, tmp_path):
    ds, root, pre = world
    run = ["--scenario", "sample_incremental", "--strategy", "naive", "--speaker", "3", "--epochs", "6",
           "--batch-size", "16", "--data-dir", str(ds.path.parent), "--pretrained", str(pre), "--quiet"]
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    r = subprocess.run([sys.executable, "-c", SIGINT_DRIVER, "3"] + run + ["--out-dir", str(interrupted)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 130 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 1
    (folder,) = interrupted.glob("sample_incremental/naive-*")
    rows = read_csv(folder / "epochs.csv")
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]  # stopped in its third epoch
    assert not (folder / "summary.json").exists()  # unfinished: the rerun redoes it
    cli = [sys.executable, "-m", "sccl.cli.continual"] + run
    assert subprocess.run(cli + ["--out-dir", str(interrupted)], cwd=ROOT, capture_output=True).returncode == 0
    assert subprocess.run(cli + ["--out-dir", str(clean)], cwd=ROOT, capture_output=True).returncode == 0
    (reference,) = clean.glob("sample_incremental/naive-*")
    assert folder.name == reference.name
    assert read_json(folder / "summary.json")["accuracy_matrix"] == read_json(reference / "summary.json")[
        "accuracy_matrix"]
    assert list(tmp_path.rglob("*.tmp*")) == []


def test_a_failing_sbatch_is_one_error_line_and_leaves_no_submission_files(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"sbatch": "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\n"
                         "exit 1\n", "squeue": "exit 0\n", "srun": 'exec "$@"\n'}
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/usr/bin/env bash\n" + body)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run([sys.executable, "-m", "sccl.cli.cl_sweep", "--scenario", "sample_incremental", "--speakers", "3",
                        "--strategies", "naive", "--epochs", "1", "--launcher", "slurm", "--slurm-partition", "nope",
                        "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: sbatch refused the pretrain array: sbatch: error: Batch job submission failed: Invalid partition "
        "name specified (nothing of it was submitted; check --slurm-partition, --slurm-account, --slurm-qos and "
        "--slurm-time)")
    assert [p for p in (tmp_path / "runs").rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------- issue 20: audio input
# (python -m sccl.audio; the helpers make short synthetic tones, tests/test_audio_converter.py)


def test_a_44k_file_is_resampled_without_warning(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"), labels=(0,))
    x = tone(700.0, 44100)
    write(rec / "ben_0_0.wav", x, 44100)
    assert convert(rec, tmp_path / "out", "--seed", "2") == 0
    assert "warning" not in capsys.readouterr().err
    job = audio.Job(rec / "ben_0_0.wav", "builtin", FS, 700, audio.file_seed(2, "ben_0_0.wav"))
    stored = load_shd(tmp_path / "out" / "shd_test.h5")  # ben: the last fifth of two speakers
    samples = wavfile.read(rec / "ben_0_0.wav")[1] / 32768.0
    times, units = cochlea(audio.resample(samples, 44100, FS), FS, seed=job.seed)
    assert np.array_equal(stored.units[0], units[np.argsort(times, kind="stable")])


def test_stereo_is_mixed_to_mono(tmp_path):
    pair = (np.stack([tone(600.0), tone(2500.0)], axis=1) * 32000).astype(np.int16)
    wavfile.write(tmp_path / "stereo.wav", FS, pair)
    times, units, _ = audio.convert_one(audio.Job(tmp_path / "stereo.wav", "builtin", FS, 700, seed=9))
    expected = cochlea((pair / 32768.0).mean(axis=1), FS, seed=9)
    assert len(times) > 0 and np.array_equal(times, expected[0]) and np.array_equal(units, expected[1])


# a bad file: one line naming the file and the problem, exit 2, nothing written


def _truncated(path):
    write(path, tone(500.0))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _nan_samples(path):
    wavfile.write(path, FS, np.array([0.1, np.nan, 0.2] * 100, dtype=np.float32))


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_text("these are notes, not audio\n"), "not a readable audio file"),
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: wavfile.write(p, FS, np.zeros(0, dtype=np.int16)), "holds no audio samples"),
    (_truncated, "truncated WAV file"),
    (_nan_samples, "non-finite samples"),
    (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage"), "not a readable audio file"),
])
def test_a_bad_file_is_one_error_line(tmp_path, capsys, make, problem):
    rec = corpus(tmp_path / "rec")
    make(rec / "ben_1_0.wav")
    assert convert(rec, tmp_path / "out") == 2
    one_error_line(capsys, "ben_1_0.wav", problem)
    nothing_written(tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without permission")
def test_a_file_without_read_permission_is_one_error_line(tmp_path, capsys):
    rec = corpus(tmp_path / "rec")
    (rec / "anna_0_0.wav").chmod(0)
    assert convert(rec, tmp_path / "out") == 2
    one_error_line(capsys, "anna_0_0.wav", "not a readable audio file")
    nothing_written(tmp_path / "out")


def test_unmatched_names_are_skipped_or_one_error_line(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"), labels=(0,))
    write(rec / "recording 7.wav", tone(800.0))
    assert convert(rec, tmp_path / "out") == 0
    assert "skipping 1 of 3 files that --labels does not match" in capsys.readouterr().err
    assert convert(rec, tmp_path / "none", "--labels", r"(?P<speaker>\d+)-(?P<label>\d+)\.wav") == 2
    one_error_line(capsys, "matches none of the 3 audio files")
    nothing_written(tmp_path / "none")


def test_a_folder_without_wav_files_is_one_error_line(tmp_path, capsys):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "a_0_0.mp3").write_bytes(b"ID3")
    assert convert(tmp_path / "rec", tmp_path / "out") == 2
    one_error_line(capsys, "no .wav or .flac files")
    nothing_written(tmp_path / "out")


def test_asking_for_numba_without_it_is_one_error_line(tmp_path, capsys, monkeypatch):
    import sccl.audio.cochlea
    monkeypatch.setattr(sccl.audio.cochlea, "compiled_available", lambda: False)
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"), labels=(0,))
    assert convert(rec, tmp_path / "out", "--engine", "numba") == 2
    one_error_line(capsys, "--engine numba", "pip install")
    nothing_written(tmp_path / "out")
