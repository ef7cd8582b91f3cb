"""Fewer-step replay (the Replay4NCL lever; methods-notes "Fewer-step replay"): latent replay whose layers above
the cut run at S steps on everything, as Replay4NCL does: replayed latents at their S stored steps, and the new
data and every evaluation compressed to the same S steps (:meth:`FewerStepReplay.view`) with the memory's own
compression (:func:`sccl.replay.compress`: OR or sum of spikes, sums of depth-0 currents). The frozen layers at or
below the cut still run at T steps: their activity is what is compressed, and what the memory stores
(``ctx.train_batches`` stays at T steps). Replay4NCL-like, evaluated at S steps: the numbers are those of a
network run at S steps above the cut, not of the T-step network.

The layers above the cut run an S-step batch with per-step decays alpha^w, beta^w (w = T/S), so that the
physical time constants stay (:mod:`sccl.model`, :func:`sccl.replay_batches.fewer_step_batches`). A sample costs
about w times less above the cut; the memory is latent replay's (the same latents, the same bytes).

What the layers above see changes. A window's activity arrives as the input of one step, and one S-step takes the
membrane only one step of the synaptic current where the T-step layer integrates it over w steps: for input that
arrives at the windows' last steps, the S-step membrane at the window ends is the T-step one divided by the
window gain c = sum_{j<w} alpha^j beta^(w-1-j) (:func:`window_gain`; 2.70 for w = 10 at the default time
constants), and the readout trace likewise. An OR window also holds one spike where the T-step latent may hold
several. ``--replay-threshold`` theta is the firing threshold of the layers above the cut on every S-step batch
(Replay4NCL tunes it, and the learning rate, ``--lr``): theta = 1/c makes their subthreshold membrane equal the
T-step one at the window ends (the run's log says the value).

A hosted regularizer (``--regularizer``) sees the S-step view of every task's training batches too, so its
Fisher, path or bases describe the network that is trained and evaluated.
"""

from __future__ import annotations

import math
from dataclasses import replace

from sccl.defaults import COMPRESSED
from sccl.errors import ConfigError
from sccl.replay import compress, kind_for_depth
from sccl.replay_batches import fewer_step_batches
from sccl.strategies.base import Flag
from sccl.strategies.latent_replay import LatentReplay
from sccl.training import Batch


def window_gain(alpha: float, beta: float, w: int) -> float:
    """c = sum_{j<w} alpha^j beta^(w-1-j): the T-step membrane gained over a window per unit of synaptic current
    at its start, where an S-step (decays alpha^w, beta^w) gains 1."""
    return sum(alpha ** j * beta ** (w - 1 - j) for j in range(w))


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
             "and new batches, and in evaluation (1: the network's)", type=float, default=1.0),
    )

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        if cfg.stored_steps is None or cfg.stored_steps >= nb_steps:
            raise ConfigError(f"the {cls.name} strategy needs --latent-subsample S below the {nb_steps} time steps, "
                              f"got {cfg.stored_steps}")
        theta = cfg.options.get("replay_threshold", 1.0)
        if not (isinstance(theta, (int, float)) and math.isfinite(theta) and theta > 0):
            raise ConfigError(f"--replay-threshold must be a positive number, got {theta}")

    def end_task(self, i):
        super().end_task(i)
        if i == 0:
            net, w = self.ctx.net, self.ctx.ds.binned.nb_steps // self.stored_steps
            c = window_gain(net.alpha, net.beta, w)
            self.ctx.log(f"fewer-step replay: {self.stored_steps} steps of {w} (window gain {c:.4f}; "
                         f"--replay-threshold {1 / c:.4f} keeps the T-step membrane at window ends), "
                         f"threshold {self.option('replay_threshold')}")

    def view(self, batches):
        """Each time-major (T, B, N) batch at the cut compressed to its S windows as the memory compresses (OR or
        sum of spikes, sums of depth-0 currents) and marked, as replayed batches are, with w = T/S and the run's
        ``--replay-threshold``."""
        mode, threshold = self.cfg.compression, self.option("replay_threshold")
        out = []
        for b in batches:
            if not b.time_major or b.from_depth is None:
                raise ValueError("fewer-step replay views time-major batches at its cut depth")
            z = compress(b.x.transpose(0, 1), self.stored_steps, mode, kind_for_depth(b.from_depth))
            out.append(Batch(z.transpose(0, 1).contiguous(), b.y, from_depth=b.from_depth, time_major=True,
                             time_factor=b.x.shape[0] // self.stored_steps, threshold=threshold))
        return out

    def hosted_context(self):
        return ViewedContext(self.ctx, self.view)

    def replay_batches(self):
        if self.memory is None:
            return []
        return fewer_step_batches(self.memory, self.cfg.batch_size, self.option("replay_threshold"),
                                  device=self.ctx.device)
