"""A small fixed corpus of spoken words for calibrating the built-in cochlea against lauscher on speech.

The words are synthetic speech from espeak-ng, through the library and voice data that the pip package
``espeakng-loader`` bundles (``pip install espeakng-loader==0.2.4``), driven by a small ctypes binding. espeak-ng
keeps internal state (its noise source) from one utterance to the next, even across ``espeak_Terminate``: the
same word synthesised twice in one process gives different samples. Each word is therefore spoken by a fresh
child process (``python -m sccl.audio.speech_corpus WORD VOICE``), which makes every word deterministic on its own, for
a given espeak-ng build.

A word is trimmed to its sound (plus a short margin), resampled from espeak's 22.05 kHz to 16 kHz (the rate of
the existing vowel calibration; lauscher costs ~90 CPU-s per second of 16 kHz audio) and rounded to int16: the
corpus is those int16 samples, identified by :func:`corpus_sha256`. A different espeak-ng build may speak
differently, so the calibration data (tests/golden/lauscher_speech.json) stores the samples themselves
(:func:`encode_pcm`) and the tests need espeak only to check that the maker still makes them.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import importlib.util
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly


WORDS = ("zero", "one", "two", "three", "six", "seven")  # fricatives (z, th, s), nasals, stops, vowels
VOICE = "en-us"
CORPUS_RATE = 16000
SILENCE_LEVEL = 100  # int16 magnitude below which espeak's leading and trailing samples count as silence
MARGIN_S = 0.01  # kept either side of the sound

# espeak-ng's C API (speak_lib.h)
AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_Synth returns when the whole text is synthesised, through the callback
POS_CHARACTER = 1
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def espeak_available() -> bool:
    """Whether the espeakng-loader package (espeak-ng's library and data) is installed."""
    return importlib.util.find_spec("espeakng_loader") is not None


def _speak_in_this_process(word: str, voice: str) -> tuple[np.ndarray, int]:
    """espeak-ng's int16 samples of ``word`` and their rate. Only the first utterance of a process is
    reproducible (see the module's docstring): :func:`speak` calls this in a fresh process."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate})")
    chunks = []

    def collect(samples, count, _events):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0: go on synthesising

    callback = SYNTH_CALLBACK(collect)  # kept referenced until synthesis ends
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r}")
    text = word.encode() + b"\0"
    if lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, 0, None, None) != 0:
        raise RuntimeError(f"espeak_Synth failed on {word!r}")
    lib.espeak_Synchronize()
    lib.espeak_Terminate()
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.int16), int(rate)


def speak(word: str, voice: str = VOICE) -> tuple[np.ndarray, int]:
    """espeak-ng's int16 samples of ``word`` and their rate, spoken by a fresh process (reproducible)."""
    if not espeak_available():
        raise ImportError("speech synthesis needs espeak-ng: pip install espeakng-loader==0.2.4")
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this very module
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "sccl.audio.speech_corpus", word, voice], capture_output=True,
                          check=False, timeout=120, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"espeak-ng failed on {word!r}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    rate = int.from_bytes(done.stdout[:4], "little")
    return np.frombuffer(done.stdout[4:], dtype="<i2").astype(np.int16), rate


def to_corpus_samples(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Trim silence (keeping :data:`MARGIN_S`), resample to :data:`CORPUS_RATE`, round to int16."""

    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENCE_LEVEL)
    if len(loud) == 0:
        raise ValueError("the word is silent")
    margin = int(MARGIN_S * rate)
    x = pcm[max(0, loud[0] - margin):loud[-1] + margin + 1].astype(np.float64)
    g = np.gcd(int(rate), CORPUS_RATE)
    y = resample_poly(x, CORPUS_RATE // g, int(rate) // g)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def make_corpus(words=WORDS, voice: str = VOICE) -> dict[str, np.ndarray]:
    """Each word's int16 samples at :data:`CORPUS_RATE`, in the order of ``words``."""
    return {word: to_corpus_samples(*speak(word, voice)) for word in words}


def corpus_sha256(corpus: dict[str, np.ndarray]) -> str:
    """SHA-256 over the words in order: each word's name, sample count and little-endian int16 samples."""
    digest = hashlib.sha256()
    for word, pcm in corpus.items():
        digest.update(word.encode() + b"\0" + len(pcm).to_bytes(8, "little"))
        digest.update(np.asarray(pcm, dtype="<i2").tobytes())
    return digest.hexdigest()


def encode_pcm(pcm: np.ndarray) -> str:
    """int16 samples as compressed base64 text (for a JSON file)."""
    return base64.b64encode(zlib.compress(np.asarray(pcm, dtype="<i2").tobytes(), 9)).decode()


def decode_pcm(text: str) -> np.ndarray:
    """The inverse of :func:`encode_pcm`."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i2").astype(np.int16)


def as_waveform(pcm: np.ndarray) -> np.ndarray:
    """int16 samples as floats in [-1, 1) (what both cochleae are given)."""
    return np.asarray(pcm, dtype=np.float64) / 32768.0


if __name__ == "__main__":  # the child process of speak(): rate (4 bytes) then the samples, on stdout
    samples, sample_rate = _speak_in_this_process(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else VOICE)
    sys.stdout.buffer.write(int(sample_rate).to_bytes(4, "little") + samples.astype("<i2").tobytes())
