"""How a synthetic spoken digit is made: phones, words, speakers, the cochlear rate map and the spike trains.

* Words are sequences of phone-like segments (vowels with three formants, nasals, liquids, voiced and
  voiceless fricatives, plosive closures, bursts and aspiration), from rough phonetic transcriptions of
  the English digits "zero".."nine" (labels 0-9) and the German digits "null".."neun" (labels 10-19).
  The German words therefore share structure with their English partners where the real words do
  (six/sechs, seven/sieben, nine/neun, five/fuenf, four/vier, three/drei, eight/acht).
* Parameter tracks (formants, voicing, frication, aspiration, F0) are interpolated between segment
  targets on a 2 ms grid, turned into an excitation pattern over the 700 cochlear channels (lauscher's
  place map: unit 0 = 22.5 kHz, unit 699 = 110 Hz; resolved F0 harmonics at the apex, broadened
  formant peaks, frication noise bands), compressed by a sigmoid rate-level function with onset
  emphasis (adaptation), and sampled as gamma renewal spike trains (more regular than Poisson, like
  refractory fibres), plus sparse background. About 8k spikes per sample, mostly in units 250-680.
* Speakers differ strongly: vocal-tract length (formant scaling), F0, tempo, an own vowel space,
  accent choices (th -> s/f/t, r variants, w -> v, z -> s, devoicing, final schwa, ...), a fixed
  per-(speaker, word) "accent" (segment durations, formant and amplitude offsets), and a little in
  spectral tilt, channel gains and loudness. Within a speaker, utterances vary moderately (tempo,
  segment durations, formants, vowel reduction, weak first/last consonants, F0, level, onset time).
  So a classifier generalises worse to speakers it never saw, and fine-tuning on one speaker shifts it
  away from the others. The tuning knobs are the module constants below; their measured effect is
  printed by ``benchmarks/offline_learnability.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from sccl.data.hdf5 import NB_CLASSES, NB_SPEAKERS, NB_UNITS


T_MAX = 1.36  # no spike at or after this time (float16(t) stays < 1.4)
DT = 0.002  # time grid of the rate map (s)

# ----------------------------------------------------------------------------------------------
# cochlear place map (lauscher's basilar-membrane map, 700 channels)

_C = np.linspace(0.0, 3.5, NB_UNITS)
CF = np.sqrt((1e9 * np.exp(-3.0 * _C) - 3500.0) / 0.05) / (2.0 * np.pi)  # Hz, unit 0 = 22.5 kHz
_ERB = 24.7 * (4.37 * CF / 1000.0 + 1.0)
_LOG2_CF = np.log2(CF)

# ----------------------------------------------------------------------------------------------
# phones: target parameters for an adult male reference vocal tract
# fields: F1 F2 F3 (Hz), G2 G3 (relative formant gains), AV (voicing), AH (aspiration noise through the
# formants), AF (frication), FF (frication centre, Hz), FW (frication width, octaves)

_P = ("F1", "F2", "F3", "G2", "G3", "AV", "AH", "AF", "FF", "FW")
_IX = {name: i for i, name in enumerate(_P)}
_DEFAULT = dict(F1=500.0, F2=1500.0, F3=2500.0, G2=0.6, G3=0.35, AV=0.0, AH=0.0, AF=0.0, FF=5000.0, FW=0.6)


def _phone(**kw) -> np.ndarray:
    d = dict(_DEFAULT)
    d.update(kw)
    return np.array([d[k] for k in _P], dtype=np.float64)


_SCHWA = np.log([500.0, 1450.0, 2450.0])
VOWELS = ("i", "I", "e", "E", "a", "V", "O", "o", "U", "u", "@", "6", "Y", "R")
PHONES = {
    # vowels
    "i": _phone(F1=280, F2=2250, F3=2950, AV=1.0),
    "I": _phone(F1=400, F2=1900, F3=2550, AV=1.0),
    "e": _phone(F1=450, F2=2050, F3=2650, AV=1.0),
    "E": _phone(F1=560, F2=1800, F3=2500, AV=1.0),
    "a": _phone(F1=750, F2=1300, F3=2500, AV=1.0),
    "V": _phone(F1=640, F2=1200, F3=2400, AV=1.0),
    "O": _phone(F1=570, F2=850, F3=2400, AV=1.0),
    "o": _phone(F1=450, F2=850, F3=2400, AV=1.0),
    "U": _phone(F1=420, F2=1050, F3=2300, AV=1.0),
    "u": _phone(F1=320, F2=900, F3=2200, AV=1.0),
    "@": _phone(F1=500, F2=1450, F3=2450, AV=0.7),
    "6": _phone(F1=650, F2=1350, F3=2450, AV=0.8),
    "Y": _phone(F1=400, F2=1550, F3=2100, AV=1.0),
    "R": _phone(F1=480, F2=1350, F3=1700, AV=0.9),  # r-coloured vowel
    # sonorants
    "n": _phone(F1=250, F2=1700, F3=2600, G2=0.12, G3=0.08, AV=0.55),
    "l": _phone(F1=360, F2=1050, F3=2700, G2=0.3, G3=0.2, AV=0.7),
    "r": _phone(F1=350, F2=1150, F3=1650, G2=0.45, G3=0.35, AV=0.7),  # approximant
    "w": _phone(F1=300, F2=700, F3=2200, G2=0.4, G3=0.15, AV=0.65),
    "X": _phone(F1=450, F2=1200, F3=2400, G2=0.3, G3=0.2, AV=0.3, AF=0.15, FF=1400, FW=0.5),  # uvular r
    # voiced fricatives
    "v": _phone(F1=300, F2=1300, F3=2300, G2=0.2, G3=0.1, AV=0.45, AF=0.12, FF=4500, FW=0.8),
    "z": _phone(F1=300, F2=1700, F3=2600, G2=0.15, G3=0.1, AV=0.35, AF=0.6, FF=6000, FW=0.35),
    # voiceless fricatives
    "s": _phone(AF=1.0, FF=6500, FW=0.35),
    "f": _phone(AF=0.2, FF=5000, FW=0.9),
    "T": _phone(AF=0.18, FF=5500, FW=0.8),
    "x": _phone(AF=0.45, FF=1600, FW=0.4),
    "h": _phone(AH=0.35),  # aspiration; formants are copied from the next phone
    # closures and bursts
    "_": _phone(),
    "b_": _phone(F1=200, G2=0.0, G3=0.0, AV=0.15),  # voiced closure (voice bar)
    "Bt": _phone(AF=0.8, FF=4500, FW=0.9),
    "Bk": _phone(AF=0.7, FF=2000, FW=0.5),
    "Bb": _phone(AF=0.4, FF=900, FW=1.2),
    "Bd": _phone(AF=0.5, FF=3500, FW=0.9),
}

# rough phonetic transcriptions: (phone, duration in ms at tempo 1)
WORDS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("z", 110), ("I", 80), ("r", 60), ("o", 110), ("U", 90)),  # zero
    (("w", 80), ("V", 170), ("n", 120)),  # one
    (("Bt", 12), ("h", 55), ("u", 230)),  # two
    (("T", 120), ("r", 60), ("i", 230)),  # three
    (("f", 130), ("O", 230)),  # four
    (("f", 110), ("a", 140), ("I", 110), ("v", 90)),  # five
    (("s", 140), ("I", 110), ("_", 60), ("Bk", 12), ("h", 25), ("s", 150)),  # six
    (("s", 130), ("E", 120), ("v", 70), ("@", 60), ("n", 110)),  # seven
    (("e", 150), ("I", 90), ("_", 60), ("Bt", 12), ("h", 40)),  # eight
    (("n", 90), ("a", 140), ("I", 110), ("n", 120)),  # nine
    (("n", 90), ("U", 140), ("l", 150)),  # null
    (("a", 140), ("I", 90), ("n", 90), ("s", 150)),  # eins
    (("Bt", 12), ("s", 100), ("v", 70), ("a", 140), ("I", 110)),  # zwei
    (("b_", 30), ("Bd", 12), ("X", 60), ("a", 140), ("I", 110)),  # drei
    (("f", 130), ("i", 180), ("6", 120)),  # vier
    (("f", 110), ("Y", 140), ("n", 90), ("f", 130)),  # fuenf
    (("z", 110), ("E", 130), ("_", 60), ("Bk", 12), ("h", 20), ("s", 150)),  # sechs
    (("z", 110), ("i", 170), ("b_", 50), ("Bb", 12), ("@", 60), ("n", 110)),  # sieben
    (("a", 170), ("x", 130), ("_", 50), ("Bt", 12), ("h", 40)),  # acht
    (("n", 90), ("O", 130), ("Y", 110), ("n", 120)),  # neun
)
assert len(WORDS) == NB_CLASSES

# ----------------------------------------------------------------------------------------------
# speakers: fixed voice table (gender, age, height, vocal-tract factor, F0, tempo); the rest of each
# speaker's identity (vowel space, accent, channel gains) is drawn from the seed

# (gender, age, body height cm, vocal-tract factor alpha, F0 Hz, tempo)
SPEAKER_TABLE = (
    ("female", 29, 168.0, 1.16, 205.0, 1.00),
    ("male", 31, 183.0, 0.95, 110.0, 0.95),
    ("female", 24, 172.0, 1.13, 190.0, 1.10),
    ("male", 27, 176.0, 1.00, 125.0, 1.05),
    ("female", 26, 165.0, 1.18, 215.0, 0.97),  # test-only
    ("male", 38, 180.0, 0.97, 118.0, 0.92),  # test-only
    ("female", 45, 163.0, 1.20, 225.0, 0.90),
    ("male", 23, 188.0, 0.92, 100.0, 1.12),
    ("female", 33, 170.0, 1.10, 180.0, 1.04),
    ("male", 52, 174.0, 1.02, 135.0, 0.86),
    ("female", 21, 160.0, 1.22, 235.0, 1.15),
    ("male", 29, 185.0, 0.96, 105.0, 1.00),
)
assert len(SPEAKER_TABLE) == NB_SPEAKERS

# ---- tuning knobs (see benchmarks/offline_learnability.py for their effect)
DUR_SCALE = 1.4  # global word-duration factor
# speaker level
SPK_VOWEL_SIGMA = 0.12  # per-(speaker, vowel) log offsets of F1/F2
SPK_TILT_SIGMA = 0.15  # spectral tilt, exponent of (cf / 1 kHz)
SPK_GAIN_DB = 1.0  # amplitude of the smooth per-speaker channel-gain profile
SPK_LEVEL_DB = 1.0  # per-speaker loudness
# per (speaker, word) accent
ACC_DUR_SIGMA = 0.35
ACC_FORMANT_SIGMA = 0.10
ACC_AMP_SIGMA = 0.5
# per utterance
UTT_TEMPO_SIGMA = 0.07
UTT_DUR_SIGMA = 0.14
UTT_FORMANT_SIGMA = 0.03
UTT_AMP_SIGMA = 0.15
UTT_F0_SIGMA = 0.12
UTT_LEVEL_DB = 1.5
ONSET_RANGE = (0.02, 0.45)
UNDERSHOOT = 0.35  # maximum vowel reduction towards schwa
VARIANT_P = 0.25  # probability of a weak first / last consonant
# spectrum
FORMANT_BW = (40.0, 60.0, 80.0)  # Hz, plus FORMANT_BW_REL * F
FORMANT_BW_REL = 0.12
VT_FLOOR = 0.003
HARMONICS_RESOLVED = 10.0
COMB_DEPTH = 0.9
ASP_GAIN = 0.25
FRIC_GAIN = 0.12
# rates
RATE_MAX = 95.0  # Hz at the utterance's loudest channel
RATE_THRESH_DB = 15.0  # half-maximum rate this far below the loudest point
RATE_SLOPE_DB = 2.5
ONSET_GAIN = 1.6
SUSTAIN = 0.55
ADAPT_TAU = 0.04
BACKGROUND_HZ = 0.3
SPIKE_REGULARITY = 3.0  # gamma order of the spike trains (1 = Poisson); > 1 mimics refractoriness


@dataclass(frozen=True)
class _Speaker:
    alpha: float
    f0: float
    tempo: float
    tilt: float
    level_db: float
    gain_db: np.ndarray  # (700,)
    vowel_offsets: dict  # vowel -> (dlogF1, dlogF2)
    choices: dict
    f0_slope: float
    asp: float


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@functools.lru_cache(maxsize=64)
def _speaker(seed: int, speaker: int) -> _Speaker:
    """A speaker's identity for this seed (cached; the module constants are read on first use)."""
    _gender, _age, _height, alpha, f0, tempo = SPEAKER_TABLE[speaker]
    rng = seeded_rng(seed, 1, speaker)
    tilt = rng.normal(0.0, SPK_TILT_SIGMA)
    level_db = rng.normal(0.0, SPK_LEVEL_DB)
    # smooth gain profile over the place axis: a few random cosines
    x = _C / 3.5
    gain = np.zeros(NB_UNITS)
    for k in (1, 2, 3, 5):
        gain += rng.normal(0.0, 1.0 / k) * np.cos(np.pi * k * x + rng.uniform(0, 2 * np.pi))
    gain_db = SPK_GAIN_DB * gain / max(np.abs(gain).max(), 1e-9)
    vowel_offsets = {v: tuple(rng.normal(0.0, SPK_VOWEL_SIGMA, 2)) for v in VOWELS}
    choices = {
        "th": rng.choice(["T", "s", "f", "t"], p=[0.45, 0.25, 0.15, 0.15]),
        "r_en": rng.choice(["r", "X", "tap"], p=[0.55, 0.3, 0.15]),
        "rhotic": rng.random() < 0.4,
        "w": rng.choice(["w", "v"], p=[0.6, 0.4]),
        "z": rng.choice(["z", "s"], p=[0.6, 0.4]),
        "devoice": rng.random() < 0.35,
        "r_de": rng.choice(["X", "r"], p=[0.65, 0.35]),
        "glide": rng.uniform(0.4, 1.0),
        "final_schwa": rng.random() < 0.3,
    }
    return _Speaker(
        alpha=alpha,
        f0=f0,
        tempo=tempo,
        tilt=tilt,
        level_db=level_db,
        gain_db=gain_db,
        vowel_offsets=vowel_offsets,
        choices=choices,
        f0_slope=rng.uniform(-0.3, 0.05),
        asp=float(np.exp(rng.normal(0.0, 0.4))),
    )


def _realise(label: int, spk: _Speaker) -> list[tuple[str, float]]:
    """The speaker's pronunciation of a word: accent substitutions on the canonical transcription."""
    ch = spk.choices
    out: list[tuple[str, float]] = []
    for i, (ph, dur) in enumerate(WORDS[label]):
        if ph == "T":
            if ch["th"] == "t":
                out += [("Bt", 12), ("h", 40)]
                continue
            ph = ch["th"]
        elif ph == "r" and label < 10:
            if ch["r_en"] == "tap":
                ph, dur = "l", 25
            else:
                ph = ch["r_en"]
        elif ph == "X" and label >= 10:
            ph = ch["r_de"]
        elif ph == "w":
            ph = ch["w"]
        elif ph == "z" and i == 0:
            ph = ch["z"]
        elif ph == "v" and label == 5 and ch["devoice"]:
            ph = "f"
        elif ph == "h":
            dur = dur * spk.asp
        out.append((ph, dur))
    if label == 4 and ch["rhotic"]:
        out.append(("R", 110))
    if ch["final_schwa"] and out[-1][0] not in VOWELS:
        out.append(("@", 45))
    return out


@functools.lru_cache(maxsize=512)
def _word_plan(seed: int, speaker: int, label: int):
    """Per-(speaker, word) accent: segments with fixed duration, formant and amplitude offsets."""
    spk = _speaker(seed, speaker)
    segs = _realise(label, spk)
    rng = seeded_rng(seed, 2, speaker, label)
    n = len(segs)
    dur = np.array([d for _, d in segs]) / 1000.0 * DUR_SCALE * np.exp(rng.normal(0.0, ACC_DUR_SIGMA, n))
    targets = np.stack([PHONES[p] for p, _ in segs]).copy()
    # aspiration takes the formants of the following phone
    for i, (p, _) in enumerate(segs):
        if p == "h" and i + 1 < n:
            targets[i, :5] = targets[i + 1, :5]
    # diphthong glides: second vowel of a vowel pair pulled towards the first
    for i in range(1, n):
        if segs[i][0] in VOWELS and segs[i - 1][0] in VOWELS:
            g = spk.choices["glide"]
            targets[i, :3] = targets[i - 1, :3] ** (1 - g) * targets[i, :3] ** g
    logf = np.log(targets[:, :3])
    for i, (p, _) in enumerate(segs):
        if p in VOWELS:
            logf[i, :2] += spk.vowel_offsets[p]
    logf += rng.normal(0.0, ACC_FORMANT_SIGMA, logf.shape)
    amp = np.exp(rng.normal(0.0, ACC_AMP_SIGMA, n))
    contour = rng.uniform(-0.1, 0.15)  # word-specific pitch accent
    for a in (dur, logf, targets, amp):  # cached: callers must copy, never modify
        a.flags.writeable = False
    return tuple(p for p, _ in segs), dur, logf, targets, amp, contour


# ----------------------------------------------------------------------------------------------
# one sample


def _tracks(knot_t: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t, knot_t, values[:, j]) for j in range(values.shape[1])], axis=1)


def _knots(bounds: np.ndarray, vals: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold each segment's target in its middle, with linear transitions of ``tau`` across boundaries."""
    starts, ends = bounds[:-1], bounds[1:]
    half = np.minimum(tau / 2, (ends - starts) / 2 - 1e-6)
    kt = np.stack([starts + half, ends - half], axis=1).ravel()
    kv = np.repeat(vals, 2, axis=0)
    return kt, kv


def _rate_map(speaker: int, label: int, seed: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Onset (s) and firing-rate map (Hz, shape (steps of DT, 700)) of one utterance."""
    spk = _speaker(seed, speaker)
    names, dur0, logf0, targets0, amp0, contour = _word_plan(seed, speaker, label)
    n = len(names)

    # ---- utterance-level variation
    tempo = spk.tempo * np.exp(rng.normal(0.0, UTT_TEMPO_SIGMA))
    dur = dur0 * np.exp(rng.normal(0.0, UTT_DUR_SIGMA, n)) / tempo
    logf = logf0 + np.log(spk.alpha) + rng.normal(0.0, UTT_FORMANT_SIGMA, logf0.shape)
    amp = amp0 * np.exp(rng.normal(0.0, UTT_AMP_SIGMA, n))
    # vowel undershoot (reduction): vowel targets pulled towards the speaker's schwa
    vowel = np.array([p in VOWELS for p in names])
    under = rng.uniform(0.0, UNDERSHOOT)
    logf[vowel] = (1.0 - under) * logf[vowel] + under * (_SCHWA + np.log(spk.alpha))
    # sloppy variants: weak first or last consonant
    weak = rng.random(2) < VARIANT_P
    cons = np.flatnonzero(~vowel)
    if len(cons):
        amp[cons[0]] *= 0.25 if weak[0] else 1.0
        amp[cons[-1]] *= 0.2 if weak[1] else 1.0
    f0 = spk.f0 * np.exp(rng.normal(0.0, UTT_F0_SIGMA))
    u_onset = rng.random()
    total = float(dur.sum())
    room = T_MAX - 0.05 - ONSET_RANGE[0]
    if total > room:  # very slow utterance: squeeze it into the window
        dur *= room / total
        total = room
    onset = ONSET_RANGE[0] + u_onset * (min(ONSET_RANGE[1], T_MAX - 0.05 - total) - ONSET_RANGE[0])
    bounds = np.concatenate([[0.0], np.cumsum(dur)])

    # ---- parameter tracks on the 2 ms grid
    t = np.arange(0.0, total + 0.03, DT)
    vals = targets0.copy()
    vals[:, :3] = np.exp(logf)
    vals[:, 5:8] *= amp[:, None]
    kt, kv = _knots(bounds, np.log(vals[:, :3]), 0.035)
    formants = np.exp(_tracks(kt, kv, t))  # (T, 3)
    kt, kv = _knots(bounds, vals[:, 3:], 0.010)
    rest = _tracks(kt, kv, t)
    g2, g3, av, ah, af, ff, fw = (rest[:, j] for j in range(7))
    ah = ah * spk.asp
    ff = ff * spk.alpha ** 0.5
    x = t / max(total, 1e-3)
    f0_t = f0 * (1.0 + contour * np.exp(-(((x - 0.3) / 0.25) ** 2)) + spk.f0_slope * (x - 0.3))

    # ---- excitation (power) over the 700 channels, shape (T, C)
    cf = CF[None, :]
    vt = np.full((len(t), NB_UNITS), VT_FLOOR)
    for k, gain in ((0, None), (1, g2), (2, g3)):
        fk = formants[:, k : k + 1]
        x = (cf - fk) / (FORMANT_BW[k] + FORMANT_BW_REL * fk)
        peak = 1.0 / (1.0 + x * x) ** 2
        vt += peak if gain is None else gain[:, None] * peak
    ratio = cf / f0_t[:, None]
    depth = np.clip(1.0 - ratio / HARMONICS_RESOLVED, 0.0, COMB_DEPTH)
    comb = 1.0 - depth * (0.5 - 0.5 * np.cos(2.0 * np.pi * ratio))
    lowcut = 1.0 / (1.0 + (0.85 / ratio) ** 8)
    source = 1.0 / np.sqrt(1.0 + (cf / 500.0) ** 2)
    excitation = av[:, None] * (comb * lowcut * source) * vt
    excitation += ah[:, None] * (ASP_GAIN * vt / np.sqrt(1.0 + (cf / 2000.0) ** 2))
    fr = np.exp(-0.5 * ((_LOG2_CF[None, :] - np.log2(ff)[:, None]) / fw[:, None]) ** 2)
    excitation += (af[:, None] * FRIC_GAIN) * fr
    level = 10.0 * np.log10(excitation + 1e-9)
    level += spk.gain_db[None, :] + 10.0 * spk.tilt * np.log10(CF / 1000.0)[None, :]
    level -= level.max()
    level += spk.level_db + rng.normal(0.0, UTT_LEVEL_DB)

    # ---- rate-level function and adaptation (onset emphasis)
    drive = 1.0 / (1.0 + np.exp(-(level + RATE_THRESH_DB) / RATE_SLOPE_DB))
    slow = np.empty_like(drive)
    a = DT / ADAPT_TAU
    acc = np.zeros(NB_UNITS)
    for i in range(len(t)):
        slow[i] = acc
        acc = acc + a * (drive[i] - acc)
    rate = RATE_MAX * (SUSTAIN * drive + ONSET_GAIN * np.maximum(drive - slow, 0.0))
    return onset, rate


def _renewal_spikes(rate: np.ndarray, rng: np.random.Generator, order: float) -> tuple[np.ndarray, np.ndarray]:
    """Gamma renewal spike trains (shape ``order``; 1 = Poisson) with time-varying rate, by time rescaling.

    ``rate`` is (steps, channels) in Hz. Each channel's spikes are the points of a unit-rate renewal
    process on its integrated rate, mapped back to time. Returns (time in steps, float) and unit.
    """
    n_steps, n_ch = rate.shape
    lam = np.ascontiguousarray(rate.T) * DT  # (C, T): expected spikes per cell
    cum = np.cumsum(lam, axis=1)
    total = cum[:, -1]
    base = np.concatenate([[0.0], np.cumsum(total + 1.0)[:-1]])  # channel c lives on [base_c, base_c + total_c)
    n_draw = np.ceil(total + 5.0 * np.sqrt(total / order) + 3.0).astype(np.int64)
    first = np.cumsum(n_draw) - n_draw
    iv = rng.gamma(order, 1.0 / order, int(n_draw.sum()))
    ch = np.repeat(np.arange(n_ch), n_draw)
    cs = np.cumsum(iv)
    pos = cs - np.repeat(cs[first] - iv[first], n_draw)  # running sum inside each channel
    pos -= np.repeat(rng.random(n_ch) * iv[first], n_draw)  # stationary start: a random phase
    keep = pos < total[ch]
    pos, ch = pos[keep], ch[keep]
    g = pos + base[ch]
    flat = (cum + base[:, None]).ravel()
    idx = np.searchsorted(flat, g, side="right")
    step = idx - ch * n_steps
    prev = np.where(step > 0, flat[np.maximum(idx - 1, 0)], base[ch])
    frac = (g - prev) / np.maximum(lam.ravel()[idx], 1e-12)
    return step + np.clip(frac, 0.0, 1.0), ch


def make_sample(speaker: int, label: int, rep: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s, float64, sorted, < ``T_MAX``) and units (uint16) of one utterance."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, speaker, label, rep]))
    onset, rate = _rate_map(speaker, label, seed, rng)
    step, unit = _renewal_spikes(rate, rng, SPIKE_REGULARITY)
    times = onset + step * DT
    nbg = rng.poisson(BACKGROUND_HZ * NB_UNITS * T_MAX)
    times = np.concatenate([times, rng.random(nbg) * T_MAX])
    units = np.concatenate([unit, rng.integers(0, NB_UNITS, nbg)])
    keep = times < T_MAX
    times, units = times[keep], units[keep]
    order = np.argsort(times, kind="stable")
    return times[order], units[order].astype(np.uint16)


