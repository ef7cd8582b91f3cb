"""Fewer-step replay (the Replay4NCL lever; methods-notes "Fewer-step replay"): latent replay whose layers above
the cut run at S steps on everything, as Replay4NCL does: replayed latents at their S stored steps, and the new
data and every evaluation compressed to the same S steps (:meth:`FewerStepReplay.view`) with the memory's own
compression (:func:`sccl.replay.memory.compress`: OR or sum of spikes, sums of depth-0 currents). The frozen layers at or
below the cut still run at T steps: their activity is what is compressed, and what the memory stores
(``ctx.train_batches`` stays at T steps). Replay4NCL-like, evaluated at S steps: the numbers are those of a
network run at S steps above the cut, not of the T-step network.

The layers above the cut run an S-step batch with per-step decays alpha^w, beta^w (w = T/S), so that the
physical time constants stay (:mod:`sccl.net.model`, :func:`sccl.replay.batches.fewer_step_batches`). A sample costs
about w times less above the cut; the memory is latent replay's (the same latents, the same bytes).

What the layers above see changes. A window's activity arrives as the input of one step, and one S-step takes the
membrane only one step of the synaptic current where the T-step layer integrates it over w steps: for input that
arrives at the windows' last steps, the S-step membrane at the window ends is the T-step one divided by the
window gain c = sum_{j<w} alpha^j beta^(w-1-j) (:func:`window_gain`; 2.70 for w = 10 at the default time
constants), and the readout trace likewise. An OR window also holds one spike where the T-step latent may hold
several. ``--replay-threshold`` theta is the firing threshold of the layers above the cut on every S-step batch
(Replay4NCL tunes it, and the learning rate, ``--lr``): theta = 1/c, the default (``auto``), makes their
subthreshold membrane equal the T-step one at the window ends (the run's log says the value). At theta = 1 the
pretrained network above the cut is almost silent at S steps (5 % accuracy on its own memory at S = 10, against
27 % at 1/c on the demo data).

The readout sees the same loss of scale, and more: the layers above fire at most once per window, so at S steps
the logits of the pretrained network are tens of times smaller than at T steps (0.2 against 7 on the demo data at
S = 10). Its softmax is then almost flat, the loss stays near ln(classes), and in class-incremental runs a new
class's re-drawn readout column never rose above the old ones (0 % of the new class in every run).
``--readout-gain`` g multiplies the readout's input current on every S-step batch; ``auto`` (the default) sets it
once, before the first evaluation, so that the mean largest logit at S steps equals the one at T steps on the
first :data:`CALIBRATION_SAMPLES` pretraining samples (training data of task 0, which the memory is drawn from;
the run's log says the value).

A hosted regularizer (``--regularizer``) sees the S-step view of every task's training batches too, so its
Fisher, path or bases describe the network that is trained and evaluated.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import torch

from sccl.cl.strategies.base import Flag, Variant
from sccl.cl.strategies.latent_replay import LatentReplay
from sccl.core.defaults import COMPRESSED
from sccl.core.errors import ConfigError
from sccl.learn.training import Batch, logits_of
from sccl.replay.batches import fewer_step_batches
from sccl.replay.memory import compress, kind_for_depth


def window_gain(alpha: float, beta: float, w: int) -> float:
    """c = sum_{j<w} alpha^j beta^(w-1-j): the T-step membrane gained over a window per unit of synaptic current
    at its start, where an S-step (decays alpha^w, beta^w) gains 1."""
    return sum(alpha ** j * beta ** (w - 1 - j) for j in range(w))


CALIBRATION_SAMPLES = 512


def auto_or_positive(text) -> str | float:
    """``auto`` or a positive finite number (the type of ``--replay-threshold`` and ``--readout-gain``)."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}")
    return value


def s_step_batch(b: Batch, steps: int, mode: str, threshold: float, readout_gain: float = 1.0) -> Batch:
    """A time-major (T, B, N) batch at the cut compressed to ``steps`` windows as the memory compresses (OR or sum
    of spikes, sums of depth-0 currents) and marked, as replayed batches are, with w = T/S, the firing
    ``threshold`` and the ``readout_gain`` of the layers above the cut."""
    if not b.time_major or b.from_depth is None:
        raise ValueError("fewer-step replay views time-major batches at its cut depth")
    z = compress(b.x.transpose(0, 1), steps, mode, kind_for_depth(b.from_depth))
    return Batch(z.transpose(0, 1).contiguous(), b.y, from_depth=b.from_depth, time_major=True,
                 time_factor=b.x.shape[0] // steps, threshold=threshold, readout_gain=readout_gain)


@torch.no_grad()
def matched_readout_gain(net, batches, steps: int, mode: str, threshold: float) -> float | None:
    """g such that the mean over samples of the largest logit at ``steps`` steps (``mode`` compression, firing
    ``threshold``, gain 1) times g equals the mean largest logit at the batches' own T steps (None when that is 0:
    the readout is silent at T steps too). Time-major batches at the cut, as
    :meth:`sccl.cl.engine.RunContext.train_batches` gives them."""
    full, reduced = [], []
    for b in batches:
        full.append(net.forward_time_major(b.x, b.from_depth).max(1).values)
        reduced.append(logits_of(net, s_step_batch(b, steps, mode, threshold)).max(1).values)
    t_mean, s_mean = float(torch.cat(full).mean()), float(torch.cat(reduced).mean())
    if not t_mean > 0:  # the readout is silent at T steps too (a network that learnt nothing): nothing to match
        return None
    if not s_mean > 0:
        raise ConfigError(f"--readout-gain auto: the network's largest logits average {s_mean:.4g} at {steps} steps "
                          f"and {t_mean:.4g} at T steps on the pretraining data, so no gain matches them (give "
                          f"--readout-gain a number, or lower --replay-threshold)")
    return t_mean / s_mean


def _with_default_steps(flag: Flag) -> Flag:
    if flag.dest != "stored_steps":
        return flag
    return replace(flag, default=COMPRESSED["stored_steps"],
                   help="stored time steps S, also the steps replayed batches run (must divide the T steps, S < T)")


class ViewedContext:
    """The run's context with every task's training batches seen through ``view`` (what a hosted regularizer
    estimates from); everything else is the run's."""

    def __init__(self, ctx, view):
        self._ctx, self._view = ctx, view

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def train_batches(self, i: int, max_samples: int | None = None):
        return self._view(self._ctx.train_batches(i, max_samples))


class FewerStepReplay(LatentReplay):
    name = "latent_replay_fewer_steps"
    description = ("Fewer-step latent replay (Replay4NCL-like, evaluated at S steps): the layers above the cut run "
                   "at S of T steps (--latent-subsample) with per-step decays alpha^(T/S), beta^(T/S) and firing "
                   "threshold --replay-threshold, on the replayed compressed latents and on the new data and test "
                   "sets, compressed as the memory is.")
    flags = tuple(_with_default_steps(f) for f in LatentReplay.flags) + (
        Flag("--replay-threshold", "replay_threshold", "firing threshold of the layers above the cut on replayed "
             "and new batches, and in evaluation: a positive number (1: the network's), or 'auto' (default): 1/c, "
             "the T-step membrane at window ends", type=auto_or_positive, default="auto"),
        Flag("--readout-gain", "readout_gain", "factor on the readout's input current on every S-step batch: a "
             "positive number, or 'auto' (default): the mean largest logit at S steps matched to the one at T steps "
             "on the pretraining data", type=auto_or_positive, default="auto"),
    )

    entry_points = {}  # (latent replay's compressed scripts are latent replay's)
    sweep_axes = {}  # a sweep runs it at its defaults; --set sweeps its flags

    @classmethod
    def variants(cls):
        return (Variant(cls.name, "fewer-step LR"),)

    @classmethod
    def variant_of(cls, replay_batches, stored_steps, nb_steps, options):
        return cls.name

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self._gain = None

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        steps = cfg.options["stored_steps"]
        if steps is None or steps >= nb_steps:
            raise ConfigError(f"the {cls.name} strategy needs --latent-subsample S below the {nb_steps} time steps, "
                              f"got {steps}")
        for flag, dest in (("--replay-threshold", "replay_threshold"), ("--readout-gain", "readout_gain")):
            try:
                auto_or_positive(cfg.options.get(dest, "auto"))
            except argparse.ArgumentTypeError as e:
                raise ConfigError(f"{flag}: {e}") from None

    @property
    def threshold(self) -> float:
        """The run's firing threshold above the cut: the flag's number, or with ``auto`` 1/c (:func:`window_gain`)."""
        value = auto_or_positive(self.option("replay_threshold"))
        if value == "auto":
            net = self.ctx.net
            value = 1 / window_gain(net.alpha, net.beta, self.ctx.ds.binned.nb_steps // self.stored_steps)
        return float(value)

    @property
    def readout_gain(self) -> float:
        """The run's readout gain: the flag's number, or with ``auto`` the matched gain, computed once."""
        if self._gain is None:
            value = auto_or_positive(self.option("readout_gain"))
            if value == "auto":
                batches = self.ctx.train_batches(0, CALIBRATION_SAMPLES)
                value = matched_readout_gain(self.ctx.net, batches, self.stored_steps, self.option("compression"),
                                             self.threshold)
                n = sum(len(b) for b in batches)
                if value is None:
                    value = 1.0
                    self.ctx.log(f"fewer-step replay: readout gain 1 (auto: the pretrained network's largest logits "
                                 f"are 0 at T steps too on {n} pretraining samples, so there is nothing to match)")
                else:
                    self.ctx.log(f"fewer-step replay: readout gain {value:.4f} (auto: the mean largest logit at "
                                 f"{self.stored_steps} steps matched to T steps on {n} pretraining samples)")
            self._gain = float(value)
        return self._gain

    def end_task(self, i):
        super().end_task(i)
        if i == 0:
            net, w = self.ctx.net, self.ctx.ds.binned.nb_steps // self.stored_steps
            c = window_gain(net.alpha, net.beta, w)
            self.ctx.log(f"fewer-step replay: {self.stored_steps} steps of {w} (window gain {c:.4f}; "
                         f"--replay-threshold {1 / c:.4f} keeps the T-step membrane at window ends), "
                         f"threshold {self.threshold:.4f}")

    def view(self, batches):
        """Each batch at its S steps with the run's threshold and readout gain (:func:`s_step_batch`)."""
        return [s_step_batch(b, self.stored_steps, self.option("compression"), self.threshold, self.readout_gain)
                for b in batches]

    def hosted_context(self):
        return ViewedContext(self.ctx, self.view)

    def memory_batches(self):
        if self.memory is None:
            return []
        return fewer_step_batches(self.memory, self.cfg.batch_size, self.threshold,
                                  device=self.ctx.device, readout_gain=self.readout_gain)
