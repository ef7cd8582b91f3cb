"""Any SHD-layout file (issue 13, parts 1 and 5): the shape comes from the file, every scenario runs on other class
and speaker counts (or says in one line why it cannot), and the data is named by what it is."""

import argparse
import json

import h5py
import numpy as np
import pytest

from sccl.cl.engine import run
from sccl.cl.runs import RunConfig
from sccl.cli.cl_sweep import add_sweep_flags, expand
from sccl.cli.continual import main_any
from sccl.cli.pretrain import main as pretrain_main
from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError
from sccl.core.results import read_json
from sccl.data.hdf5 import SHDData, file_sha256, load_shd, load_shd_tables, write_shd
from sccl.data.merge import ensure_merged
from sccl.data.provenance import OFFICIAL_URL, SHD_LABEL, SYNTHETIC_LABEL, data_label, write_record
from sccl.data.shape import class_steps
from sccl.data.splits import make_split
from sccl.learn.pretraining import PretrainConfig, load_pretrained, pretrain
from sccl.learn.training import load_dataset
from sccl.report.build import build_report


EPOCHS = dict(epochs=1, batch_size=8, quiet=True)


def layout_data(nb_classes: int, speakers, reps: int, seed: int, nb_units: int = 700, max_time: float = 1.0,
                keys: bool = True) -> SHDData:
    """``reps`` samples of every (speaker, class), random spikes on ``nb_units`` channels."""
    rng = np.random.default_rng(seed)
    pairs = [(s, c) for s in speakers for c in range(nb_classes) for _ in range(reps)]
    n = len(pairs)
    times, units = np.empty(n, object), np.empty(n, object)
    for i in range(n):
        k = int(rng.integers(5, 40))
        times[i] = np.sort(rng.uniform(0, max_time, k)).astype(np.float16)
        units[i] = rng.integers(0, nb_units, k).astype(np.uint16)
    spk = np.array([p[0] for p in pairs])
    lab = np.array([p[1] for p in pairs])
    names = np.array([f"word {c}".encode() for c in range(nb_classes)]) if keys else None
    return SHDData(times, units, lab, spk, keys=names)


def write_pair(folder, nb_classes, speakers, reps=2, attrs=None, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    write_shd(folder / "shd_train.h5", layout_data(nb_classes, speakers, reps, 1, **kw), attrs)
    write_shd(folder / "shd_test.h5", layout_data(nb_classes, speakers, 1, 2, **kw), attrs)
    return ensure_merged(folder, quiet=True)


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    """A 10-class, 6-speaker file (channels: SHD's 700 by default) and its runs folder."""
    root = tmp_path_factory.mktemp("ten")
    path = write_pair(root / "data", 10, range(6), attrs={"description": "ten digits, six voices"})
    return load_dataset(path), root / "runs"


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A 35-class file on 64 channels (declared by the file's nb_units attribute), 3 speakers."""
    root = tmp_path_factory.mktemp("many")
    path = write_pair(root / "data", 35, range(3), reps=1, nb_units=64, attrs={"nb_units": 64, "name": "keywords"})
    return load_dataset(path), root / "runs"


def test_shape_comes_from_the_file(ten, many):
    ds, _ = ten
    assert (ds.shape.nb_classes, ds.shape.speakers, ds.shape.nb_units) == (10, tuple(range(6)), 700)
    assert ds.shape.class_names[3] == "word 3"
    assert ds.shape.default_first_classes == tuple(range(5)) and ds.shape.default_first_speakers == (0, 1, 2)
    ds, _ = many
    assert (ds.shape.nb_classes, ds.shape.nb_units, ds.binned.nb_units) == (35, 64, 64)
    assert ds.binned.dense([0]).shape == (1, ds.binned.nb_steps, 64)


def test_progressive_generalises():
    classes = tuple(range(35))
    steps = class_steps(classes, tuple(range(20)), 5)
    assert steps == [tuple(range(20 + 5 * i, 25 + 5 * i)) for i in range(3)]
    assert class_steps(tuple(range(20)), tuple(range(10)), 1) == [(c,) for c in range(10, 20)]  # SHD's default
    assert class_steps(tuple(range(10)), (0, 1, 2), 3) == [(3, 4, 5), (6, 7, 8), (9,)]
    labels = np.repeat(np.arange(35), 10)
    split = make_split("progressive", None, labels, labels % 3, first_classes=tuple(range(20)), classes_per_step=5)
    assert split.class_steps == tuple(steps) and split.new_groups == (20, 25, 30)
    assert set(labels[split["new_train_25"]]) == set(range(25, 30))


@pytest.mark.parametrize("scenario,held,tasks", [("sample_incremental", 5, 2), ("class_incremental", 9, 2),
                                                  ("progressive", None, 6), ("speakers", None, 4)])
def test_every_scenario_on_ten_classes_six_speakers(ten, scenario, held, tasks):
    ds, runs = ten
    folder = pretrain(PretrainConfig(scenario, held, **EPOCHS), ds, runs)
    net, split, config = load_pretrained(folder)
    assert (net.w1.shape[0], net.w_out.shape[1]) == (700, 10)
    assert config["data"]["label"] == "SHD-layout data: ten digits, six voices"
    for strategy, extra in (("naive", {}), ("latent_replay", {"latent_depth": 1, "replay_batches": 1})):
        out = run(RunConfig.of(scenario, strategy, held_out=held, **EPOCHS, **extra), ds, runs)
        summary = read_json(out / "summary.json")
        assert len(summary["tasks"]) == tasks and np.shape(summary["accuracy_matrix"]) == (tasks, tasks)
    if scenario == "progressive":
        assert [t["name"] for t in summary["tasks"]] == ["classes 0-4"] + [f"class {c}" for c in range(5, 10)]
    if scenario == "speakers":
        assert [t["name"] for t in summary["tasks"]] == ["speakers 0-2", "speaker 3", "speaker 4", "speaker 5"]


def test_thirty_five_classes_through_the_command_lines(many, capsys):
    ds, runs = many
    data_dir = str(ds.path.parent)
    common = ["--data-dir", data_dir, "--out-dir", str(runs), "--epochs", "1", "--batch-size", "8", "--quiet"]
    pretrain_main(["--classes", "0-19", "--classes-per-step", "5", "--max-time", "auto"] + common)
    out = main_any(["--scenario", "progressive", "--strategy", "naive", "--first-classes", "0-19",
                    "--classes-per-step", "5"] + common)
    summary = read_json(out / "summary.json")
    assert [t["new_classes"] for t in summary["tasks"]] == [[], *[list(range(a, a + 5)) for a in (20, 25, 30)]]
    assert summary["data"]["label"] == "SHD-layout data: keywords" and summary["data"]["nb_classes"] == 35
    assert summary["data"]["dropped_spikes"] == 0 and summary["data"]["max_time"] > 0.99
    pretrain_main(["--removed-class", "34"] + common)
    out = main_any(["--scenario", "class_incremental", "--strategy", "naive", "--removed-class", "34",
                    "--keep-last"] + common)
    net, _, _ = load_pretrained(runs / "pretrain" / "paper" / "class34_seed0")
    assert (net.w1.shape[0], net.w_out.shape[1]) == (64, 35)
    assert read_json(out / "summary.json")["tasks"][1]["new_classes"] == [34]


def test_sweeps_all_means_the_files_ids(ten):
    ds, _ = ten
    for scenario, flag, expected in (("sample_incremental", "--speakers", range(6)),
                                     ("class_incremental", "--classes", range(10))):
        p = argparse.ArgumentParser()
        add_sweep_flags(p, scenario)
        args = p.parse_args([flag, "all", "--strategies", "naive"])
        held = [int(argv[argv.index("--speaker" if scenario == "sample_incremental" else "--removed-class") + 1])
                for _, argv in expand(args, scenario, ds.path)]
        assert held == list(expected)
    p = argparse.ArgumentParser()
    add_sweep_flags(p, "speakers")
    argv = expand(p.parse_args(["--strategies", "naive"]), "speakers", ds.path)[0][1]
    assert argv[argv.index("--first-speakers") + 1] == "0-2"


@pytest.mark.parametrize("scenario,flags,nb_classes,speakers,message", [
    ("progressive", ["--classes", "first-half"], 2, range(3), "progressive scenario needs a first group of at least 2"),
    ("speakers", ["--first-speakers", "0"], 4, [0], "speakers scenario needs a first group"),
    ("sample_incremental", ["--speaker", "0"], 4, [0], "needs at least 2 speakers"),
    ("class_incremental", ["--removed-class", "1"], 2, range(3), "needs at least 3 classes"),
    ("class_incremental", ["--removed-class", "12"], 4, range(3), "class must be in 0..3"),
])
def test_a_scenario_that_cannot_run_is_one_line(tmp_path, capsys, scenario, flags, nb_classes, speakers, message):
    write_pair(tmp_path / "d", nb_classes, speakers)
    code = run_cli(pretrain_main, flags + ["--data-dir", str(tmp_path / "d"), "--out-dir", str(tmp_path / "r"),
                                           "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r" / "pretrain").exists() or not any((tmp_path / "r" / "pretrain").rglob("model.pt"))


def test_labels(tmp_path):
    assert data_label({"description": "synthetic SHD-format data, not SHD (tiny)"}, tmp_path / "x.h5") == SYNTHETIC_LABEL
    assert data_label({"name": "my voice"}, tmp_path / "x.h5") == "SHD-layout data: my voice"
    assert data_label({}, tmp_path / "mine" / "shd_merged.h5") == "SHD-layout data: mine/shd_merged.h5"
    # official: the download verified both files against the official md5sums.txt; the merge records it
    official = tmp_path / "official"
    path = write_pair(official, 4, range(3))
    assert load_dataset(path).label.startswith("SHD-layout data: ")  # merged before any record: not SHD
    for name in ("shd_train.h5", "shd_test.h5"):
        write_record(official, name, file_sha256(official / name), "0" * 32, OFFICIAL_URL)
    path.unlink()
    ds = load_dataset(ensure_merged(official, quiet=True))
    assert ds.label == SHD_LABEL and not ds.synthetic
    with h5py.File(path, "r") as f:
        assert all(e["official"] for e in json.loads(f.attrs["sources"]))
    # a mirror's checksums do not make a file official
    other = tmp_path / "mirror"
    path = write_pair(other, 4, range(3), attrs={"description": "copied from a mirror"})
    for name in ("shd_train.h5", "shd_test.h5"):
        write_record(other, name, file_sha256(other / name), "0" * 32, "http://mirror.example/")
    path.unlink()
    assert load_dataset(ensure_merged(other, quiet=True)).label == "SHD-layout data: copied from a mirror"


def test_max_time_auto_keeps_every_spike(tmp_path):
    path = write_pair(tmp_path / "d", 4, range(3), max_time=2.5)
    assert load_dataset(path).binned.dropped > 0  # SHD's 1.4 s window cuts these samples
    ds = load_dataset(path, max_time="auto")
    assert ds.binned.dropped == 0 and 2.4 < ds.binned.max_time <= 2.502
    with pytest.raises(ConfigError, match="--max-time"):
        pretrain_main(["--speaker", "0", "--max-time", "soon", "--data-dir", str(tmp_path / "d")])


def test_last_spike_time_read_in_chunks_equals_the_whole_files(tmp_path, monkeypatch):
    path = write_pair(tmp_path / "d", 4, range(3), max_time=2.5)
    whole = max(float(np.max(t)) for t in load_shd(path).times if len(t))
    monkeypatch.setattr("sccl.data.hdf5.CHECK_CHUNK", 3)  # many chunks, the last one partial
    assert load_shd_tables(path).last_spike == whole
    empty = tmp_path / "empty.h5"
    write_shd(empty, SHDData(np.array([np.zeros(0, np.float16)] * 2, dtype=object),
                             np.array([np.zeros(0, np.uint16)] * 2, dtype=object), np.zeros(2, np.uint8),
                             np.zeros(2, np.uint16)))
    assert load_shd_tables(empty).last_spike == 0.0


def test_report_of_a_ten_class_run_names_ten_classes(ten, tmp_path):
    ds, runs = ten
    pretrain(PretrainConfig("progressive", None, **EPOCHS), ds, runs)
    run(RunConfig.of("progressive", "naive", **EPOCHS), ds, runs)
    out = build_report(tmp_path / "results", runs)
    text = out["report"].read_text()
    assert "results — SHD-layout data: ten digits, six voices" in text.splitlines()[0]
    heads = [[c.strip() for c in line.split("|")[3:-1]] for line in text.splitlines()
             if line.startswith("| configuration | n (seeds) | classes")]
    assert heads and all(h[:6] == ["classes 0-4"] + [f"class {c}" for c in range(5, 10)] for h in heads)
    assert "19" not in "".join(line for line in text.splitlines() if line.startswith(("| ", "**Table")))
    assert any(p.name.startswith("fig6") for p in out["files"])


def test_a_sweep_without_the_data_expands_named_ids_and_refuses_all_in_one_line(tmp_path):
    import subprocess
    import sys

    base = [sys.executable, "-m", "sccl.cli.cl_sweep", "--data-dir", str(tmp_path / "nowhere"), "--out-dir",
            str(tmp_path / "runs"), "--dry-run", "--strategies", "naive"]
    named = subprocess.run(base + ["--scenario", "sample_incremental", "--speakers", "3"], capture_output=True,
                           text=True)
    assert named.returncode == 0 and "would run" in named.stdout
    for scenario, message in [("sample_incremental", "'all' speakers: no merged data file to read them from"),
                              ("speakers", "to read the speakers from: pass --first-speakers")]:
        r = subprocess.run(base + ["--scenario", scenario], capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
