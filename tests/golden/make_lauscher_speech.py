"""Write tests/golden/lauscher_speech.json: lauscher's spikes on the espeak-ng word corpus (sccl.audio.speech_corpus),
as spike counts per band of channels, with the corpus itself (int16 samples) and its SHA-256.

lauscher takes ~90 CPU-s per second of 16 kHz audio (~4 min for this corpus); it draws from numpy's global
generator, seeded here, so a rerun gives the same numbers. Needs lauscher==1.0.1 and espeakng-loader:

    python -m tests.golden.make_lauscher_speech [--dump-spikes DIR]     # from the repository's root
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sccl.audio.convert import lauscher_spikes
from sccl.audio.speech_corpus import CORPUS_RATE, VOICE, as_waveform, corpus_sha256, encode_pcm, make_corpus


GOLDEN = Path(__file__).with_name("lauscher_speech.json")
N_CHANNELS, BAND, SEED = 700, 10, 0


def band_counts(units: np.ndarray) -> list[int]:
    """Spikes per band of BAND channels (channel 0 = highest frequency)."""
    return np.bincount(units, minlength=N_CHANNELS).reshape(-1, BAND).sum(1).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump-spikes", type=Path, help="also save each word's lauscher spikes here (.npz)")
    args = parser.parse_args()
    corpus = make_corpus()
    words = {}
    for word, pcm in corpus.items():
        start = time.time()
        times, units = lauscher_spikes(as_waveform(pcm), CORPUS_RATE, N_CHANNELS, seed=SEED)
        print(f"{word}: {len(units)} spikes, {len(pcm) / CORPUS_RATE:.3f} s of audio, {time.time() - start:.0f} s",
              flush=True)
        words[word] = {"samples": encode_pcm(pcm), "spikes": int(len(units)), "band_counts": band_counts(units)}
        if args.dump_spikes:
            args.dump_spikes.mkdir(parents=True, exist_ok=True)
            np.savez(args.dump_spikes / f"{word}.npz", times=times, units=units)
    from importlib.metadata import version
    golden = {"about": "lauscher's spikes per band of channels on sccl.audio.speech_corpus; made by "
                       "tests/golden/make_lauscher_speech.py",
              "lauscher": version("lauscher"), "espeakng_loader": version("espeakng-loader"), "voice": VOICE,
              "rate": CORPUS_RATE, "n_channels": N_CHANNELS, "band": BAND, "seed": SEED,
              "corpus_sha256": corpus_sha256(corpus), "words": words}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
