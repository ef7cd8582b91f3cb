"""The built-in cochlea against lauscher on speech: every word of the espeak-ng corpus (sccl.audio.speech_corpus)
within 15 % of lauscher's spike count and >= 0.9 correlation of the spikes per band of 10 channels (the measure
of tests/test_audio.py's vowel calibration). lauscher's numbers come from tests/golden/lauscher_speech.json,
made by tests/golden/make_lauscher_speech.py, which also stores the corpus's samples: the fast tests need
neither lauscher nor espeak-ng. Two slower checks recompute what the golden file holds where the tools are
installed: the corpus from espeak-ng, and lauscher's spikes on the shortest word."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from sccl.audio.cochlea import cochlea
from sccl.audio.speech_corpus import as_waveform, corpus_sha256, decode_pcm, espeak_available, make_corpus


GOLDEN = json.loads((Path(__file__).parent / "golden" / "lauscher_speech.json").read_text())
WORDS = list(GOLDEN["words"])
RATE, N_CH, BAND, SEED = GOLDEN["rate"], GOLDEN["n_channels"], GOLDEN["band"], GOLDEN["seed"]


def golden_corpus() -> dict[str, np.ndarray]:
    return {word: decode_pcm(entry["samples"]) for word, entry in GOLDEN["words"].items()}


def band_counts(units: np.ndarray) -> np.ndarray:
    return np.bincount(units, minlength=N_CH).reshape(-1, BAND).sum(1)


def test_golden_corpus_is_the_one_lauscher_was_run_on():
    assert len(WORDS) >= 5
    assert corpus_sha256(golden_corpus()) == GOLDEN["corpus_sha256"]


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (pip install espeakng-loader==0.2.4): "
                                                   "the golden file's stored corpus is used without this check")
def test_corpus_maker_still_makes_the_golden_corpus():
    made = make_corpus(WORDS, GOLDEN["voice"])
    assert corpus_sha256(made) == GOLDEN["corpus_sha256"], (
        "sccl.audio.speech_corpus now makes another corpus (another espeak-ng build or a changed maker): rerun "
        "python -m tests.golden.make_lauscher_speech")


@pytest.mark.parametrize("word", WORDS)
def test_builtin_cochlea_matches_lauscher_on_a_word(word, capsys):
    pcm = decode_pcm(GOLDEN["words"][word]["samples"])
    _, units = cochlea(as_waveform(pcm), RATE, N_CH, seed=SEED)
    lauscher_bands = np.asarray(GOLDEN["words"][word]["band_counts"])
    builtin_bands = band_counts(units)
    ratio = builtin_bands.sum() / lauscher_bands.sum()
    corr = np.corrcoef(lauscher_bands, builtin_bands)[0, 1]
    with capsys.disabled():
        print(f"\n{word}: lauscher {lauscher_bands.sum()} spikes, builtin {builtin_bands.sum()}: ratio {ratio:.3f}, "
              f"band correlation {corr:.3f}")
    assert 0.85 <= ratio <= 1.15
    assert corr >= 0.9


def test_lauscher_reproduces_its_golden_entry(capsys):
    """lauscher draws from numpy's global generator, seeded: the same spikes on a rerun, up to float rounding
    that differs between machines (a threshold crossing or two)."""
    pytest.importorskip("lauscher")
    from sccl.audio.convert import lauscher_spikes

    word = min(WORDS, key=lambda w: len(decode_pcm(GOLDEN["words"][w]["samples"])))
    start = time.time()
    _, units = lauscher_spikes(as_waveform(decode_pcm(GOLDEN["words"][word]["samples"])), RATE, N_CH, seed=SEED)
    bands, golden = band_counts(units), np.asarray(GOLDEN["words"][word]["band_counts"])
    with capsys.disabled():
        print(f"\nlauscher on {word!r} in {time.time() - start:.0f} s: {bands.sum()} spikes, golden {golden.sum()}, "
              f"largest band difference {np.abs(bands - golden).max()}")
    assert abs(int(bands.sum()) - int(golden.sum())) <= 0.002 * golden.sum()
    assert np.abs(bands - golden).max() <= 3
