"""Pretraining: run folder contents, determinism, resume after an interruption, CLI errors, the testsuite."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sccl.learn.pretraining as pt
from sccl.core.errors import ConfigError
from sccl.core.results import read_csv, read_json
from sccl.data.hdf5 import write_shd
from sccl.data.merge import ensure_merged
from sccl.data.splits import Split
from sccl.learn.pretraining import PretrainConfig, is_finished, load_pretrained, pretrain
from sccl.learn.training import load_dataset
from tests.conftest import random_shd


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_shd(d / "shd_train.h5", random_shd(400, seed=1))
    write_shd(d / "shd_test.h5", random_shd(80, seed=2))
    return load_dataset(ensure_merged(d, quiet=True))


def cfg(**kw):
    base = dict(scenario="sample_incremental", held_out=3, epochs=2, batch_size=32, quiet=True)
    base.update(kw)
    return PretrainConfig(**base)


def weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)


def test_run_folder_contents(tiny_ds, tmp_path):
    folder = pretrain(cfg(), tiny_ds, tmp_path)
    assert folder == tmp_path / "pretrain" / "paper" / "speaker3_seed0"
    assert {"model.pt", "split.npz", "config.json", "epochs.csv", "log.txt", "checkpoint.pt"} <= {
        p.name for p in folder.iterdir()}
    sd = weights(folder)
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "w1": (700, 200), "w2": (200, 100), "w3": (100, 50), "v1": (200, 200), "v2": (100, 100),
        "v3": (50, 50), "w_out": (50, 20)}
    rows = read_csv(folder / "epochs.csv")
    assert list(rows[0]) == ["epoch", "loss", "train_acc", "test_acc", "seconds"]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0 <= float(r["test_acc"]) <= 1 for r in rows)
    config = read_json(folder / "config.json")
    assert config["settings"]["seed"] == 0 and config["settings"]["lr"] == 2e-4
    assert len(config["data"]["sha256"]) == 64 and config["versions"]["torch"] == torch.__version__
    split = Split.load(folder / "split.npz")
    assert not (tiny_ds.speakers[split["pretrain_train"]] == 3).any()
    net, split2, _ = load_pretrained(folder)
    torch.testing.assert_close(net.w1.detach(), sd["w1"], rtol=0, atol=0)
    assert "epoch 2" in (folder / "log.txt").read_text()


def test_same_seed_same_weights_and_rows(tiny_ds, tmp_path):
    a = pretrain(cfg(), tiny_ds, tmp_path / "a")
    b = pretrain(cfg(), tiny_ds, tmp_path / "b")
    c = pretrain(cfg(seed=1), tiny_ds, tmp_path / "c")
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k
    assert not torch.equal(weights(a)["w1"], weights(c)["w1"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(a / "epochs.csv")) == strip(read_csv(b / "epochs.csv"))


def test_interrupted_run_resumes_to_identical_weights(tiny_ds, tmp_path, monkeypatch):
    reference = pretrain(cfg(epochs=3), tiny_ds, tmp_path / "ref")
    real_train_epoch = pt.train_epoch
    calls = {"n": 0}

    def crash_in_second_epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_train_epoch(*a, **k)

    monkeypatch.setattr(pt, "train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg(epochs=3), tiny_ds, tmp_path / "run")
    folder = tmp_path / "run" / "pretrain" / "paper" / "speaker3_seed0"
    assert not is_finished(folder) and len(read_csv(folder / "epochs.csv")) == 1
    monkeypatch.setattr(pt, "train_epoch", real_train_epoch)
    split_bytes = (folder / "split.npz").read_bytes()
    (folder / "split.npz").unlink()  # lost with the process (a half-deleted folder): rewritten on resume
    pretrain(cfg(epochs=3), tiny_ds, tmp_path / "run")
    assert (folder / "split.npz").read_bytes() == split_bytes
    for k, v in weights(reference).items():
        assert torch.equal(v, weights(folder)[k]), k
    rows = read_csv(folder / "epochs.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    ref_rows = read_csv(reference / "epochs.csv")
    assert [r["test_acc"] for r in rows] == [r["test_acc"] for r in ref_rows]
    assert "resuming after epoch 1" in (folder / "log.txt").read_text()
    # more epochs later: continues from the checkpoint; fewer or equal: skipped
    pretrain(cfg(epochs=4), tiny_ds, tmp_path / "run")
    assert len(read_csv(folder / "epochs.csv")) == 4 and is_finished(folder, 4)


def test_other_settings_in_existing_folder_need_force(tiny_ds, tmp_path):
    pretrain(cfg(epochs=1), tiny_ds, tmp_path)
    with pytest.raises(ConfigError, match="other settings .*lr.*--force"):
        pretrain(cfg(epochs=1, lr=1e-3), tiny_ds, tmp_path)
    folder = pretrain(cfg(epochs=1, lr=1e-3), tiny_ds, tmp_path, force=True)
    assert read_json(folder / "config.json")["settings"]["lr"] == 1e-3


def test_cli_without_data_points_to_download_and_embedded_set(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "statedicts" / "pretrain.py"), "--speaker", "1",
                        "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no SHD or SSC files" in r.stderr and "--download" in r.stderr and "sccl.data.offline" in r.stderr


def test_cli_out_of_range_speaker(tiny_ds, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "statedicts" / "pretrain.py"), "--speaker", "12",
                        "--data-dir", str(tiny_ds.path.parent), "--out-dir", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "speaker must be in 0..11" in r.stderr and "Traceback" not in r.stderr


def test_testsuite_skips_finished_and_retries_failed(tiny_ds, tmp_path):
    # speaker 11 has no samples in the tiny set (speakers cycle 0..11 per 20 samples: make one absent)
    d = tmp_path / "data"
    d.mkdir()
    sp = (np.arange(300) // 20) % 11  # speakers 0..10 only
    write_shd(d / "shd_train.h5", random_shd(300, seed=4, speakers=sp))
    write_shd(d / "shd_test.h5", random_shd(60, seed=5, speakers=np.arange(60) % 11))
    cmd = [sys.executable, str(ROOT / "statedicts" / "testsuite.py"), "--speakers", "0,11", "--classes", "none",
           "--no-progressive", "--epochs", "1", "--data-dir", str(d), "--out-dir", str(tmp_path / "runs"),
           "--retries", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 runs: 0 already done, 2 to run" in r.stdout
    assert re.search(r"speaker0 seed 0 +done", r.stdout) and re.search(r"speaker11 seed 0 +failed", r.stdout)
    assert "speaker 11 has no samples" in r.stdout
    r2 = subprocess.run(cmd, capture_output=True, text=True)
    assert "2 runs: 1 already done, 1 to run" in r2.stdout  # the failure is retried, never counted done
    assert re.search(r"speaker0 seed 0 +skipped \(done\)", r2.stdout)
