"""The Spiking Speech Commands' three-file layout and validation sets (issue 13, part 2): download with checksums
(through a fake opener), the merge of train / valid / test, the official split selecting on the validation file,
validation sets carved from SHD's training samples, and runs that choose their best epoch on validation."""

import gzip
import hashlib
import io
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from sccl.cl.engine import run
from sccl.cl.runs import RunConfig
from sccl.core.errors import ConfigError, DataError
from sccl.core.results import read_csv, read_json
from sccl.data.datasets import SOURCE_CODES, detect
from sccl.data.download import DEFAULT_BASE_URL, ensure_files
from sccl.data.hdf5 import load_shd, write_shd
from sccl.data.merge import ensure_merged, merge_folder
from sccl.data.provenance import OFFICIAL_URL
from sccl.data.splits import VALID_FRACTION, make_split
from sccl.learn.pretraining import PretrainConfig, pretrain
from sccl.learn.training import load_dataset
from tests.test_any_layout import layout_data


ROOT = Path(__file__).resolve().parents[1]
NB_CLASSES = 35
PARTS = {"train": (3, 1), "valid": (1, 2), "test": (1, 3)}  # reps per (speaker, class), seed


def write_ssc(folder: Path) -> dict[str, Path]:
    """A tiny SSC: 35 keywords, 4 speakers, the three files of the official layout."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, (reps, seed) in PARTS.items():
        paths[part] = folder / f"ssc_{part}.h5"
        write_shd(paths[part], layout_data(NB_CLASSES, range(4), reps, seed))
    return paths


@pytest.fixture(scope="module")
def ssc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssc") / "data"
    write_ssc(folder)
    return ensure_merged(folder, quiet=True)


def test_merge_concatenates_train_valid_test_and_records_each_file(ssc):
    merged = load_shd(ssc)
    n = {part: NB_CLASSES * 4 * reps for part, (reps, _) in PARTS.items()}
    assert ssc.name == "ssc_merged.h5" and len(merged) == sum(n.values())
    expected = np.repeat([SOURCE_CODES["train"], SOURCE_CODES["valid"], SOURCE_CODES["test"]],
                         [n["train"], n["valid"], n["test"]])
    np.testing.assert_array_equal(merged.source, expected)
    assert len(merged.keys) == NB_CLASSES
    valid = load_shd(ssc.parent / "ssc_valid.h5")
    first = n["train"]
    np.testing.assert_array_equal(merged.labels[first:first + n["valid"]], valid.labels)
    assert all(np.array_equal(a, b) for a, b in zip(merged.times[first:first + n["valid"]], valid.times))


def test_a_folder_holds_one_dataset(tmp_path):
    write_ssc(tmp_path)
    assert detect(tmp_path) == "ssc"
    write_shd(tmp_path / "shd_train.h5", layout_data(3, range(2), 1, 1))
    write_shd(tmp_path / "shd_test.h5", layout_data(3, range(2), 1, 2))
    with pytest.raises(DataError, match="holds the files of SHD and SSC: keep each dataset in its own folder"):
        ensure_merged(tmp_path)
    (tmp_path / "ssc_valid.h5").unlink()  # an incomplete SSC is not SSC
    assert detect(tmp_path) == "shd"


def test_the_merge_script_merges_ssc(tmp_path):
    write_ssc(tmp_path)
    script = [sys.executable, str(ROOT / "heidelberg_unite_datasets.py"), "--dataset", "ssc", "--data-dir", str(tmp_path)]
    r = subprocess.run(script, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"({NB_CLASSES * 12} train + {NB_CLASSES * 4} valid + {NB_CLASSES * 4} test)" in r.stdout
    r = subprocess.run(script, capture_output=True, text=True)  # never overwritten without --force
    assert r.returncode == 2 and "already exists; pass --force" in r.stderr and "Traceback" not in r.stderr


def _served(paths: dict[str, Path]) -> dict[str, bytes]:
    files = {f"{p.name}.gz": gzip.compress(p.read_bytes(), mtime=0) for p in paths.values()}
    files["md5sums.txt"] = "".join(f"{hashlib.md5(v).hexdigest()}  {k}\n" for k, v in files.items()).encode()
    return files


def test_download_checks_every_file_and_names_the_data_ssc(tmp_path):
    files = _served(write_ssc(tmp_path / "originals"))
    calls = []

    def opener(url):  # the official address, answered here: no network
        calls.append(url)
        name = url[len(DEFAULT_BASE_URL):]
        if name not in files:
            raise urllib.error.URLError("no such file")
        return io.BytesIO(files[name])

    data_dir = tmp_path / "data"
    paths = ensure_files(data_dir, "ssc", opener=opener, progress=False)
    assert [p.name for p in paths] == ["ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"]
    assert calls == [DEFAULT_BASE_URL + n for n in ("md5sums.txt", "ssc_train.h5.gz", "ssc_valid.h5.gz",
                                                    "ssc_test.h5.gz")]
    assert DEFAULT_BASE_URL == OFFICIAL_URL
    merged = merge_folder(data_dir, "ssc")
    assert load_dataset(merged).label == "SSC"  # verified against the official checksums
    assert ensure_files(data_dir, "ssc", opener=None, progress=False) == paths  # present: no network at all


def test_download_refuses_a_corrupt_file_and_a_missing_checksum(tmp_path):
    files = _served(write_ssc(tmp_path / "originals"))
    bad = dict(files, **{"ssc_valid.h5.gz": files["ssc_valid.h5.gz"][:-10]})
    with pytest.raises(DataError, match=r"ssc_valid\.h5\.gz: MD5 checksum mismatch"):
        ensure_files(tmp_path / "a", "ssc", base_url="mirror://x/", opener=lambda u: io.BytesIO(bad[u[11:]]),
                     progress=False)
    assert not (tmp_path / "a" / "ssc_valid.h5").exists() and not list((tmp_path / "a").glob("*.tmp*"))
    unlisted = dict(files, **{"md5sums.txt": b"".join(line + b"\n" for line in files["md5sums.txt"].splitlines()
                                                      if b"ssc_test" not in line)})
    with pytest.raises(DataError, match=r"ssc_test\.h5\.gz is not listed in mirror://x/md5sums\.txt"):
        ensure_files(tmp_path / "b", "ssc", base_url="mirror://x/", opener=lambda u: io.BytesIO(unlisted[u[11:]]),
                     progress=False)
    assert not list((tmp_path / "b").iterdir())  # checked before anything was downloaded


def test_official_split_takes_validation_from_the_validation_file(ssc):
    ds = load_shd(ssc)
    split = make_split("class_incremental", 7, ds.labels, ds.speakers, ds.source, "official", seed=0)
    for group in ("pretrain", "new"):
        for part, code in (("train", 0), ("valid", 2), ("test", 1)):
            idx = split[f"{group}_{part}"]
            assert len(idx) and (ds.source[idx] == code).all()
    assert (ds.labels[split["new_valid"]] == 7).all() and (ds.labels[split["pretrain_valid"]] != 7).all()
    assert len(split["pretrain_valid"]) + len(split["new_valid"]) == int((ds.source == 2).sum())
    with pytest.raises(ConfigError, match="has its own validation file: use --split official"):
        make_split("class_incremental", 7, ds.labels, ds.speakers, ds.source, "official_valid", seed=0)


@pytest.mark.parametrize("kind", ["paper", "official"])
def test_carved_validation_keeps_the_test_set_and_comes_from_training(tmp_path, kind):
    """SHD has no validation file: ``*_valid`` carves one from each group's training samples, stratified."""
    from tests.test_any_layout import write_pair

    ds = load_shd(write_pair(tmp_path, 10, range(6), reps=5))
    base = make_split("progressive", None, ds.labels, ds.speakers, ds.source, kind, seed=3, classes_per_step=2)
    carved = make_split("progressive", None, ds.labels, ds.speakers, ds.source, f"{kind}_valid", seed=3,
                        classes_per_step=2)
    assert not base.has_validation and carved.has_validation
    for name in base.sets:
        if "_test" in name:
            np.testing.assert_array_equal(np.sort(base[name]), np.sort(carved[name]))
        else:
            valid = carved[name.replace("_train", "_valid")]
            assert sorted(np.r_[carved[name], valid]) == sorted(base[name])
            assert len(valid) == int(np.floor(VALID_FRACTION * len(base[name]) + 0.5))
            assert set(ds.labels[valid]) == set(ds.labels[base[name]])  # stratified: every class of the group


@pytest.fixture(scope="module")
def ssc_runs(ssc, tmp_path_factory):
    """Pretraining and two runs on the tiny SSC, official split: progressive in tasks of 5 keywords."""
    ds, out = load_dataset(ssc), tmp_path_factory.mktemp("runs")
    common = dict(split="official", seed=0, epochs=2, batch_size=8, quiet=True)
    pre = pretrain(PretrainConfig("progressive", None, first_classes=tuple(range(25)), classes_per_step=5, **common),
                   ds, out)
    folders = {s: run(RunConfig.of("progressive", s, first_classes=tuple(range(25)), classes_per_step=5,
                                latent_depth=1 if s == "latent_replay" else None, replay_batches=1, **common), ds, out)
               for s in ("naive", "latent_replay")}
    return pre, folders


def test_pretraining_logs_validation_accuracy(ssc_runs):
    rows = read_csv(ssc_runs[0] / "epochs.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(0 <= float(r["valid_acc"]) <= 1 for r in rows)


def test_the_best_epoch_is_chosen_on_validation(ssc_runs):
    for folder in ssc_runs[1].values():
        summary = read_json(folder / "summary.json")
        assert [t["name"] for t in summary["tasks"]] == ["classes 0-24", "classes 25-29", "classes 30-34"]
        rows = [r for r in read_csv(folder / "epochs.csv") if r["task"] == "2" and r["epoch"] != "0"]
        best = max(rows, key=lambda r: float(r["valid_all_acc"]))
        assert summary["best"]["selected_on"] == "valid" and summary["best"]["epoch"] == int(best["epoch"])
        assert summary["best"]["all_acc"] == float(best["all_acc"])  # its test accuracy, reported, not chosen on
        matrix = summary["valid_accuracy_matrix"]
        assert len(matrix) == 3 and all(len(r) == 3 for r in matrix)
        assert set(summary["valid_metrics"]) == set(summary["metrics"])


def test_without_validation_the_best_epoch_is_chosen_on_test_and_says_so(tmp_path):
    from tests.test_any_layout import write_pair

    ds = load_dataset(write_pair(tmp_path / "data", 4, range(3), reps=3))
    common = dict(split="paper", seed=0, epochs=1, batch_size=8, quiet=True)
    pretrain(PretrainConfig("class_incremental", 1, **common), ds, tmp_path / "out")
    folder = run(RunConfig.of("class_incremental", "naive", held_out=1, **common), ds, tmp_path / "out")
    summary = read_json(folder / "summary.json")
    assert summary["best"]["selected_on"] == "test" and "valid_accuracy_matrix" not in summary
    assert "valid_all_acc" not in read_csv(folder / "epochs.csv")[0]


def test_a_sweep_passes_max_time_to_the_pretraining_it_starts(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sccl.cli.cl_sweep", "--scenario", "progressive", "--strategies", "naive",
                        "--data-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path / "runs"), "--max-time",
                        "auto", "--dry-run"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    pretrain, run_line = [line for line in r.stdout.splitlines() if "would run" in line]
    assert "statedicts/pretrain.py" in pretrain and pretrain.endswith("--max-time auto")
    assert "--max-time" not in run_line  # a run bins as its pretraining did


def test_batches_too_large_to_hold_are_built_one_at_a_time_with_the_same_result(tmp_path, monkeypatch):
    """SSC's training file does not fit in memory as built batches: over the budget they are built when used."""
    import torch

    import sccl.learn.training
    from sccl.learn.training import LazyBatches, input_batches
    from tests.test_any_layout import write_pair

    ds = load_dataset(write_pair(tmp_path / "data", 4, range(3), reps=4))
    index = [np.arange(8), np.arange(8, 16)]
    assert isinstance(input_batches(ds, index, "cpu"), list)
    lazy = input_batches(ds, index, "cpu", budget=0)
    assert isinstance(lazy, LazyBatches) and len(lazy) == 2 and len(list(lazy)) == 2  # re-iterable
    weights = {}
    for budget in (None, 0):
        if budget is not None:
            monkeypatch.setattr(sccl.learn.training, "BATCH_MEMORY_BYTES", budget)
        folder = pretrain(PretrainConfig("class_incremental", 1, epochs=2, batch_size=8, quiet=True), ds,
                          tmp_path / f"out{budget}")
        weights[budget] = torch.load(folder / "model.pt", weights_only=True)
        rows = read_csv(folder / "epochs.csv")
    assert all(torch.equal(weights[None][k], weights[0][k]) for k in weights[None])
    assert len(rows) == 2


def test_binning_straight_from_the_file_equals_binning_the_loaded_spikes(ssc):
    from sccl.data.hdf5 import bin_spikes, load_binned

    data = load_shd(ssc)
    streamed = load_binned(ssc, nb_steps=50, max_time=0.9, use_cache=False, nb_units=700)
    loaded = bin_spikes(data.times, data.units, 50, 0.9, nb_units=700)
    for name in ("offsets", "steps", "units", "counts"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(loaded, name))
    assert streamed.dropped == loaded.dropped > 0
