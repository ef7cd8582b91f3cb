"""Real recordings -> SHD-layout spikes: the built-in cochlea (place map, silence, resampling), the
``python -m sccl.audio`` converter (errors, files that merge and load), the calibration against lauscher, and
the fast cochlea against the reference implementation (filterbank to float rounding, hair cell and spikes
exactly, with both engines). The converter's resume, sample-rate rule and hostile inputs: test_audio_converter.py."""

import time

import numpy as np
import pytest
from scipy.io import wavfile

from sccl.audio import cochlea_reference as reference
from sccl.audio.cochlea import (SpikeGenParams, basilar_membrane, channel_of, cochlea, compiled_available, hair_cell,
                                place_map, prepare, spikes_from_velocity)
from sccl.audio.convert import main as audio_main, resample
from sccl.core.entry import run_cli


N_CH = 700


def tone(freq, fs, dur=0.2, amp=0.5):
    t = np.arange(int(fs * dur)) / fs
    return amp * np.sin(2 * np.pi * freq * t)


def vowel(fs, dur=0.2, f0=140.0, formants=((700, 130), (1220, 70), (2600, 160))):
    """Harmonics of f0 under three formant resonances: an /a/-like vowel."""
    t = np.arange(int(fs * dur)) / fs
    x = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        f = k * f0
        gain = sum(1.0 / (1 + ((f - F) / B) ** 2) for F, B in formants) + 0.02
        x += gain * np.sin(2 * np.pi * f * t + 0.3 * k)
    return x


def histogram(units, group=1):
    h = np.bincount(units, minlength=N_CH)
    return h.reshape(-1, group).sum(1) if group > 1 else h


def peak_channel(units, width=9):
    return int(np.argmax(np.convolve(histogram(units), np.ones(width), "same")))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_tone_excites_the_place_map_channel(freq):
    _, units = cochlea(tone(freq, 48000), 48000, seed=0)
    assert abs(peak_channel(units) - channel_of(freq)) <= 6


def test_silence_gives_only_background_spikes():
    times, units = cochlea(np.zeros(9600), 48000, seed=0)
    rate_per_channel = len(times) / 0.2 / N_CH
    assert rate_per_channel < 3.0  # Hz: the spontaneous activity only
    _, driven = cochlea(tone(1000.0, 48000), 48000, seed=0)
    assert len(driven) > 3 * len(times)


def test_same_peak_channel_from_any_input_rate():
    peaks = []
    for fs in (22050, 48000):
        x = resample(tone(1500.0, fs), fs, 48000)
        peaks.append(peak_channel(cochlea(x, 48000, seed=0)[1]))
    assert abs(peaks[0] - peaks[1]) <= 2


def test_deterministic_for_a_seed():
    a = cochlea(tone(800.0, 16000, 0.1), 16000, seed=3)
    b = cochlea(tone(800.0, 16000, 0.1), 16000, seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def write_recordings(folder, fs=22050, speakers=("anna", "ben", "carl"), labels=(0, 1)):
    folder.mkdir(parents=True, exist_ok=True)
    for s, speaker in enumerate(speakers):
        for label in labels:
            x = tone(400.0 * (label + 1) + 37 * s, fs, dur=0.1)
            wavfile.write(folder / f"{speaker}_{label}_0.wav", fs, (x * 32000).astype(np.int16))
    (folder / "notes.txt").write_text("not audio")


PATTERN = r"(?P<speaker>[a-z]+)_(?P<label>\d+)_\d+\.wav"


def test_label_rule_matching_nothing_is_one_line_error(tmp_path, capsys):
    write_recordings(tmp_path / "rec")
    out = tmp_path / "out"
    code = run_cli(audio_main, ["--input", str(tmp_path / "rec"), "--labels", r"(?P<speaker>\d+)-(?P<label>\w+)\.wav",
                                "--out-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "matches none" in err and "Traceback" not in err
    assert not list(out.glob("*.h5"))


@pytest.mark.parametrize("args, message", [
    (["--labels", r"(?P<label>\d+)\.wav"], "named groups"),
    (["--labels", PATTERN, "--test-speakers", "zed"], "no such speaker"),
])
def test_bad_rules_are_one_line_errors(tmp_path, capsys, args, message):
    write_recordings(tmp_path / "rec")
    code = run_cli(audio_main, ["--input", str(tmp_path / "rec"), "--out-dir", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_empty_folder_and_unreadable_file(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli(audio_main, ["--input", str(tmp_path / "empty"), "--labels", PATTERN,
                                "--out-dir", str(tmp_path / "out")]) == 2
    assert "no .wav" in capsys.readouterr().err
    write_recordings(tmp_path / "rec")
    (tmp_path / "rec" / "ben_1_0.wav").write_bytes(b"RIFF garbage")
    assert run_cli(audio_main, ["--input", str(tmp_path / "rec"), "--labels", PATTERN,
                                "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "ben_1_0.wav" in err and "not a readable audio file" in err and len(err.splitlines()) == 1
    assert not list((tmp_path / "out").glob("*.h5"))


def test_converted_files_validate_merge_and_load(tmp_path):
    from sccl.data.hdf5 import load_shd
    from sccl.data.merge import ensure_merged
    from sccl.learn.training import load_dataset

    write_recordings(tmp_path / "rec")
    out = tmp_path / "out"
    assert run_cli(audio_main, ["--input", str(tmp_path / "rec"), "--labels", PATTERN, "--out-dir", str(out),
                                "--workers", "2", "--seed", "1"]) == 0
    train, test = load_shd(out / "shd_train.h5"), load_shd(out / "shd_test.h5")
    assert len(train) == 4 and len(test) == 2  # speakers anna, ben train; carl (the last fifth, rounded up) test
    assert set(test.speakers) == {2} and set(train.speakers) == {0, 1}
    assert [k.decode() for k in train.keys] == ["0", "1"]
    assert all(len(t) > 0 for t in train.times)
    dataset = load_dataset(ensure_merged(out, quiet=True))
    assert len(dataset.labels) == 6


def test_csv_rule_and_explicit_test_speakers(tmp_path):
    from sccl.data.hdf5 import load_shd

    write_recordings(tmp_path / "rec", speakers=("anna", "ben"))
    table = tmp_path / "labels.csv"
    table.write_text("path,label,speaker\nanna_0_0.wav,yes,anna\nanna_1_0.wav,no,anna\nben_0_0.wav,yes,ben\n")
    out = tmp_path / "out"
    assert run_cli(audio_main, ["--input", str(tmp_path / "rec"), "--labels", str(table), "--out-dir", str(out),
                                "--name", "mine", "--test-speakers", "anna"]) == 0
    test = load_shd(out / "mine_test.h5")
    assert len(test) == 2 and [k.decode() for k in test.keys] == ["no", "yes"]


def test_builtin_cochlea_matches_lauscher_on_a_vowel(capsys):
    pytest.importorskip("lauscher")
    from sccl.audio.convert import lauscher_spikes

    fs = 16000  # lauscher takes ~2 min per second of audio at 16 kHz; 0.2 s keeps the test short
    x = vowel(fs)
    start = time.time()
    _, units_l = lauscher_spikes(x, fs, N_CH, seed=0)
    mid = time.time()
    _, units_b = cochlea(x, fs, seed=0)
    end = time.time()
    hl, hb = histogram(units_l), histogram(units_b)
    ratio = hb.sum() / hl.sum()
    active = [(np.flatnonzero(h > 0).min(), np.flatnonzero(h > 0).max()) for h in (hl, hb)]
    # 0.2 s gives ~4 spikes a channel: correlate bands of 10 channels, where Poisson noise stays small
    corr = np.corrcoef(histogram(units_l, 10), histogram(units_b, 10))[0, 1]
    with capsys.disabled():
        print(f"\nlauscher {len(units_l)} spikes in {mid - start:.1f} s, builtin {len(units_b)} in {end - mid:.2f} s:"
              f" ratio {ratio:.3f}, active {active}, band correlation {corr:.3f}")
    assert 0.85 <= ratio <= 1.15
    assert abs(active[0][0] - active[1][0]) <= 10 and abs(active[0][1] - active[1][1]) <= 10
    assert corr >= 0.9


# ----------------------------------------------------------------------------------------------
# the fast cochlea against the reference (the first implementation, kept in sccl.audio.cochlea_reference)

ENGINES = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not compiled_available(),
                                                                    reason="numba is not installed"))]


def noisy_vowel(fs, dur, seed=0, loud=1.0):
    x = vowel(fs, dur) + 0.3 * np.random.default_rng(seed).standard_normal(int(fs * dur))
    return loud * x * (1 + np.sin(2 * np.pi * 9 * np.arange(len(x)) / fs))  # amplitude modulated: onsets, pauses


@pytest.mark.parametrize("n, fs", [(4800, 48000), (4801, 48000), (1603, 16000), (7, 48000)])
def test_filterbank_matches_the_reference(n, fs):
    x = prepare(noisy_vowel(fs, n / fs))
    cf = place_map(N_CH)
    v_new, rate_new = basilar_membrane(x, fs, cf)
    v_ref, rate_ref = reference.basilar_membrane(x, fs, cf)
    assert rate_new == rate_ref and v_new.shape == v_ref.shape
    # float rounding: 1e-9 of each channel's peak (the reference's carrier phase alone is off by ~1e-11), plus
    # 1e-15 of the loudest channel for the bins the fast one skips (gain < 1e-30)
    channel_peak = np.abs(v_ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(v_new - v_ref) <= 1e-9 * channel_peak + 1e-15 * channel_peak.max())


def test_hair_cell_matches_the_reference_exactly():
    fs = 48000
    velocity, rate = reference.basilar_membrane(prepare(noisy_vowel(fs, 0.05, loud=3.0)), fs, place_map(N_CH))
    expected = reference.hair_cell(velocity, rate)
    assert np.array_equal(hair_cell(velocity, rate), expected)
    in_place = velocity.copy()
    assert np.array_equal(hair_cell(in_place, rate, out=in_place), expected)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fs, seed, drive_gain", [(48000, 0, 1.0), (16000, 7, 1.0), (48000, 3, 60.0)])
def test_spikes_match_the_reference_exactly(engine, fs, seed, drive_gain):
    """Same spikes as the reference for a seed: the same random stream. drive_gain 60 pushes the fibres' firing
    probability above 0.5 and keeps all fibres of a channel busy at times (numpy's other binomial branches)."""
    params = SpikeGenParams(drive_gain=drive_gain)
    x = noisy_vowel(fs, 0.06, seed=seed)
    expected = reference.cochlea(x, fs, seed=seed, spikes=params)
    got = cochlea(x, fs, seed=seed, spikes=params, engine=engine)
    assert len(expected[0]) > 50
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_spike_generator_matches_the_reference_on_one_input(engine):
    """The stochastic stage alone, from the reference's own probabilities: bit-identical spikes."""
    fs = 48000
    velocity, rate = reference.basilar_membrane(prepare(noisy_vowel(fs, 0.05, seed=2)), fs, place_map(N_CH))
    prob = reference.hair_cell(velocity, rate)
    expected = reference.bushy_cells(prob, rate, np.random.default_rng(11))
    got = spikes_from_velocity(velocity.copy(), rate, np.random.default_rng(11), engine)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_seed_gives_the_same_spikes_and_another_seed_others(engine):
    x = noisy_vowel(48000, 0.05)
    a, b = cochlea(x, 48000, seed=5, engine=engine), cochlea(x, 48000, seed=5, engine=engine)
    other = cochlea(x, 48000, seed=6, engine=engine)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert len(other[0]) != len(a[0]) or not np.array_equal(other[1], a[1])


def test_asking_for_numba_without_it_is_a_clear_error(monkeypatch):
    import sccl.audio.cochlea as module
    monkeypatch.setattr(module, "compiled_available", lambda: False)
    assert module.resolve_engine("auto") == "numpy"
    with pytest.raises(ImportError, match="pip install"):
        module.resolve_engine("numba")
    with pytest.raises(ValueError, match="engine must be one of"):
        module.resolve_engine("gpu")
