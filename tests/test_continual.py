"""Continual learning (sample- and class-incremental, progressive) on the embedded offline dataset (tiny)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sccl.cli import run_cli
from sccl.continual import CLConfig, choose_replay_batches, run_continual, schedule_order
from sccl.continual_cli import main as cl_main
from sccl.merge import ensure_merged
from sccl.offline import generate_dataset
from sccl.pretraining import PretrainConfig, load_pretrained, pretrain
from sccl.progressive import ProgressiveConfig, run_progressive
from sccl.results import read_csv, read_json
from sccl.training import load_dataset

ROOT = Path(__file__).resolve().parents[1]
BS = 16  # the tiny set has ~20 samples per speaker


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny embedded dataset + pretrained models (speaker 3, class 7, classes 0-9), 2 epochs each."""
    root = tmp_path_factory.mktemp("cl")
    generate_dataset(root / "data", size="tiny", seed=0)
    ds = load_dataset(ensure_merged(root / "data", quiet=True))
    for scenario, held in (("speaker", 3), ("class", 7), ("classes", None)):
        pretrain(PretrainConfig(scenario, held, epochs=2, batch_size=BS, quiet=True), ds, root / "runs")
    return ds, root


def cfg(**kw):
    base = dict(scenario="speaker", held_out=3, strategy="naive", epochs=2, batch_size=BS, quiet=True)
    base.update(kw)
    return CLConfig(**base)


STRATEGY_ARGS = {
    "naive": [],
    "rehearsal": ["--rehearsal-batches", "2", "--rehearsal-subsample", "10"],
    "latent_replay": ["--latent-depth", "2", "--latent-batches", "2"],
    "latent_replay_subsampled": ["--latent-depth", "1", "--latent-batches", "2", "--latent-subsample", "10"],
}


@pytest.mark.parametrize("scenario", ["speaker", "class"])
@pytest.mark.parametrize("strategy", list(STRATEGY_ARGS))
def test_each_script_writes_well_formed_results(world, strategy, scenario):
    ds, root = world
    folder_name = "sample_incremental" if scenario == "speaker" else "class_incremental"
    held = ["--speaker", "3"] if scenario == "speaker" else ["--removed-class", "7"]
    bs = BS if scenario == "speaker" else BS // 2  # ~10 training samples per class in the tiny set
    argv = held + ["--epochs", "2", "--batch-size", str(bs), "--data-dir", str(ds.path.parent),
                   "--out-dir", str(root / "runs"), "--quiet"] + STRATEGY_ARGS[strategy]
    if scenario == "class" and strategy != "naive":
        argv += ["--latent-batches" if strategy.startswith("latent") else "--rehearsal-batches", "1"]
    r = subprocess.run([sys.executable, str(ROOT / folder_name / f"{strategy}.py")] + argv,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    runs = [p for p in (root / "runs" / folder_name).iterdir() if p.name.startswith(strategy + "-")]
    assert len(runs) == 1
    run = runs[0]
    rows = read_csv(run / "epochs.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for column in ("strategy", scenario, "depth", "latent_batches", "stored_steps", "compression", "seed",
                   "memory_bits", "memory_bytes", "loss", "old_acc", "new_acc", "all_acc", "seconds"):
        assert column in rows[0], column
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("old_acc", "new_acc", "all_acc"))
    summary = read_json(run / "summary.json")
    assert summary["forgetting"] == pytest.approx(rows[0]["old_acc"] and float(rows[0]["old_acc"]) - float(rows[-1]["old_acc"]))
    assert summary["memory_bytes_stored"] == int(rows[0]["memory_bytes"])
    assert (summary["memory_bits_analytic"] > 0) == (strategy != "naive")
    if scenario == "class":
        assert set(summary["per_class_accuracy"]) == {str(c) for c in range(20)}
    assert "done in" in (run / "log.txt").read_text()
    gathered = read_csv(root / "runs" / folder_name / "all_runs.csv")
    assert sum(g["run"] == run.name for g in gathered) == 3


def test_all_accuracy_is_sample_weighted(world, tmp_path):
    ds, root = world
    folder = run_continual(cfg(epochs=1, pretrained=str(root / "runs/pretrain/paper/speaker3_seed0")), ds, tmp_path)
    s = read_json(folder / "summary.json")
    n_old, n_new = s["samples"]["old_test"], s["samples"]["new_test"]
    f = s["final"]
    assert f["all_acc"] == pytest.approx((f["old_acc"] * n_old + f["new_acc"] * n_new) / (n_old + n_new), abs=1e-5)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_frozen_parameters_bit_identical_after_training(world, tmp_path, depth, monkeypatch):
    ds, root = world
    captured = {}
    import sccl.continual as cont
    real = cont.write_json

    def grab(path, obj):  # the trained network is still alive when the summary is written: compare there
        real(path, obj)

    monkeypatch.setattr(cont, "write_json", grab)
    pre_net, _, _ = load_pretrained(root / "runs/pretrain/paper/speaker3_seed0")
    real_load = cont.load_pretrained

    def load_and_keep(*a, **k):
        net, split, config = real_load(*a, **k)
        captured["net"] = net
        return net, split, config

    monkeypatch.setattr(cont, "load_pretrained", load_and_keep)
    c = cfg(strategy="latent_replay_subsampled", latent_depth=depth, replay_batches=2, stored_steps=20, lr=5e-2,
            epochs=2, pretrained=str(root / "runs/pretrain/paper/speaker3_seed0"))
    run_continual(c, ds, tmp_path)
    net = captured["net"]
    trainable = set(net.trainable_for_depth(depth))
    changed = {n for n, p in net.named_parameters() if not torch.equal(p.detach(), getattr(pre_net, n).detach())}
    assert changed <= trainable
    assert not ({n for n, _ in net.named_parameters()} - trainable) & changed
    assert changed, "nothing trained: the test would be vacuous"


def test_memory_bytes_match_the_formula(world, tmp_path):
    ds, root = world
    c = cfg(strategy="latent_replay_subsampled", latent_depth=3, replay_batches=3, stored_steps=10, epochs=0,
            pretrained=str(root / "runs/pretrain/paper/speaker3_seed0"))
    s = read_json(run_continual(c, ds, tmp_path) / "summary.json")
    assert s["memory_bits_analytic"] == 3 * BS * 50 * 10
    assert s["memory_bytes_stored"] == 3 * BS * 50 * 10 // 8


@pytest.mark.parametrize("argv, message", [
    (["--latent-batches", "999"], "asked for 999 replay batches but the pretraining split holds only"),
    (["--latent-depth", "4"], "--latent-depth must be 0, 1, 2 or 3"),
    (["--latent-subsample", "30"], "--latent-subsample 30 must divide the 100 time steps"),
])
def test_bad_values_are_clear_errors(world, capsys, argv, message):
    ds, root = world
    base = ["--speaker", "3", "--data-dir", str(ds.path.parent), "--out-dir", str(root / "runs"), "--quiet",
            "--batch-size", str(BS)]
    assert run_cli(lambda a: cl_main("latent_replay_subsampled", "speaker", a), base + argv) == 2
    assert message in capsys.readouterr().err


def test_absent_speaker_and_missing_pretraining(world, capsys, tmp_path):
    ds, root = world
    assert run_cli(lambda a: cl_main("naive", "speaker", a),
                   ["--speaker", "5", "--data-dir", str(ds.path.parent), "--out-dir", str(tmp_path)]) == 2
    assert "no finished pretraining" in capsys.readouterr().err
    assert run_cli(lambda a: cl_main("naive", "speaker", a),
                   ["--speaker", "13", "--data-dir", str(ds.path.parent), "--out-dir", str(tmp_path)]) == 2


def test_replay_memory_never_holds_test_or_held_out_samples(world):
    ds, root = world
    for scenario, held in (("speaker", 3), ("class", 7)):
        _, split, _ = load_pretrained(root / f"runs/pretrain/paper/{scenario}{held}_seed0")
        for mixed in (False, True):
            bs = BS if scenario == "speaker" else BS // 2
            c = cfg(scenario=scenario, held_out=held, strategy="latent_replay", latent_depth=1, replay_batches=1,
                    class_mixed=mixed, batch_size=bs)
            chosen = np.concatenate(choose_replay_batches(c, split, ds.labels))
            assert set(chosen) <= set(split["pretrain_train"])
            assert not set(chosen) & (set(split["pretrain_test"]) | set(split["new_test"]) | set(split["new_train"]))
            if scenario == "class":
                assert not (ds.labels[chosen] == 7).any()
                assert set(np.unique(ds.labels[chosen])) == set(range(20)) - {7}  # k batches of every old class
                assert len(chosen) == 19 * bs
        assert not (ds.labels[split["pretrain_train"]] == held).any() if scenario == "class" else True
    _, split, _ = load_pretrained(root / "runs/pretrain/paper/class7_seed0")
    assert not (ds.labels[np.r_[split["pretrain_train"], split["pretrain_test"]]] == 7).any()


def test_schedules():
    assert schedule_order(3, 2, "original") == [("new", 0), ("new", 1), ("new", 2), ("replay", 0), ("replay", 1)]
    inter = schedule_order(4, 2, "mixed")
    assert inter == [("new", 0), ("replay", 0), ("new", 1), ("new", 2), ("replay", 1), ("new", 3)]


def test_progressive_matrix_and_memory_growth(world, tmp_path):
    ds, root = world
    c = ProgressiveConfig(latent_depth=2, latent_batches=1, stored_steps=50, epochs=1, batch_size=4, quiet=True,
                          pretrained=str(root / "runs/pretrain/paper/classes0-9_seed0"))
    folder = run_progressive(c, ds, tmp_path)
    s = read_json(folder / "summary.json")
    m = np.array(s["accuracy_matrix"])
    assert m.shape == (11, 11) and ((0 <= m) & (m <= 1)).all()
    assert s["steps"][0] == list(range(10)) and s["steps"][1:] == [[c] for c in range(10, 20)]
    per_class = 4 * 100 * 50 // 8  # one batch of 4 samples, 100 units, 50 stored steps, 1 bit
    mem = s["memory_per_step"]
    assert mem[0]["bytes"] == 10 * per_class and mem[0]["samples"] == 40
    assert all(b["bytes"] - a["bytes"] == per_class for a, b in zip(mem, mem[1:]))
    assert len(s["average_accuracy"]) == len(s["forgetting"]) == 11
    assert s["average_accuracy"][0] == pytest.approx(m[0][0])
    rows = read_csv(folder / "epochs.csv")
    assert [int(r["new_class"]) for r in rows] == list(range(10, 20))


def test_testsuite_resumes_without_duplicate_rows(world, tmp_path):
    ds, root = world
    out = tmp_path / "runs"
    (out / "pretrain").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(root / "runs/pretrain/paper"), str(out / "pretrain/")], check=True)
    epochs = "30"
    base = ["--data-dir", str(ds.path.parent), "--out-dir", str(out), "--epochs", epochs, "--batch-size", str(BS)]
    # kill one run half-way: start it, wait for its first epoch rows, kill it
    slow = [sys.executable, str(ROOT / "sample_incremental" / "latent_replay.py"), "--speaker", "3",
            "--latent-depth", "1", "--latent-batches", "1", "--quiet"] + base
    proc = subprocess.Popen(slow)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "sample_incremental").glob("*/epochs.csv")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = next((out / "sample_incremental").glob("*/epochs.csv")).parent
    assert not (killed / "summary.json").exists() and len(read_csv(killed / "epochs.csv")) < 31
    suite = [sys.executable, str(ROOT / "sample_incremental" / "testsuite.py"), "--speakers", "3", "--strategies",
             "naive,latent_replay", "--depths", "1", "--latent-batches", "1"] + base
    r = subprocess.run(suite, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 runs: 0 already done, 2 to run" in r.stdout  # the killed run was not counted done
    rows = read_csv(out / "sample_incremental" / "all_runs.csv")
    keys = [(row["run"], row["epoch"]) for row in rows]
    assert len(keys) == len(set(keys)) == 2 * 31
    assert killed.name in {row["run"] for row in rows}
    assert "latent_replay" in r.stdout and "naive" in r.stdout  # the summary table
    r2 = subprocess.run(suite, capture_output=True, text=True)
    assert "2 runs: 2 already done, 0 to run" in r2.stdout
    assert len(read_csv(out / "sample_incremental" / "all_runs.csv")) == 62


def test_same_seed_gives_identical_rows(world, tmp_path):
    ds, root = world
    pre = str(root / "runs/pretrain/paper/speaker3_seed0")
    c = cfg(strategy="latent_replay_subsampled", latent_depth=1, replay_batches=2, stored_steps=20, epochs=2,
            pretrained=pre)
    a, b = run_continual(c, ds, tmp_path / "a"), run_continual(c, ds, tmp_path / "b")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(a / "epochs.csv")) == strip(read_csv(b / "epochs.csv"))
    assert a.name == b.name  # the stamp depends on the config only
