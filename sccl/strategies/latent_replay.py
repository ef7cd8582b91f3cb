"""Latent replay (Pellegrini et al., 2020), with the paper's time compression as a parameter: freeze the layers at
or below ``latent_depth``, store their activity on past tasks' samples (optionally keeping only S of the T steps,
windows OR-ed or summed), and train the layers above on the new data plus the replayed latents."""

import torch

from sccl.errors import ConfigError
from sccl.replay import MODES, build_latent_memory
from sccl.strategies.base import Flag
from sccl.strategies.replaying import REPLAY_FLAGS, ReplayStrategy
from sccl.training import raw_batches


class LatentReplay(ReplayStrategy):
    name = "latent_replay"
    description = ("Latent replay: freeze the layers at or below --latent-depth, store their activity on past "
                   "tasks' batches (compressed in time with --latent-subsample), and train the layers above on new "
                   "data plus the replayed latents.")
    min_replay_batches = 0  # progressive with k = 0: the frozen network without replay
    flags = (
        Flag("--latent-depth", "latent_depth", "cut depth 0-3: 0 = layer-1 input currents, 1-3 = spikes of that "
             "layer (layers at or below are frozen)", default="latent_depth"),
        Flag("--latent-batches", "replay_batches", "batches whose latents are stored (class scenarios: per class)",
             default="latent_batches"),
        Flag("--latent-subsample", "stored_steps", "stored time steps S (must divide the T steps; compression 1:T/S); "
             "default: no compression"),
        Flag("--compression", "compression", "or: 1 if any spike in the window (the paper); sum: the spike count",
             type=str, default="or", choices=MODES),
    ) + REPLAY_FLAGS

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        if cfg.latent_depth not in (0, 1, 2, 3):
            raise ConfigError(f"--latent-depth must be 0, 1, 2 or 3, got {cfg.latent_depth}")

    @classmethod
    def cut_depth(cls, cfg):
        return cfg.latent_depth

    def store(self, index_batches):
        source = raw_batches(self.ctx.ds, index_batches, torch.device("cpu"))
        float_dtype = torch.float16 if self.cfg.float16_currents else torch.float32
        net = self.ctx.net
        device = next(net.parameters()).device
        self.memory = build_latent_memory(net.cpu(), source, self.cfg.latent_depth, self.stored_steps,
                                          self.cfg.compression, float_dtype, memory=self.memory)
        net.to(device)
