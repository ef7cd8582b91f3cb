"""heidelberg_unite_datasets.py / sccl.data.merge: concatenation, source record, atomicity, refusal to overwrite."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from sccl.core.errors import DataError
from sccl.data import merge as merge_mod
from sccl.data.hdf5 import load_shd
from sccl.data.merge import ensure_merged, merge_files


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "heidelberg_unite_datasets.py")


def test_merge_is_train_then_test_with_every_key_and_source(shd_pair, tmp_path):
    train_p, test_p, train, test = shd_pair
    out = merge_files(train_p, test_p, tmp_path / "shd_merged.h5")
    m = load_shd(out)
    assert len(m) == len(train) + len(test) == 300
    np.testing.assert_array_equal(m.labels, np.r_[train.labels, test.labels])
    np.testing.assert_array_equal(m.speakers, np.r_[train.speakers, test.speakers])
    np.testing.assert_array_equal(m.source, np.r_[np.zeros(240), np.ones(60)])
    for i, (a, b) in enumerate(zip(m.times, list(train.times) + list(test.times))):
        np.testing.assert_array_equal(a, b.astype(np.float16))
    for a, b in zip(m.units, list(train.units) + list(test.units)):
        np.testing.assert_array_equal(a, b)
    with h5py.File(train_p) as ft, h5py.File(out) as fm:
        keys_t, keys_m = set(), set()
        ft.visit(keys_t.add)
        fm.visit(keys_m.add)
        assert keys_m == keys_t | {"extra/source"}
        np.testing.assert_array_equal(fm["extra/keys"][()], ft["extra/keys"][()])  # lookup copied once, 20 keys
        np.testing.assert_array_equal(fm["extra/meta_info/age"][()], ft["extra/meta_info/age"][()])
        assert fm["spikes/times"].dtype == ft["spikes/times"].dtype
        assert fm["labels"].maxshape == (None,)


def test_merge_refuses_to_overwrite_unless_forced(shd_pair, tmp_path):
    train_p, test_p, *_ = shd_pair
    out = tmp_path / "shd_merged.h5"
    out.write_bytes(b"precious")
    with pytest.raises(DataError, match="already exists; pass --force"):
        merge_files(train_p, test_p, out)
    assert out.read_bytes() == b"precious"
    merge_files(train_p, test_p, out, force=True)
    assert len(load_shd(out)) == 300


def test_failed_merge_leaves_no_file(shd_pair, tmp_path, monkeypatch):
    train_p, test_p, *_ = shd_pair

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(merge_mod.os, "replace", boom)
    with pytest.raises(RuntimeError):
        merge_files(train_p, test_p, tmp_path / "shd_merged.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shd_test.h5", "shd_train.h5"]


def test_interrupted_merge_script_leaves_no_file(shd_pair, tmp_path):
    """Kill the script while it writes (SIGKILL after the temp file appears): no merged file remains."""
    train_p, test_p, *_ = shd_pair
    code = ("import sys, time, sccl.data.merge as m\n"
            "orig = m._write_like\n"
            "def slow(*a):\n    orig(*a); open(sys.argv[3] + '.writing', 'w').close(); time.sleep(30)\n"
            "m._write_like = slow\n"
            "m.merge_files(sys.argv[1], sys.argv[2], sys.argv[3])\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(train_p), str(test_p), str(tmp_path / "shd_merged.h5")])
    try:
        for _ in range(200):
            if any(p.name.endswith(".writing") for p in tmp_path.iterdir()):  # the file is being built
                break
            import time
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "shd_merged.h5").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_missing_input_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no SHD or SSC files" in r.stderr and "--download" in r.stderr and "sccl.data.offline" in r.stderr
    with pytest.raises(DataError, match="no SHD or SSC files"):
        ensure_merged(tmp_path)


def test_script_merges_then_refuses_second_run(shd_pair):
    train_p, *_ = shd_pair
    d = str(train_p.parent)
    r = subprocess.run([sys.executable, SCRIPT, "--data-dir", d], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "300 samples (240 train + 60 test)" in r.stdout
    r2 = subprocess.run([sys.executable, SCRIPT, "--data-dir", d], capture_output=True, text=True)
    assert r2.returncode == 2 and "--force" in r2.stderr
    r3 = subprocess.run([sys.executable, SCRIPT, "--data-dir", d, "--force"], capture_output=True, text=True)
    assert r3.returncode == 0


def test_ensure_merged_merges_once(shd_pair, capsys):
    train_p, *_ = shd_pair
    path = ensure_merged(train_p.parent)
    mtime = os.stat(path).st_mtime_ns
    assert ensure_merged(train_p.parent) == path and os.stat(path).st_mtime_ns == mtime
