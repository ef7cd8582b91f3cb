"""The built-in cochlea as it was before the fast converter: the reference that :mod:`sccl.audio.cochlea` must agree
with (tests/test_audio.py) and the "old" side of ``benchmarks/bench_audio.py``. Do not optimise it.

It shares the model's constants and formulas (place map, channel gain, level stage, parameters) with
:mod:`sccl.audio.cochlea` and keeps the original algorithms: the filterbank as one complex inverse FFT per channel on
the whole (channels x steps) band at once, put back on its carrier with an explicit complex exponential, and the
hair cell and spike generator as time loops over numpy vectors of all channels, drawing the fibres' spikes with
``Generator.binomial`` over all channels per step.
"""

from __future__ import annotations

import numpy as np

from sccl.audio.cochlea import HairCellParams, SpikeGenParams, channel_gain, place_map, prepare


def basilar_membrane(x: np.ndarray, fs: float, cf: np.ndarray) -> tuple[np.ndarray, float]:
    """Membrane velocity of every channel, shape (channels, steps), at half the input rate; the exact rate."""
    n = len(x)
    duration = n / fs
    steps = max(2, n // 2)
    spectrum = np.fft.rfft(x)
    centre = np.rint(cf * n / fs).astype(np.int64)  # bin of each channel's cf
    offsets = np.fft.fftfreq(steps, 1.0 / steps).astype(np.int64)  # 0, 1, .., -1: ifft order
    bins = centre[:, None] + offsets[None, :]
    valid = (bins > 0) & (bins < len(spectrum))
    band = np.where(valid, spectrum[np.clip(bins, 0, len(spectrum) - 1)], 0)
    band = band * channel_gain(bins * (fs / n), cf[:, None])
    # analytic signal on base band, back on the carrier (bin `centre` -> phase centre * k / steps)
    baseband = np.fft.ifft(band, axis=1) * (2.0 * steps / n)
    carrier = np.exp(2j * np.pi * np.outer(centre % steps, np.arange(steps)) / steps)
    return np.real(baseband * carrier), steps / duration


def hair_cell(velocity: np.ndarray, rate: float, p: HairCellParams = HairCellParams()) -> np.ndarray:
    """Firing probability per step of each channel's fibres (Meddis), shape like ``velocity``."""
    dt = 1.0 / rate
    drive = velocity + p.a
    permeability = np.where(drive > 0, p.g * dt * drive / (drive + p.b), 0.0)  # half-wave rectified, saturating
    k0 = p.g * p.a / (p.a + p.b)  # resting state
    c = np.full(len(velocity), p.m * p.y * k0 / (p.l * k0 + p.y * (p.l + p.r)))
    q = c * (p.l + p.r) / k0
    w = c * p.r / p.x
    out = np.empty_like(velocity)
    for j in range(velocity.shape[1]):
        replenish = np.where(q < p.m, (p.y * p.m - p.y * q) * dt, 0.0)
        eject = permeability[:, j] * q
        reprocess = p.x * dt * w
        q = np.maximum(q + replenish - eject + reprocess, 0.0)
        w = np.maximum(w + p.r * dt * c - reprocess, 0.0)
        c = np.maximum(c + eject - (p.l + p.r) * dt * c, 0.0)
        out[:, j] = c * p.h * dt
    return out


def bushy_cells(prob: np.ndarray, rate: float, rng: np.random.Generator,
                p: SpikeGenParams = SpikeGenParams()) -> tuple[np.ndarray, np.ndarray]:
    """Spikes (step index, channel) of one LIF cell per channel fed by ``p.fibres`` fibres (binomial draws over
    the fibres outside their refractory period)."""
    dt = 1.0 / rate
    pr = np.clip(prob * p.drive_gain, 0.0, 1.0)
    n_ch, n_steps = prob.shape
    span = max(1, int(round(p.fibre_refractory * rate)) - 1)  # steps a fibre stays silent after a spike
    recent = np.zeros((span, n_ch), dtype=np.int64)  # ring buffer of the last `span` steps' fibre spikes
    busy = np.zeros(n_ch, dtype=np.int64)
    syn_decay, mem_decay = np.exp(-dt / p.tau_syn), np.exp(-dt / p.tau_mem)
    charge = p.weight / p.fibres * dt
    isyn, vm = np.zeros(n_ch), np.zeros(n_ch)
    refractory = np.zeros(n_ch)
    spiking = np.zeros((n_steps, n_ch), dtype=bool)
    for j in range(n_steps):
        fibre_spikes = rng.binomial(p.fibres - busy, pr[:, j])
        slot = j % span
        busy += fibre_spikes - recent[slot]
        recent[slot] = fibre_spikes
        free = refractory <= 0
        isyn = isyn * syn_decay + fibre_spikes
        vm = np.where(free, np.minimum(vm * mem_decay + isyn * charge, 1.0), 0.0)
        fire = vm >= 1.0
        spiking[j] = fire
        vm[fire] = 0.0
        refractory = np.where(fire, p.refractory * rate, refractory - 1)
    steps, channels = np.nonzero(spiking)
    return steps, channels


def cochlea(signal: np.ndarray, fs: float, n_channels: int = 700, seed: int = 0,
            spikes: SpikeGenParams = SpikeGenParams()) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s, sorted) and channel units of ``signal`` sampled at ``fs`` Hz."""
    if len(signal) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    velocity, rate = basilar_membrane(prepare(signal), fs, place_map(n_channels))
    steps, channels = bushy_cells(hair_cell(velocity, rate), rate, rng, spikes)
    return steps / rate, channels.astype(np.int64)
