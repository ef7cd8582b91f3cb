"""Rehearsal: train every parameter on the new data plus stored raw input samples of past tasks (optionally
time-compressed by summing the counts in windows of T/S steps)."""

import torch

from sccl.cl.strategies.base import Flag, Variant
from sccl.cl.strategies.replaying import REPLAY_FLAGS, ReplayStrategy
from sccl.core.errors import ConfigError
from sccl.learn.training import raw_batches
from sccl.replay.building import build_raw_memory


class Rehearsal(ReplayStrategy):
    name = "rehearsal"
    description = ("Rehearsal: train on the new data plus stored raw input batches of past tasks (optionally "
                   "time-compressed by summing counts in windows).")
    flags = (
        Flag("--rehearsal-batches", "replay_batches", "raw batches stored (class scenarios: per class)",
             scenario_default="rehearsal_batches"),
        Flag("--rehearsal-subsample", "stored_steps",
             "time-compress the stored inputs to this many steps (window sums; default: none)"),
    ) + REPLAY_FLAGS
    fixed_settings = {"compression": "sum"}  # raw counts are summed in windows
    sweep_axes = {"rehearsal_batches": "--rehearsal-batches"}

    @classmethod
    def variants(cls):
        return (Variant("rehearsal", "rehearsal", rank=3, marker=("s", "tab:red")),)

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        if cfg.options["compression"] != "sum":
            raise ConfigError("rehearsal stores raw spike counts: its compression is 'sum'")

    def store(self, index_batches):
        source = raw_batches(self.ctx.ds, index_batches, torch.device("cpu"))
        self.memory = build_raw_memory(source, None, self.stored_steps, self.option("compression"), memory=self.memory)
