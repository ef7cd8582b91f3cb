"""SHD reading, validation errors, binning semantics and the binning cache."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from sccl.core.errors import DataError
from sccl.data.hdf5 import (MAX_TIME, NB_STEPS, bin_spikes, cache_path_for, load_binned, load_shd, load_shd_tables,
                            write_shd)
from tests.conftest import random_shd


ROOT = Path(__file__).resolve().parents[1]


def test_round_trip_keeps_every_key_and_dtype(tmp_path):
    data = random_shd(50)
    write_shd(tmp_path / "a.h5", data)
    back = load_shd(tmp_path / "a.h5")
    assert len(back) == 50
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.speakers, data.speakers)
    for a, b in zip(back.times, data.times):
        np.testing.assert_array_equal(a, b)
    assert back.times[0].dtype == np.float16 and back.units[0].dtype == np.uint16
    assert set(back.meta) == {"gender", "age", "body_height"} and len(back.keys) == 20
    with h5py.File(tmp_path / "a.h5") as f:
        assert f["spikes/times"].maxshape == (None,) and f["labels"].maxshape == (None,)


def _bad_file(tmp_path, patch):
    path = tmp_path / "bad.h5"
    write_shd(path, random_shd(30))
    with h5py.File(path, "a") as f:
        patch(f)
    return path


def _set_sample(f, key, i, value):
    f[key][i] = value


@pytest.mark.parametrize(
    "patch, expected",
    [
        (lambda f: f.__delitem__("extra/speaker"), "missing key 'extra/speaker'"),
        (lambda f: f.__delitem__("spikes/times"), "missing key 'spikes/times'"),
        (lambda f: _set_sample(f, "spikes/units", 7, np.array([1, 2], np.uint16)), "differ in length in sample 7"),
        (lambda f: _set_sample(f, "spikes/units", 3, np.full(len(f["spikes/times"][3]), 700, np.uint16)),
         "unit 700 outside [0, 700) in sample 3"),
        (lambda f: _set_sample(f, "spikes/times", 5, np.r_[-0.5, f["spikes/times"][5][1:]].astype(np.float16)),
         "negative or non-finite time (-0.5) in sample 5"),
        (lambda f: _set_sample(f, "spikes/times", 6, np.r_[np.nan, f["spikes/times"][6][1:]].astype(np.float16)),
         "negative or non-finite time (nan) in sample 6"),
        (lambda f: _set_sample(f, "labels", 9, 20), "'labels' has value 20 outside [0, 20) in sample 9"),
        (lambda f: _set_sample(f, "extra/speaker", 2, 12), "'extra/speaker' has value 12 outside [0, 12) in sample 2"),
        (lambda f: f["labels"].resize((25,)), "holds 30 samples but 'labels' holds 25"),
    ],
)
def test_validation_names_file_key_and_first_bad_sample(tmp_path, patch, expected):
    path = _bad_file(tmp_path, patch)
    with pytest.raises(DataError) as err:
        load_shd(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_shd(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_shd(tmp_path / "junk.h5")


def test_script_reports_bad_file_with_exit_2_and_no_traceback(tmp_path):
    write_shd(tmp_path / "shd_train.h5", random_shd(20))
    path = _bad_file(tmp_path, lambda f: _set_sample(f, "labels", 4, 33))
    path.rename(tmp_path / "shd_test.h5")
    r = subprocess.run([sys.executable, str(ROOT / "heidelberg_unite_datasets.py"), "--data-dir", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "shd_test.h5" in r.stderr and "sample 4" in r.stderr
    assert not (tmp_path / "shd_merged.h5").exists()


def test_binning_hand_computed_example():
    edges = np.linspace(0, MAX_TIME, NB_STEPS)  # 100 edges 1.4/99 = 14.14 ms apart
    times, units = np.empty(1, object), np.empty(1, object)
    times[0] = np.array([0.0, 0.001, 0.0141, edges[1], 1.3999, 1.4, 2.0, 0.5], np.float64)
    units[0] = np.array([3, 3, 4, 5, 9, 9, 9, 699])
    b = bin_spikes(times, units)
    dense = b.dense([0])[0]
    assert dense[0].sum() == 0                     # step 0 never receives a spike
    assert dense[1, 3] == 2                        # t = 0 s and 1 ms, one channel, one bin: a count of 2
    assert dense[1, 4] == 1                        # 14.1 ms < edge[1] = 14.14 ms: still step 1
    assert dense[2, 5] == 1                        # exactly edge[1]: step 2
    assert dense[99, 9] == 1                       # 1.3999 s: the last step
    assert dense[36, 699] == 1                     # 0.5 s: edge[35] = 0.4949 <= 0.5 < edge[36] = 0.5091
    assert b.dropped == 2                          # 1.4 s and 2.0 s are at/after max_time: dropped, counted
    assert dense.sum() == 6


def test_binning_counts_equal_reference_digitize_loop():
    data = random_shd(40, seed=3, max_time=1.6)  # some spikes past 1.4 s
    b = bin_spikes(data.times, data.units, chunk=7)
    edges = np.linspace(0, MAX_TIME, NB_STEPS)
    ref = np.zeros((40, NB_STEPS, 700))
    dropped = 0
    for i in range(40):
        for t, u in zip(data.times[i].astype(np.float64), data.units[i]):
            s = np.digitize(t, edges)
            if s >= NB_STEPS:
                dropped += 1
            else:
                ref[i, s, u] += 1
    np.testing.assert_array_equal(b.dense(np.arange(40)), ref)
    np.testing.assert_array_equal(b.dense([5, 2], time_major=True), ref[[5, 2]].transpose(1, 0, 2))
    assert b.dropped == dropped > 0
    bp, st, un, ct = b.coo([2, 5])
    assert set(bp) == {0, 1} and ct.min() >= 1


def test_binning_into_a_spike_count_bound_and_a_bound_too_small_refused(tmp_path):
    data = random_shd(40, seed=3, max_time=1.6)
    total = int(sum(len(t) for t in data.times))
    write_shd(tmp_path / "f.h5", data)
    assert load_shd_tables(tmp_path / "f.h5").nb_spikes == total  # counted by the validation
    counted = bin_spikes(data.times, data.units, chunk=7)
    bounded = bin_spikes(data.times, data.units, chunk=7, nb_spikes=total + 1000)
    for name in ("offsets", "steps", "units", "counts"):
        np.testing.assert_array_equal(getattr(bounded, name), getattr(counted, name))
    assert len(counted.units) < total  # some spikes share a bin or are dropped: fewer entries than spikes
    with pytest.raises(DataError, match="fewer than the spikes binned"):
        bin_spikes(data.times, data.units, chunk=7, nb_spikes=len(counted.units) - 1)


def test_binning_cache_reused_and_invalidated(tmp_path):
    path = tmp_path / "x.h5"
    write_shd(path, random_shd(30))
    first = load_binned(path)
    cache = cache_path_for(path, NB_STEPS, MAX_TIME)
    assert cache.is_file()
    mtime = cache.stat().st_mtime_ns
    second = load_binned(path)
    assert cache.stat().st_mtime_ns == mtime  # reused, not rewritten
    np.testing.assert_array_equal(first.units, second.units)
    other = load_binned(path, nb_steps=50)  # other parameters: another cache file
    assert cache_path_for(path, 50, MAX_TIME).is_file() and other.nb_steps == 50
    write_shd(path, random_shd(30, seed=9))  # source changed: cache rebuilt
    third = load_binned(path)
    assert not np.array_equal(third.units, first.units) or not np.array_equal(third.steps, first.steps)
    np.testing.assert_array_equal(third.dense(np.arange(30)), bin_spikes(*_tu(path)).dense(np.arange(30)))


def _tu(path):
    d = load_shd(path)
    return d.times, d.units
