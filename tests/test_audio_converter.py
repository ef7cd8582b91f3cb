"""``python -m sccl.audio`` as a long-running job: resume after an interruption, results that do not depend on
which files are converted together, and the sample-rate rule; its hostile inputs are in tests/test_hostile.py.
Recordings are short synthetic tones made here (the helpers below are shared with that file)."""

import os

import numpy as np
import pytest
from scipy.io import wavfile

import sccl.audio.convert as audio
from sccl.core.entry import run_cli
from sccl.data.hdf5 import load_shd


PATTERN = r"(?P<speaker>[a-z]+)_(?P<label>\d+)_\d+\.wav"
FS = 48000
CONVERT_ONE = audio.convert_one  # the real one, before any test replaces it


def tone(freq, fs=FS, dur=0.05):
    t = np.arange(int(fs * dur)) / fs
    return 0.5 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))


def write(path, x, fs=FS):
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, fs, (np.asarray(x) * 32000).astype(np.int16))


def corpus(folder, speakers=("anna", "ben", "carl"), labels=(0, 1), fs=FS):
    for s, speaker in enumerate(speakers):
        for label in labels:
            write(folder / f"{speaker}_{label}_0.wav", tone(500.0 * (label + 1) + 61 * s, fs), fs)
    return folder


def convert(rec, out, *extra):
    return run_cli(audio.main, ["--input", str(rec), "--labels", PATTERN, "--out-dir", str(out), *extra])


def spike_files(out):
    return {part: load_shd(out / f"shd_{part}.h5") for part in ("train", "test")}


def same_files(out_a, out_b):
    for part in ("train", "test"):
        a, b = load_shd(out_a / f"shd_{part}.h5"), load_shd(out_b / f"shd_{part}.h5")
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.speakers, b.speakers)
        assert all(np.array_equal(x, y) for x, y in zip(a.times, b.times))
        assert all(np.array_equal(x, y) for x, y in zip(a.units, b.units))
        assert (out_a / f"shd_{part}.h5").read_bytes() == (out_b / f"shd_{part}.h5").read_bytes()


def one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def nothing_written(out):
    assert not out.exists() or not any(out.iterdir())


class Interrupt(RuntimeError):
    pass


def counting_convert_one(monkeypatch, fail_after=None):
    """Count the recordings converted (and raise after ``fail_after`` of them)."""
    calls = []

    def convert_one(job):
        if fail_after is not None and len(calls) == fail_after:
            raise Interrupt("killed")
        calls.append(job.path.name)
        return CONVERT_ONE(job)

    monkeypatch.setattr(audio, "convert_one", convert_one)
    return calls


# ----------------------------------------------------------------------------------------------
# resume


def test_an_interrupted_run_resumes_with_only_the_rest(tmp_path, monkeypatch, capsys):
    rec = corpus(tmp_path / "rec")
    assert convert(rec, tmp_path / "whole") == 0
    out = tmp_path / "out"
    counting_convert_one(monkeypatch, fail_after=4)
    with pytest.raises(Interrupt):
        convert(rec, out)
    store = out / "shd.partial"
    assert len(list(store.glob("*.npz"))) == 4 and not list(out.glob("*.h5"))
    calls = counting_convert_one(monkeypatch)
    capsys.readouterr()
    assert convert(rec, out) == 0
    assert len(calls) == 2  # 6 recordings, 4 kept
    assert "resuming: 4 of 6 recordings already converted" in capsys.readouterr().err
    same_files(out, tmp_path / "whole")
    assert sorted(p.name for p in out.iterdir()) == ["shd_test.h5", "shd_train.h5"]  # no partial or temporary files


def test_ctrl_c_keeps_the_converted_recordings(tmp_path, monkeypatch, capsys):
    rec = corpus(tmp_path / "rec")
    calls = []

    def interrupted(job):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(job)
        return CONVERT_ONE(job)

    monkeypatch.setattr(audio, "convert_one", interrupted)
    assert convert(rec, tmp_path / "out") == 130
    assert "rerun the same command" in capsys.readouterr().err
    assert len(list((tmp_path / "out" / "shd.partial").glob("*.npz"))) == 2


def test_leftovers_of_a_killed_run_are_cleaned_and_changed_files_converted_again(tmp_path, monkeypatch):
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"), labels=(0,))
    out = tmp_path / "out"
    counting_convert_one(monkeypatch, fail_after=1)
    with pytest.raises(Interrupt):
        convert(rec, out)
    store = out / "shd.partial"
    dead = store / f"{'0' * 32}.npz.tmp{2**22 + 12345}"  # above Linux's largest pid: its process is gone
    live = store / f"{'1' * 32}.npz.tmp{os.getpid()}"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    audio.remove_dead_temporaries(store)
    assert not dead.exists() and live.exists()
    write(rec / "anna_0_0.wav", tone(3000.0))  # the kept recording changed: its result is stale
    calls = counting_convert_one(monkeypatch)
    assert convert(rec, out) == 0
    assert sorted(calls) == ["anna_0_0.wav", "ben_0_0.wav"]
    assert not store.exists()


# ----------------------------------------------------------------------------------------------
# a recording's spikes depend on it, its path and the seed only


def test_spikes_do_not_depend_on_the_other_files_or_the_workers(tmp_path):
    rec = corpus(tmp_path / "rec")
    assert convert(rec, tmp_path / "one", "--seed", "4") == 0
    assert convert(rec, tmp_path / "two", "--seed", "4", "--workers", "2") == 0
    same_files(tmp_path / "one", tmp_path / "two")
    few = tmp_path / "few"  # two of the six recordings, same names
    few.mkdir()
    for name in ("anna_1_0.wav", "carl_0_0.wav"):
        (few / name).write_bytes((rec / name).read_bytes())
    assert convert(few, tmp_path / "alone", "--seed", "4") == 0
    full, alone = spike_files(tmp_path / "one"), spike_files(tmp_path / "alone")
    for part, i_full, i_alone in (("train", 1, 0), ("test", 0, 0)):  # anna_1 (train), carl_0 (test)
        assert np.array_equal(full[part].times[i_full], alone[part].times[i_alone])
        assert np.array_equal(full[part].units[i_full], alone[part].units[i_alone])
    assert convert(rec, tmp_path / "other", "--seed", "5") == 0
    other = spike_files(tmp_path / "other")
    assert any(len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(full["train"].units, other["train"].units))


def test_the_numpy_engine_writes_the_same_files(tmp_path):
    pytest.importorskip("numba")
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"))
    assert convert(rec, tmp_path / "numba", "--engine", "numba") == 0
    assert convert(rec, tmp_path / "numpy", "--engine", "numpy") == 0
    same_files(tmp_path / "numba", tmp_path / "numpy")


# ----------------------------------------------------------------------------------------------
# sample rates


def test_a_low_cochlea_rate_is_refused_in_one_line(tmp_path, capsys):
    rec = corpus(tmp_path / "rec")
    assert convert(rec, tmp_path / "out", "--sample-rate", "8000") == 2
    line = one_error_line(capsys, "--sample-rate 8000 Hz is below", "--allow-low-rate")
    assert "channels cannot be driven" in line
    nothing_written(tmp_path / "out")


def test_allow_low_rate_converts_with_one_warning(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"), labels=(0,))
    assert convert(rec, tmp_path / "out", "--sample-rate", "16000", "--allow-low-rate") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "16000 Hz" in warnings[0]
    assert load_shd(tmp_path / "out" / "shd_train.h5").attrs["sample_rate"] == 16000


def test_low_rate_files_are_converted_with_one_warning(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", speakers=("anna", "ben"), labels=(0,))
    write(rec / "anna_0_0.wav", tone(500.0, 16000), 16000)
    assert convert(rec, tmp_path / "out") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 of 2 files" in warnings[0] and "anna_0_0.wav" in warnings[0]
