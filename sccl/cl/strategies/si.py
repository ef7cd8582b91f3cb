"""Synaptic intelligence (Zenke, Poole & Ganguli 2017): importance from the path integral of the task loss.

During a task, every optimiser step adds ω += −g · Δθ per trained scalar, with g the gradient of the task loss
(the data loss, without this strategy's own penalty, as the paper does) and Δθ the step actually taken. At the
end of the task Ω += ω / (Δ² + ξ), Δ the total change of the scalar over the task's training, and θ* is set.

Choices:
* g is the gradient left in ``.grad`` by the step minus the analytic gradient of SI's own penalty,
  2 c Ω (θ − θ*): the task loss's gradient without a second backward. Whatever else is in the loss (replay
  batches, another component's term) counts as task loss.
* Δ runs from the task's first step to its end: the start is taken at the first step, after the engine has
  re-drawn a new class's readout column, so the re-draw (not a step of the path) is in neither ω nor Δ.
* The pretraining (task 0) was not observed, so its path integral does not exist: at its end only θ* is set and
  Ω = 0. SI protects from the first observed task on; in a two-task scenario it is therefore naive fine-tuning.
* ω, the task's starting point and the last step's g and θ are working state during a task; what is kept across
  tasks (the memory) is Ω and θ*.
* Each task's ω / (Δ² + ξ) is normalised per parameter tensor before it joins Ω (``--importance-norm mean``, the
  default; ``none``: the paper's form), and the readout columns of the task's new classes are free during it
  (:mod:`sccl.cl.strategies.anchoring`).
"""

from __future__ import annotations

import torch

from sccl.cl.strategies.anchoring import IMPORTANCE_NORM_FLAG, ImportanceAnchoredStrategy, detached_copies, require
from sccl.cl.strategies.base import Flag, tuned_flags
from sccl.core.defaults import METHODS


class SynapticIntelligence(ImportanceAnchoredStrategy):
    name = "si"
    label = "SI"
    description = ("Synaptic intelligence: each scalar's importance is its share of the task loss's decrease along "
                   "the training path, Omega += omega / (Delta^2 + xi) (normalised per tensor by its mean, "
                   "--importance-norm); penalty c sum Omega (theta - theta*)^2, a new class's readout column free "
                   "during its task. The "
                   "pretraining was not observed, so task 0 gets no importance: SI protects only tasks trained "
                   "here (in a two-task scenario it is naive fine-tuning).")
    untuned_flags = (
        Flag("--si-c", "si_c", "penalty strength c", type=float, default=METHODS["si_c"]),
        Flag("--si-xi", "si_xi", "damping xi of Omega = omega / (Delta^2 + xi), to be set near a task's squared "
             "weight change: the weights here are ~0.01, so MNIST's usual 0.1 would swamp Delta^2", type=float,
             default=1e-3),
        IMPORTANCE_NORM_FLAG,
    )
    flags = tuned_flags(name, untuned_flags)  # the defaults python -m sccl.cli.tune chose, else these
    importance_name = "importance Omega"

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self._reset_path()

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        require(cls, cfg, "si_c", lambda v: v >= 0, "a number >= 0")
        require(cls, cfg, "si_xi", lambda v: v > 0, "a number > 0")

    def penalty_scale(self) -> float:
        return self.option("si_c")

    def _reset_path(self) -> None:
        self.omega: dict[str, torch.Tensor] = {}
        self.task_start: dict[str, torch.Tensor] | None = None
        self.step_start: dict[str, torch.Tensor] = {}
        self.task_gradient: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------------------------------ hooks

    def start_task(self, i):
        super().start_task(i)
        self._reset_path()

    def edit_gradients(self):
        params = self.trained_parameters()
        if self.task_start is None:
            self.task_start = detached_copies(params)
            self.omega = {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()}
        penalty = self.penalty_gradient() if self.anchor else {}
        self.task_gradient = {}
        for n, p in params.items():
            g = torch.zeros_like(p, requires_grad=False) if p.grad is None else p.grad.detach().clone()
            self.task_gradient[n] = g - penalty[n] if n in penalty else g
        self.step_start = detached_copies(params)

    def after_step(self):
        for n, p in self.trained_parameters().items():
            self.omega[n] -= self.task_gradient[n] * (p.detach() - self.step_start[n])

    def end_task(self, i):
        params = self.trained_parameters()
        if self.task_start is None:  # task 0 (not observed) or a task without steps: no path, no importance
            importance = {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()}
        else:
            xi = self.option("si_xi")
            importance = {n: self.omega[n] / ((p.detach() - self.task_start[n]) ** 2 + xi)
                          for n, p in params.items()}
        self.consolidate(importance)
        self._reset_path()
