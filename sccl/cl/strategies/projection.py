"""Gradient projection for the recurrent LIF network: GPM (``--subspace svd``) and its Hebbian online form HLOP
(``--subspace hebbian``). The maths is in :mod:`sccl.learn.subspace`.

Every trained weight keeps an orthonormal basis M of its old presynaptic activity (all samples, all time steps:
the feed-forward input x_t for W, the layer's own previous spikes s_{t-1} for V, layer-3 spikes for the readout)
and moves only in the complement, so the old inputs' currents, hence (the spike function being deterministic)
the old spike trains and logits, do not change beyond what the energy threshold leaves out.

Choices (issue #10):

* **Separate bases by default** (``--basis separate``): one basis per matrix. ``--basis joint`` gives a layer's
  [W; V] one basis over the stacked [x_t; s_{t-1}]: exact too and less restrictive, but it costs
  (n_x + n_h) x r floats (at full rank 300^2 for layer 2 instead of 200^2 + 100^2) and its single energy
  criterion mixes raw counts with spikes, so the recurrent inputs of layer 1 can end up under-protected.
* **The update is projected, not only the gradient.** The engine's optimiser is Adamax: its step m / u is
  rescaled elementwise, so a projected gradient does not give a projected step (the old currents drift; see
  tests/test_projection.py). So the gradient is projected in ``edit_gradients`` (the optimiser's moments then see
  only the allowed directions) and the parameter change of the step is projected again in ``after_step``:
  theta <- theta_before + (I - M M^T)(theta - theta_before). This holds with any optimiser.
* **GPM**: the basis is built at ``end_task(i)`` (task 0: the pretraining's training batches) from the activity
  Gram matrix, then extended by the residual until the task's total energy reaches ``--energy`` (default 0.97,
  GPM's usual base value: 0.97-0.99 in the paper; lower keeps more plasticity for the recurrent matrices, whose
  inputs every task shares).
* **HLOP**: ``--hebbian-rows`` new rows per task learn during the task from the activity (with the current
  weights) of every batch trained on, ``--hebbian-iterations`` Oja updates per batch, momentum 0.9; the
  pretraining (never trained on here) is learnt at ``end_task(0)`` by ``--hebbian-passes`` passes over its
  training batches. At task end the rows join the frozen ones and the block is orthonormalised by QR.

* **The readout is not projected in runs whose tasks bring new classes** (class_incremental, progressive): a new
  class's column has to learn from layer-3 activity that lies almost wholly (97-99 %) in the old tasks' span, so
  projecting w_out would keep the new class from ever being learnt. There w_out is left out of the groups (no
  basis is built, stored or counted for it) and learns freely; in speaker scenarios (sample_incremental,
  speakers: the same classes throughout) it is projected as every other weight.

Memory: the bases, stored as float32 (4 bytes per n_in x rank entry).
"""

from __future__ import annotations

import math

import torch

from sccl.cl.strategies.base import Flag, Strategy, tuned_flags
from sccl.core.defaults import METHODS
from sccl.core.errors import ConfigError
from sccl.learn.subspace import (BASIS_MODES, OjaSubspace, activity_grams, extend_basis, group_width, presynaptic_rows,
                                 project_out, projection_groups)


SUBSPACES = ("svd", "hebbian")
#: the methods' names of the two subspaces (GPM: Saha et al. 2021; HLOP: Xiao et al. 2024)
SUBSPACE_NAMES = {"svd": "GPM", "hebbian": "HLOP"}
HEBBIAN_MOMENTUM = 0.9


def projected_weights(trainable, scenario) -> tuple[str, ...]:
    """The trained weights the projection protects: all of them, but the readout when a task brings new classes
    (module docstring)."""
    free_readout = scenario is not None and scenario.brings_new_classes
    return tuple(n for n in trainable if not (free_readout and n == "w_out"))


class Projection(Strategy):
    name = "projection"
    description = ("Gradient projection (GPM; --subspace hebbian: HLOP): every trained weight moves only outside the "
                   "span of its old presynaptic activity (inputs and previous spikes, all time steps); in scenarios "
                   "with new classes the readout is not projected, so their columns can learn.")
    untuned_flags = (
        Flag("--energy", "energy", "share of the old activity's energy the bases keep, in (0, 1]", type=float,
             default=METHODS["energy"]),
        Flag("--subspace", "subspace", "svd: GPM's basis at task end; hebbian: HLOP's Oja rows learnt online",
             type=str, default="svd", choices=SUBSPACES),
        Flag("--basis", "basis", "separate: one basis per matrix; joint: one per layer over [x_t; s_(t-1)]",
             type=str, default="separate", choices=BASIS_MODES),
        Flag("--hebbian-rows", "hebbian_rows", "hebbian: new rows per task and basis (capped at its width)",
             default=20),
        Flag("--hebbian-iterations", "hebbian_iterations", "hebbian: Oja updates per batch", default=3),
        Flag("--hebbian-lr", "hebbian_lr", "hebbian: Oja step relative to the input power", type=float,
             default=0.05),
        Flag("--hebbian-passes", "hebbian_passes", "hebbian: passes over the pretraining's batches at its end",
             default=5),
    )
    flags = tuned_flags(name, untuned_flags)  # the defaults python -m sccl.cli.tune chose, else these

    @classmethod
    def validate(cls, cfg, nb_steps):
        opt = {f.dest: cfg.options.get(f.dest, f.default) for f in cls.flags}
        if not (isinstance(opt["energy"], (int, float)) and 0 < opt["energy"] <= 1):
            raise ConfigError(f"--energy must be in (0, 1], got {opt['energy']}")
        if opt["subspace"] not in SUBSPACES:
            raise ConfigError(f"--subspace must be one of {', '.join(SUBSPACES)}, got '{opt['subspace']}'")
        if opt["basis"] not in BASIS_MODES:
            raise ConfigError(f"--basis must be one of {', '.join(BASIS_MODES)}, got '{opt['basis']}'")
        for dest in ("hebbian_rows", "hebbian_iterations", "hebbian_passes"):
            value = opt[dest]
            if isinstance(value, bool) or not isinstance(value, int):  # counts of rows, updates and passes
                raise ConfigError(f"--{dest.replace('_', '-')} must be a whole number >= 1, got {value}")
            if value < 1:
                raise ConfigError(f"--{dest.replace('_', '-')} must be >= 1, got {value}")
        if not (math.isfinite(opt["hebbian_lr"]) and opt["hebbian_lr"] > 0):
            raise ConfigError(f"--hebbian-lr must be a positive number, got {opt['hebbian_lr']}")

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        net = ctx.net
        self.groups = projection_groups(projected_weights(ctx.trainable, ctx.scenario), self.option("basis"))
        self.widths = [group_width(net, g) for g in self.groups]
        device = net.w_out.device
        if "w_out" in ctx.trainable and not any("w_out" in g for g in self.groups):
            ctx.log("projection: the tasks bring new classes, so the readout w_out is not projected")
        self.bases = [torch.zeros(n, 0, device=device) for n in self.widths]  # float32: what is stored
        self.hebbian = self.option("subspace") == "hebbian"
        self.learners = [OjaSubspace(n, device) for n in self.widths] if self.hebbian else []
        self._before: list | None = None
        self._batch = None

    # ------------------------------------------------------------------------------------------ the bases

    def _params(self, group):
        params = dict(self.ctx.net.named_parameters())
        return [params[n] for n in group]

    def _start_rows(self, task: int) -> None:
        for g, learner in enumerate(self.learners):
            gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + task * 7919 + g)
            learner.new_rows(self.option("hebbian_rows"), gen)

    def _learn(self, batch) -> None:
        lr, its = self.option("hebbian_lr"), self.option("hebbian_iterations")
        for learner, rows in zip(self.learners, presynaptic_rows(self.ctx.net, batch, self.groups)):
            learner.learn(rows, lr, its, HEBBIAN_MOMENTUM)

    def end_task(self, i: int) -> None:
        if self.hebbian:
            if i == 0 or not any(learner.updates for learner in self.learners):  # nothing learnt online
                self._start_rows(i)
                for _ in range(self.option("hebbian_passes")):
                    for batch in self.ctx.train_batches(i):
                        self._learn(batch)
            for learner in self.learners:
                learner.merge()
            self.bases = [learner.basis() for learner in self.learners]
        else:
            grams = activity_grams(self.ctx.net, self.ctx.train_batches(i), self.groups)
            for g, gram in enumerate(grams):
                basis, _ = extend_basis(self.bases[g], gram, self.option("energy"))
                self.bases[g] = basis.to(torch.float32).to(self.ctx.net.w_out.device)
        self.ctx.log(f"projection bases after task {i}: {self.describe_memory()}")

    # ------------------------------------------------------------------------------------------ hooks

    def start_task(self, i: int) -> None:
        if self.hebbian:
            self._start_rows(i)

    def extra_loss(self, batch, logits):
        self._batch = batch  # the Hebbian rows learn from it after the step
        return None

    def _project(self, tensors: list[torch.Tensor], basis: torch.Tensor) -> list[torch.Tensor]:
        stacked = torch.cat(tensors, dim=0) if len(tensors) > 1 else tensors[0]
        projected = project_out(stacked, basis.to(stacked.dtype))
        return list(projected.split([t.shape[0] for t in tensors], dim=0))

    @torch.no_grad()
    def edit_gradients(self) -> None:
        self._before = []
        for group, basis in zip(self.groups, self.bases):
            params = self._params(group)
            if basis.shape[1] == 0:  # nothing to protect (yet): the step stays as it is
                self._before.append(None)
                continue
            self._before.append([p.detach().clone() for p in params])
            if all(p.grad is None for p in params):
                continue
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            for p, g in zip(params, self._project(grads, basis)):
                if p.grad is not None:
                    p.grad.copy_(g)

    @torch.no_grad()
    def after_step(self) -> None:
        if self._before is not None:
            for group, basis, before in zip(self.groups, self.bases, self._before):
                if before is None:
                    continue
                params = self._params(group)
                steps = self._project([p - b for p, b in zip(params, before)], basis)
                for p, b, s in zip(params, before, steps):
                    p.copy_(b + s)
            self._before = None
        if self.hebbian and self._batch is not None:
            self._learn(self._batch)
            self._batch = None

    # ------------------------------------------------------------------------------------------ what it keeps

    @classmethod
    def keeps(cls, cfg):
        return frozenset({"state"})  # the bases

    @classmethod
    def option_label(cls, options):
        """GPM (SVD bases) or HLOP (Hebbian rows)."""
        return SUBSPACE_NAMES.get(options.get("subspace"))

    @property
    def ranks(self) -> list[int]:
        return [int(b.shape[1]) for b in self.bases]

    @property
    def memory_bytes_stored(self) -> int:
        return 4 * sum(n * r for n, r in zip(self.widths, self.ranks))

    @property
    def memory_bits_analytic(self) -> int:
        return 8 * self.memory_bytes_stored

    def describe_memory(self) -> str:
        kind = "Hebbian rows" if self.hebbian else f"GPM bases, energy {self.option('energy')}"
        parts = [f"{'+'.join(g)} {n}x{r}" for g, n, r in zip(self.groups, self.widths, self.ranks)]
        return f"{kind} ({self.option('basis')}): " + ", ".join(parts) + f"; {self.memory_bytes_stored} bytes float32"
