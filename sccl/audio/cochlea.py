"""A fast built-in cochlea: audio waveform -> SHD-style spikes (times in seconds, channel units 0..N-1).

It follows the chain of ``lauscher``, the converter that made the Spiking Heidelberg Digits (Cramer et al. 2020),
stage by stage:

1. **Level.** The waveform is normalised to RMS 0.3 and faded in and out by a Hann window over its whole length,
   as lauscher does (so loudness carries no information, and silence stays silent).
2. **Basilar membrane.** A 700-channel filterbank applied in the frequency domain. The place map is lauscher's
   hydrodynamic one: channel ``i`` sits at place ``x = 3.5 i / (N-1)``, where the membrane stiffness
   ``s(x) = c0 exp(-alpha x) - a`` gives the local resonance ``sqrt(s(x)/m) / 2 pi`` (Greenwood-like: exponential
   in place, about 22 kHz at channel 0 down to 110 Hz at channel 699); the travelling wave peaks a constant
   factor 1.107 below that resonance (measured on lauscher's membrane), which sets each channel's
   characteristic frequency. Each channel's gain is an asymmetric gammatone-like curve in
   ``r = ln(f / cf)``: a shallow exponential tail below cf and a steep ``exp(-(r/0.125)^2.48)`` edge above it,
   times a frequency-dependent membrane gain; both were fitted to lauscher's membrane (within 2 % of its peak).
   Each channel's output is the spectrum bins around its centre, put on base band at half the input rate and
   back on its carrier: the membrane velocity at half the input rate, as lauscher computes it (carriers above a
   quarter of the input rate alias there as in lauscher; only the rectified drive matters below).
3. **Inner hair cell.** Meddis' transmitter-pool model: half-wave rectification with saturation in the
   membrane permeability, transmitter depletion (adaptation, compression) and a spontaneous rate.
4. **Spike generator.** Forty auditory-nerve fibres per channel fire with the hair cell's probability (binomial
   draws over the fibres outside their 1 ms refractory period, from a seeded generator) and converge on one
   leaky integrate-and-fire (bushy) cell per channel, whose spikes are the output.

Stages 3-4 run at half the input rate, as in lauscher, whose output depends on that step (its Euler hair cell
and spike generator give ~3x more spikes from a 16 kHz file than from the same sound at 48 kHz); the converter
therefore resamples every file to one rate (48 kHz, SHD's) first. Deterministic for a given seed.

Speed and memory. :mod:`sccl.audio.cochlea_reference` keeps the first implementation, which these functions must
agree with (tests/test_audio.py). The filterbank makes one real inverse FFT per channel, a few channels at a
time, from the bins where the channel's gain is not negligible. Stages 3-4 are time loops; with the optional
numba package (``pip install 'sccl[fast]'``) they run compiled, drawing each fibre binomial from the recording's
own generator exactly as numpy's ``Generator.binomial`` does: both engines give the same spikes. Memory per
recording: the membrane velocity, 8 bytes x channels x steps (128 MiB per second of 48 kHz audio, 700
channels), plus ~5 % of that in temporaries.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass

import numpy as np


RMS_LEVEL = 0.3
ENGINES = ("auto", "numba", "numpy")
# bump when the spikes of a given signal and seed change: the converter's kept partial results are keyed by it
MODEL_VERSION = 1

# lauscher's hydrodynamic basilar membrane (Sieroka et al. 2006): stiffness c0 exp(-alpha x) - a, mass m
PLACE_LENGTH, ALPHA, STIFFNESS_C0, STIFFNESS_A, MASS = 3.5, 3.0, 1e9, 3500.0, 0.05
PEAK_BELOW_RESONANCE = 1.107  # the travelling wave peaks this factor below the local resonance
# channel gain vs r = ln(f / cf), fitted to lauscher's membrane profile
TAIL_SLOPE, TAIL_KNEE = 1.753, 0.0208  # below cf: exp(-slope (sqrt(r^2 + knee^2) - knee))
EDGE_WIDTH, EDGE_POWER = 0.1248, 2.479  # above cf: exp(-(r / width)^power)
# membrane peak gain vs frequency: exp(polynomial in ln(f / 1 kHz)), fitted 80 Hz - 16 kHz
GAIN_POLY = (0.02153, -0.05597, -0.30955, 5.11808)


@dataclass(frozen=True)
class HairCellParams:
    """Meddis (1986, 1988) transmitter-pool constants, as lauscher uses them (rates per second)."""

    y: float = 5.05  # replenishment
    g: float = 2000.0  # permeability gain
    l: float = 2500.0  # cleft loss  # noqa: E741
    r: float = 6580.0  # reuptake
    x: float = 66.3  # reprocessing
    a: float = 5.0  # permeability offset: the half-wave rectification point
    b: float = 300.0  # permeability saturation
    h: float = 50000.0  # cleft content -> firing probability
    m: float = 1.0  # transmitter pool size


@dataclass(frozen=True)
class SpikeGenParams:
    """Auditory-nerve fibres converging on one leaky integrate-and-fire (bushy) cell per channel."""

    fibres: int = 40
    fibre_refractory: float = 1e-3
    tau_mem: float = 1e-3
    tau_syn: float = 5e-4
    refractory: float = 1e-3
    weight: float = 13e3  # total synaptic weight, shared by the fibres
    drive_gain: float = 1.0  # calibration knob: scales the fibres' firing probability


def place_map(n_channels: int = 700) -> np.ndarray:
    """Characteristic frequency (Hz) of each channel, channel 0 = highest, as in SHD."""
    x = np.linspace(0.0, PLACE_LENGTH, n_channels)
    resonance = np.sqrt((STIFFNESS_C0 * np.exp(-ALPHA * x) - STIFFNESS_A) / MASS) / (2 * np.pi)
    return resonance / PEAK_BELOW_RESONANCE


def channel_of(freq: float, n_channels: int = 700) -> int:
    """The channel whose characteristic frequency is nearest to ``freq`` (in log frequency)."""
    return int(np.argmin(np.abs(np.log(place_map(n_channels) / freq))))


def lowest_full_rate(n_channels: int = 700) -> float:
    """The lowest sample rate that can drive every channel (a rate R carries frequencies below R/2 only): twice
    the highest characteristic frequency, 2 x 20.3 kHz."""
    return 2.0 * float(place_map(n_channels).max())


def undriven_channels(rate: float, n_channels: int = 700) -> int:
    """How many channels have their characteristic frequency above ``rate / 2``."""
    return int(np.sum(place_map(n_channels) > rate / 2))


def membrane_gain(freq: np.ndarray) -> np.ndarray:
    """The membrane's peak gain at ``freq`` (the channel-independent factor of :func:`channel_gain`)."""
    lf = np.log(np.clip(freq, 80.0, 16000.0) / 1000.0)
    return np.exp(np.polyval(GAIN_POLY, lf))


def tuning_below(r: np.ndarray) -> np.ndarray:
    """A channel's tuning at ``r = ln(f / cf) < 0``: the shallow tail."""
    return np.exp(-TAIL_SLOPE * (np.sqrt(r * r + TAIL_KNEE**2) - TAIL_KNEE))


def tuning_above(r: np.ndarray) -> np.ndarray:
    """A channel's tuning at ``r = ln(f / cf) >= 0``: the steep edge."""
    return np.exp(-(np.maximum(r, 0.0) / EDGE_WIDTH) ** EDGE_POWER)


def channel_gain(freq: np.ndarray, cf: np.ndarray) -> np.ndarray:
    """Membrane velocity per unit input amplitude at ``freq`` for channels at ``cf`` (broadcasting)."""
    freq = np.maximum(freq, 1e-3)
    r = np.log(freq / cf)
    return np.where(r < 0, tuning_below(r), tuning_above(r)) * membrane_gain(freq)


def prepare(signal: np.ndarray) -> np.ndarray:
    """RMS normalisation and whole-length Hann fade (lauscher's level stage); silence stays zero."""
    x = np.asarray(signal, dtype=np.float64).copy()
    rms = np.sqrt(np.mean(x * x)) if len(x) else 0.0
    if rms > 1e-10:
        x *= RMS_LEVEL / rms
    half = len(x) // 2
    if half:
        ramp = np.hanning(2 * half)[:half]
        x[:half] *= ramp
        x[-half:] *= ramp[::-1]
    return x


# Above cf a channel's tuning edge exp(-(r / EDGE_WIDTH)^EDGE_POWER) falls below 1e-30 beyond this r: the
# filterbank skips those bins (together they move a velocity by < 1e-20 of the signal's scale, far below the
# rounding of the hair cell's drive, velocity + 5).
EDGE_NEGLIGIBLE_R = EDGE_WIDTH * (30 * np.log(10)) ** (1.0 / EDGE_POWER)
CHANNEL_CHUNK = 32  # channels per inverse FFT batch: bounds the filterbank's temporaries


def _channel_window(log_freq: np.ndarray, centre: int, cf: float, steps: int) -> tuple[int, np.ndarray]:
    """The first bin of one channel's window (``steps`` bins around its centre, within the spectrum, without the
    bins where its gain is negligible) and the channel's tuning on it."""
    lo = max(1, centre - steps // 2)
    hi = min(len(log_freq), centre + (steps + 1) // 2)
    r = log_freq[lo:hi] - np.log(cf)
    hi = lo + int(np.searchsorted(r, EDGE_NEGLIGIBLE_R, side="right"))  # r rises with the bin
    r = r[:hi - lo]
    split = int(np.searchsorted(r, 0.0))  # tail below cf, edge above
    tuning = np.empty(len(r))
    tuning[:split] = tuning_below(r[:split])
    with np.errstate(divide="ignore"):  # r = 0: log 0 = -inf, edge exp(-0) = 1
        # tuning_above's (r / width)^power as exp(power ln(r / width)): vectorised, equal to ~1e-13
        tuning[split:] = np.exp(-np.exp(EDGE_POWER * np.log(r[split:] / EDGE_WIDTH)))
    return lo, tuning


def _fold_run(hermitian: np.ndarray, first: int, values: np.ndarray, steps: int) -> None:
    """Add to ``hermitian`` (bins 0..steps//2) the Hermitian part ``Z[k] + conj Z[-k mod steps]`` of a run of
    base-band bins ``Z[first : first + len(values)]`` (within 0..steps-1)."""
    half = len(hermitian)
    end = first + len(values)
    if first < min(end, half):  # Z[k], k < half
        hermitian[first:min(end, half)] += values[:min(end, half) - first]
    if first == 0:  # conj Z[0] -> k = 0
        hermitian[0] += np.conj(values[0])
    mirrored = max(first, steps - half + 1)  # conj Z[p] -> k = steps - p, for p > steps - half
    if mirrored < end:
        hermitian[steps - end + 1:steps - mirrored + 1] += np.conj(values[mirrored - first:][::-1])


def basilar_membrane(x: np.ndarray, fs: float, cf: np.ndarray, chunk: int = CHANNEL_CHUNK,
                     out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Membrane velocity of every channel, shape (channels, steps), at half the input rate as in lauscher (its
    hair cell and spike generator are discretised at that step, and their output depends on it); the exact rate
    is returned.

    Channel ``c`` takes the ``steps`` spectrum bins around its centre bin, weighted by its gain; on base band at
    ``steps`` samples, bin ``b`` lands on frequency index ``b mod steps`` (the carrier and its aliasing), so its
    real output is one real inverse FFT of that spectrum's Hermitian part. This is the reference's complex
    inverse FFT times an explicit carrier, without the carrier, the (channels x steps) gain and the complex band
    arrays: equal to float rounding (~1e-12 of a channel's peak), computed ``chunk`` channels at a time, into
    ``out`` when given (C-contiguous, shape (channels, steps))."""
    n = len(x)
    duration = n / fs
    steps = max(2, n // 2)
    spectrum = np.fft.rfft(x)
    bin_freq = np.maximum(np.arange(len(spectrum)) * (fs / n), 1e-3)
    log_freq = np.log(bin_freq)
    weight = membrane_gain(bin_freq) * (steps / n)  # the Hermitian part's 1/2 times the reference's 2 steps / n
    centre = np.rint(cf * n / fs).astype(np.int64)  # bin of each channel's cf
    velocity = np.empty((len(cf), steps)) if out is None else out
    hermitian = np.empty((chunk, steps // 2 + 1), dtype=complex)
    for first in range(0, len(cf), chunk):
        rows = range(first, min(first + chunk, len(cf)))
        hermitian[:] = 0
        for row, c in enumerate(rows):
            lo, tuning = _channel_window(log_freq, int(centre[c]), float(cf[c]), steps)
            values = spectrum[lo:lo + len(tuning)] * (tuning * weight[lo:lo + len(tuning)])
            start = lo % steps
            wrap = min(len(values), steps - start)  # the window is at most `steps` bins: it wraps at most once
            if wrap:
                _fold_run(hermitian[row], start, values[:wrap], steps)
            if wrap < len(values):
                _fold_run(hermitian[row], 0, values[wrap:], steps)
        np.fft.irfft(hermitian[:len(rows)], n=steps, axis=1, out=velocity[first:first + len(rows)])
    return velocity, steps / duration


def _hair_cell_start(n_channels: int, p: HairCellParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transmitter pools (cleft c, free q, reprocessing w) at rest."""
    k0 = p.g * p.a / (p.a + p.b)
    c = np.full(n_channels, p.m * p.y * k0 / (p.l * k0 + p.y * (p.l + p.r)))
    return c, c * (p.l + p.r) / k0, c * p.r / p.x


STEP_BLOCK = 256  # time steps the numpy loops take at a time, transposed so that each step is contiguous


def _step_blocks(n_steps: int):
    for first in range(0, n_steps, STEP_BLOCK):
        yield first, min(first + STEP_BLOCK, n_steps)


def hair_cell(velocity: np.ndarray, rate: float, p: HairCellParams = HairCellParams(),
              out: np.ndarray | None = None) -> np.ndarray:
    """Firing probability per step of each channel's fibres (Meddis), shape like ``velocity``; ``out`` may be
    ``velocity`` itself (a block is read before it is written), which saves a (channels x steps) array.

    The same operations in the same order as the reference's vectorised formula, hence the same numbers."""
    dt = 1.0 / rate
    gain_dt, refill, reprocess_dt, reuptake_dt, loss_dt = p.g * dt, p.y * p.m, p.x * dt, p.r * dt, (p.l + p.r) * dt
    n_ch = len(velocity)
    c, q, w = _hair_cell_start(n_ch, p)
    out = np.empty_like(velocity) if out is None else out
    replenish, eject, reprocess, loss = (np.empty(n_ch) for _ in range(4))
    for first, last in _step_blocks(velocity.shape[1]):
        drive = velocity[:, first:last].T + p.a  # (steps, channels), contiguous
        permeability = gain_dt * drive / (drive + p.b)
        permeability[~(drive > 0)] = 0.0  # half-wave rectified, saturating
        prob = drive  # reused: one row per step
        for j in range(last - first):
            np.multiply(p.y, q, out=replenish)
            np.subtract(refill, replenish, out=replenish)
            replenish *= dt
            replenish[~(q < p.m)] = 0.0
            np.multiply(permeability[j], q, out=eject)
            np.multiply(reprocess_dt, w, out=reprocess)
            np.multiply(loss_dt, c, out=loss)
            q += replenish
            q -= eject
            q += reprocess
            np.maximum(q, 0.0, out=q)
            w += reuptake_dt * c
            w -= reprocess
            np.maximum(w, 0.0, out=w)
            c += eject
            c -= loss
            np.maximum(c, 0.0, out=c)
            np.multiply(c, p.h, out=prob[j])
            prob[j] *= dt
        out[:, first:last] = prob.T
    return out


def _spike_generator_constants(rate: float, p: SpikeGenParams) -> tuple[int, float, float, float, float]:
    """Refractory span of a fibre (steps), synaptic and membrane decay per step, charge per fibre spike, and
    the cell's refractory period (steps)."""
    dt = 1.0 / rate
    span = max(1, int(round(p.fibre_refractory * rate)) - 1)  # steps a fibre stays silent after a spike
    return (span, float(np.exp(-dt / p.tau_syn)), float(np.exp(-dt / p.tau_mem)), p.weight / p.fibres * dt,
            p.refractory * rate)


def bushy_cells(prob: np.ndarray, rate: float, rng: np.random.Generator,
                p: SpikeGenParams = SpikeGenParams()) -> tuple[np.ndarray, np.ndarray]:
    """Spikes (step index, channel) of one LIF cell per channel fed by ``p.fibres`` fibres.

    A fibre that fired stays silent for its refractory period, so each step draws the channel's fibre spikes
    as one binomial over the fibres that are free (the same statistics as ``p.fibres`` separate fibres; the
    refractoriness makes the input regular, which is what makes the cell's threshold steep). The draws are
    made step by step over all channels in channel order: that order is the recording's random stream."""
    n_ch, n_steps = prob.shape
    span, syn_decay, mem_decay, charge, refractory_steps = _spike_generator_constants(rate, p)
    recent = np.zeros((span, n_ch), dtype=np.int64)  # ring buffer of the last `span` steps' fibre spikes
    busy = np.zeros(n_ch, dtype=np.int64)
    isyn, vm, refractory = np.zeros(n_ch), np.zeros(n_ch), np.zeros(n_ch)
    free, fire = np.empty(n_ch, dtype=bool), np.empty(n_ch, dtype=bool)
    spiking = np.zeros((n_steps, n_ch), dtype=bool)
    for first, last in _step_blocks(n_steps):
        pr = np.clip(prob[:, first:last].T * p.drive_gain, 0.0, 1.0)
        for j in range(first, last):
            fibre_spikes = rng.binomial(p.fibres - busy, pr[j - first])
            slot = j % span
            busy += fibre_spikes - recent[slot]
            recent[slot] = fibre_spikes
            np.less_equal(refractory, 0, out=free)
            isyn *= syn_decay
            isyn += fibre_spikes
            vm *= mem_decay
            vm += isyn * charge
            np.minimum(vm, 1.0, out=vm)
            vm[~free] = 0.0
            np.greater_equal(vm, 1.0, out=fire)
            spiking[j] = fire
            vm[fire] = 0.0
            refractory -= 1
            refractory[fire] = refractory_steps
    steps, channels = np.nonzero(spiking)
    return steps, channels


# ----------------------------------------------------------------------------------------------
# the compiled path (optional: numba, ``pip install 'sccl[fast]'``)

# numpy's binomial takes its inversion branch, which the compiled kernel reproduces, while n min(p, 1-p) <= 30
MAX_COMPILED_FIBRES = 60
# Most draws take no spike: u <= (1-p)^n, which holds whenever u < 1 - n p (Bernoulli's inequality) by more than
# this margin (far above the rounding of 1 - n p and of numpy's exp(n log(1-p)) near 1); only the rest take
# numpy's exact inversion.
FAST_DRAW_MARGIN = 1e-12
COMPILED_STEP_BLOCK = 64  # steps per block of the compiled kernel (its buffer: block x channels)


def _fused_spikes(velocity, rng, hc, sg, fibres, span, start, block):  # pragma: no cover - compiled by numba
    """Hair cell and spike generator over blocks of ``block`` steps, with the operations of :func:`hair_cell` and
    :func:`bushy_cells` in their order: per block, the hair cell into a step-major buffer, then the fibres and
    bushy cells step by step over the channels in order, which is the order of the random stream. The fibre
    spikes are numpy's binomial inversion drawing from ``rng``'s own stream: the numpy engine's spikes."""
    a, b, gain_dt, y, refill, dt, m, reprocess_dt, reuptake_dt, loss_dt, h = hc
    drive_gain, syn_decay, mem_decay, charge, refractory_steps = sg
    n_ch, n_steps = velocity.shape
    c = np.full(n_ch, start[0])
    q = np.full(n_ch, start[1])
    w = np.full(n_ch, start[2])
    recent = np.zeros((span, n_ch), dtype=np.int64)  # ring buffer of the last `span` steps' fibre spikes
    busy = np.zeros(n_ch, dtype=np.int64)
    isyn = np.zeros(n_ch)
    vm = np.zeros(n_ch)
    refractory = np.zeros(n_ch)
    prob = np.empty((block, n_ch))
    out_steps = np.empty(1024, dtype=np.int64)
    out_channels = np.empty(1024, dtype=np.int64)
    count = 0
    for first in range(0, n_steps, block):
        last = min(first + block, n_steps)
        for i in range(n_ch):  # a step-major copy of the block
            for j in range(first, last):
                prob[j - first, i] = velocity[i, j]
        for j in range(last - first):  # Meddis hair cell, in place: velocity -> firing probability
            for i in range(n_ch):
                drive = prob[j, i] + a
                permeability = (gain_dt * drive) / (drive + b) if drive > 0 else 0.0
                qi, wi, ci = q[i], w[i], c[i]
                replenish = (refill - y * qi) * dt if qi < m else 0.0
                eject = permeability * qi
                reprocess = reprocess_dt * wi
                qi = qi + replenish - eject + reprocess
                q[i] = qi if not qi < 0.0 else 0.0
                wi = wi + reuptake_dt * ci - reprocess
                w[i] = wi if not wi < 0.0 else 0.0
                ci = ci + eject - loss_dt * ci
                ci = ci if not ci < 0.0 else 0.0
                c[i] = ci
                pr = ci * h * dt * drive_gain
                prob[j, i] = 0.0 if pr < 0.0 else (1.0 if pr > 1.0 else pr)
        for j in range(first, last):
            slot = j % span
            for i in range(n_ch):
                pr = prob[j - first, i]
                # numpy's random_binomial (its inversion branch) over the n free fibres
                n = fibres - busy[i]
                spikes = 0
                if n != 0 and pr != 0.0:
                    flip = pr > 0.5
                    pp = 1.0 - pr if flip else pr
                    qq = 1.0 - pp
                    u = rng.random()
                    if not u < 1.0 - n * pp - FAST_DRAW_MARGIN:
                        qn = math.exp(n * math.log(qq))
                        mean = n * pp
                        limit = mean + 10.0 * math.sqrt(mean * qq + 1)
                        bound = n if n < limit else np.int64(limit)
                        px = qn
                        while u > px:
                            spikes += 1
                            if spikes > bound:
                                spikes = 0
                                px = qn
                                u = rng.random()
                            else:
                                u -= px
                                px = ((n - spikes + 1) * pp * px) / (spikes * qq)
                    if flip:
                        spikes = n - spikes
                busy[i] += spikes - recent[slot, i]
                recent[slot, i] = spikes
                # bushy cell
                free = refractory[i] <= 0
                isyn[i] = isyn[i] * syn_decay + spikes
                v = vm[i] * mem_decay + isyn[i] * charge
                v = 1.0 if v > 1.0 else v
                if not free:
                    v = 0.0
                if v >= 1.0:
                    v = 0.0
                    refractory[i] = refractory_steps
                    if count == len(out_steps):
                        out_steps = np.concatenate((out_steps, np.empty(count, dtype=np.int64)))
                        out_channels = np.concatenate((out_channels, np.empty(count, dtype=np.int64)))
                    out_steps[count] = j
                    out_channels[count] = i
                    count += 1
                else:
                    refractory[i] -= 1
                vm[i] = v
    return out_steps[:count], out_channels[:count]


_compiled = {}


def compiled_available() -> bool:
    """Whether numba is installed (the optional fast path)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        return False


def _compiled_spikes():
    if "kernel" not in _compiled:
        import numba
        try:  # compiled once, then loaded from numba's cache (__pycache__, or its user-wide folder)
            _compiled["kernel"] = numba.njit(cache=True, nogil=True, error_model="numpy")(_fused_spikes)
        except RuntimeError:  # no writable cache folder: compile in each process
            _compiled["kernel"] = numba.njit(nogil=True, error_model="numpy")(_fused_spikes)
    return _compiled["kernel"]


def resolve_engine(engine: str, spikes: SpikeGenParams = SpikeGenParams()) -> str:
    """``numba`` or ``numpy``: what ``auto`` means here (numba when installed and the fibre count allows it)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    fits = spikes.fibres <= MAX_COMPILED_FIBRES
    if engine == "numba":
        if not compiled_available():
            raise ImportError("the numba engine needs numba: pip install 'sccl[fast]' (or use engine numpy)")
        if not fits:
            raise ValueError(f"the numba engine supports at most {MAX_COMPILED_FIBRES} fibres, got {spikes.fibres}")
    if engine == "auto":
        return "numba" if fits and compiled_available() else "numpy"
    return engine


def spikes_from_velocity(velocity: np.ndarray, rate: float, rng: np.random.Generator, engine: str = "auto",
                         hair: HairCellParams = HairCellParams(),
                         spikes: SpikeGenParams = SpikeGenParams()) -> tuple[np.ndarray, np.ndarray]:
    """Hair cell and spike generator: spikes (step index, channel), ordered by step then channel. Both engines
    give the same spikes; the numpy one overwrites ``velocity`` with the firing probabilities."""
    if resolve_engine(engine, spikes) == "numpy":
        return bushy_cells(hair_cell(velocity, rate, hair, out=velocity), rate, rng, spikes)
    dt = 1.0 / rate
    hc = (hair.a, hair.b, hair.g * dt, hair.y, hair.y * hair.m, dt, hair.m, hair.x * dt, hair.r * dt,
          (hair.l + hair.r) * dt, hair.h)
    span, syn_decay, mem_decay, charge, refractory_steps = _spike_generator_constants(rate, spikes)
    start = np.array([v[0] for v in _hair_cell_start(1, hair)])
    return _compiled_spikes()(np.ascontiguousarray(velocity), rng, hc,
                              (float(spikes.drive_gain), syn_decay, mem_decay, charge, float(refractory_steps)),
                              spikes.fibres, span, start, COMPILED_STEP_BLOCK)


def cochlea(signal: np.ndarray, fs: float, n_channels: int = 700, seed: int = 0,
            spikes: SpikeGenParams = SpikeGenParams(), engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s, sorted) and channel units of ``signal`` sampled at ``fs`` Hz. ``engine``: ``numba``
    (compiled, fast; needs the optional numba package), ``numpy``, or ``auto`` (numba when installed); both
    give the same spikes for a seed."""
    engine = resolve_engine(engine, spikes)
    if len(signal) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    scratch = _scratch((n_channels, max(2, len(signal) // 2)))
    velocity, rate = basilar_membrane(prepare(signal), fs, place_map(n_channels), out=scratch)
    steps, channels = spikes_from_velocity(velocity, rate, rng, engine, spikes=spikes)
    return steps / rate, channels.astype(np.int64)


_local = threading.local()
SCRATCH_KEPT = 2**26  # doubles (512 MiB, ~4 s of 48 kHz audio at 700 channels): larger velocity arrays are not kept


def _scratch(shape: tuple[int, int]) -> np.ndarray:
    """A (channels x steps) array for the membrane velocity, kept by this thread for its next recording (a
    converter worker then holds the memory of its longest recording, and the pages are not faulted in again)."""
    size = shape[0] * shape[1]
    if size > SCRATCH_KEPT:
        return np.empty(shape)
    if getattr(_local, "buffer", None) is None or _local.buffer.size < size:
        _local.buffer = None  # the old one is freed before the new one is made
        _local.buffer = np.empty(size)
    return _local.buffer[:size].reshape(shape)
