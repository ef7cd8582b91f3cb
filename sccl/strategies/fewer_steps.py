"""Fewer-step replay (the Replay4NCL lever; methods-notes "Fewer-step replay"): latent replay whose compressed
latents are replayed at their S stored steps instead of being un-compressed back to T.

The layers above the cut run a replayed batch at S = T/w steps with per-step decays alpha^w, beta^w, so that
the physical time constants stay (:mod:`sccl.model`, :func:`sccl.replay_batches.fewer_step_batches`); new data
and evaluation still run at T steps. A replayed sample costs about w times less; the memory is latent replay's
(the same latents, the same bytes).

What the layers above see changes. A window's activity arrives as the input of one step, and one S-step takes the
membrane only one step of the synaptic current where the T-step layer integrates it over w steps: for input that
arrives at the windows' last steps, the S-step membrane at the window ends is the T-step one divided by the
window gain c = sum_{j<w} alpha^j beta^(w-1-j) (:func:`window_gain`; 2.70 for w = 10 at the default time
constants), and the readout trace likewise. An OR window also holds one spike where the T-step latent may hold
several. ``--replay-threshold`` theta is the firing threshold of the layers above the cut on replayed batches
only (Replay4NCL tunes it, and the learning rate, ``--lr``): theta = 1/c makes their subthreshold membrane equal
the T-step one at the window ends (the run's log says the value).
"""

from __future__ import annotations

import math
from dataclasses import replace

from sccl.defaults import COMPRESSED
from sccl.errors import ConfigError
from sccl.replay_batches import fewer_step_batches
from sccl.strategies.base import Flag
from sccl.strategies.latent_replay import LatentReplay


def window_gain(alpha: float, beta: float, w: int) -> float:
    """c = sum_{j<w} alpha^j beta^(w-1-j): the T-step membrane gained over a window per unit of synaptic current
    at its start, where an S-step (decays alpha^w, beta^w) gains 1."""
    return sum(alpha ** j * beta ** (w - 1 - j) for j in range(w))


def _with_default_steps(flag: Flag) -> Flag:
    if flag.dest != "stored_steps":
        return flag
    return replace(flag, default=COMPRESSED["stored_steps"],
                   help="stored time steps S, also the steps replayed batches run (must divide the T steps, S < T)")


class FewerStepReplay(LatentReplay):
    name = "latent_replay_fewer_steps"
    description = ("Fewer-step latent replay (Replay4NCL): latent replay whose compressed latents (--latent-subsample "
                   "S of T steps) are replayed at S steps, with per-step decays alpha^(T/S), beta^(T/S) and firing "
                   "threshold --replay-threshold in the layers above the cut; new data and evaluation run at T steps.")
    flags = tuple(_with_default_steps(f) for f in LatentReplay.flags) + (
        Flag("--replay-threshold", "replay_threshold", "firing threshold of the layers above the cut on replayed "
             "batches (1: the network's)", type=float, default=1.0),
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

    def replay_batches(self):
        if self.memory is None:
            return []
        return fewer_step_batches(self.memory, self.cfg.batch_size, self.option("replay_threshold"),
                                  device=self.ctx.device)
