"""The offline SHD-format generator (sccl.data.offline): layout, split, determinism, safe writing, CLI."""

import h5py
import numpy as np
import pytest

from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError, DataError
from sccl.data import offline
from sccl.data.hdf5 import MAX_TIME, NB_UNITS, bin_spikes, load_shd


ALL_KEYS = (
    "spikes/times", "spikes/units", "labels", "extra/speaker", "extra/keys",
    "extra/meta_info/gender", "extra/meta_info/age", "extra/meta_info/body_height",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny0")
    return offline.generate_dataset(out, size="tiny", seed=0)


def _arrays(path):
    with h5py.File(path, "r") as f:
        return (f["spikes/times"][:], f["spikes/units"][:], f["labels"][:], f["extra/speaker"][:])


def _same(a, b):
    ta, ua, la, sa = a
    tb, ub, lb, sb = b
    if len(ta) != len(tb) or not (np.array_equal(la, lb) and np.array_equal(sa, sb)):
        return False
    return all(np.array_equal(x, y) for x, y in zip(ta, tb)) and all(np.array_equal(x, y) for x, y in zip(ua, ub))


def test_layout(tiny):
    for path in tiny:
        with h5py.File(path, "r") as f:
            for key in ALL_KEYS:
                assert key in f, key
                assert f[key].maxshape == (None,), key  # resizable, as the merge script needs
            assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
            assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
            assert len(f["extra/meta_info/gender"]) == 12
            assert len(f["extra/meta_info/age"]) == 12
            assert len(f["extra/meta_info/body_height"]) == 12
            assert len(f["extra/keys"]) == 20
            times, units, labels = f["spikes/times"][:], f["spikes/units"][:], f["labels"][:]
        assert len(times) == len(units) == len(labels) > 0
        for t, u in zip(times, units):
            assert t.dtype == np.float16 and u.dtype == np.uint16 and len(t) == len(u) > 0
            assert t.min() >= 0 and t.max() < MAX_TIME
            assert np.all(np.diff(t.astype(np.float64)) >= 0)  # sorted in time
            assert u.max() < NB_UNITS
        assert labels.min() >= 0 and labels.max() <= 19
        assert (labels < 10).any() and (labels >= 10).any()


def test_split_and_counts(tiny):
    train, test = (load_shd(p) for p in tiny)
    assert set(np.unique(train.speakers)) == set(range(12)) - {4, 5}
    assert {4, 5} <= set(np.unique(test.speakers))
    assert len(train) + len(test) == 12 * 20  # tiny: one repetition per (speaker, word)
    assert (np.isin(test.speakers, (4, 5))).sum() == 40
    assert set(np.unique(np.concatenate([train.labels, test.labels]))) == set(range(20))
    for d in (train, test):  # load_shd accepted it; the SNN binning drops nothing
        assert bin_spikes(d.times, d.units).dropped == 0
    counts = np.concatenate([train.spike_counts, test.spike_counts])
    assert 4000 < counts.mean() < 14000  # SHD-like: roughly 7-9k spikes per sample


def test_sample_plan_sizes():
    for size, (n_train, n_test) in {"shd": (8156, 2264), "demo": (1517, 403), "tiny": (190, 50)}.items():
        plan = offline.sample_plan(size)
        is_test = np.array([p[3] for p in plan])
        assert ((is_test == 0).sum(), (is_test == 1).sum()) == (n_train, n_test), size
        spk = np.array([p[0] for p in plan])
        assert np.all(is_test[np.isin(spk, (4, 5))] == 1)
    assert len(offline.sample_plan("demo", reps=3)) == 12 * 20 * 3


def test_attributes(tiny):
    for path, split in zip(tiny, ("train", "test")):
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
        assert "not SHD" in attrs["description"] and "synthetic" in attrs["description"]
        assert attrs["seed"] == 0 and attrs["size"] == "tiny" and attrs["split"] == split
        assert attrs["generator_version"] == offline.GENERATOR_VERSION
        assert attrs["numpy_version"] == np.__version__


def test_deterministic_and_order_independent(tiny, tmp_path):
    again = offline.generate_dataset(tmp_path, size="tiny", seed=0, workers=2)  # two processes: same bytes
    for a, b in zip(tiny, again):
        assert _same(_arrays(a), _arrays(b))
        assert a.read_bytes() == b.read_bytes()  # h5py stores no timestamps: the files are byte-identical
    # each sample comes from its own RNG: generating it alone gives the same spikes
    times, units, labels, speakers = _arrays(tiny[0])
    for i in (0, 7, len(labels) - 1):
        t, u = offline.make_sample(int(speakers[i]), int(labels[i]), 0, seed=0)
        assert np.array_equal(t.astype(np.float16), times[i]) and np.array_equal(u, units[i])


def test_different_seed_differs():
    for speaker, label in ((0, 3), (5, 17)):
        t0, u0 = offline.make_sample(speaker, label, 0, seed=0)
        t1, u1 = offline.make_sample(speaker, label, 0, seed=1)
        assert len(t0) != len(t1) or not np.array_equal(u0, u1)
    t0, _ = offline.make_sample(2, 9, 0, seed=0)
    t1, _ = offline.make_sample(2, 9, 1, seed=0)
    assert len(t0) != len(t1) or not np.array_equal(t0, t1)


def test_refuses_to_overwrite_then_force_via_cli(tiny, tmp_path, capsys):
    before = _arrays(tiny[0])
    with pytest.raises(DataError, match="refusing to overwrite"):
        offline.generate_dataset(tiny[0].parent, size="tiny", seed=1)
    assert _same(_arrays(tiny[0]), before)
    # the command line reports the same refusal as one error line with exit status 2
    assert run_cli(offline.main, ["--out-dir", str(tiny[0].parent), "--size", "tiny"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    # an existing (here: junk) file is replaced with --force
    (tmp_path / offline.TRAIN_NAME).write_bytes(b"junk")
    with pytest.raises(DataError):
        offline.generate_dataset(tmp_path, size="tiny")
    assert run_cli(offline.main, ["--out-dir", str(tmp_path), "--size", "tiny", "--seed", "1", "--force"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and offline.TEST_NAME in out
    new = _arrays(tmp_path / offline.TRAIN_NAME)
    assert not _same(new, before)  # another seed gives other data
    load_shd(tmp_path / offline.TEST_NAME)
    assert sorted(p.name for p in tmp_path.iterdir()) == [offline.TEST_NAME, offline.TRAIN_NAME]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(offline, "make_sample", lambda s, w, r, seed=0: (np.array([0.1, 0.2]), np.array([1, 2])))
    real_write = offline.write_shd
    calls = []

    def write_then_interrupt(path, data, attrs=None):
        calls.append(path)
        if len(calls) == 2:  # the train file is written, the test file is interrupted half way
            real_write(path, data, attrs)
            raise KeyboardInterrupt
        real_write(path, data, attrs)

    monkeypatch.setattr(offline, "write_shd", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        offline.generate_dataset(tmp_path, size="tiny")
    assert len(calls) == 2 and all(".tmp" in p.name for p in calls)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="unknown size"):
        offline.generate_dataset(tmp_path, size="huge")
    with pytest.raises(ConfigError, match="reps"):
        offline.generate_dataset(tmp_path, size="tiny", reps=0)
    with pytest.raises(ConfigError, match="seed"):
        offline.generate_dataset(tmp_path, size="tiny", seed=-1)
    assert list(tmp_path.iterdir()) == []
    assert run_cli(offline.main, ["--out-dir", str(tmp_path), "--reps", "0"]) == 2
    with pytest.raises(SystemExit) as exc:
        offline.main(["--help"])
    assert exc.value.code == 0
