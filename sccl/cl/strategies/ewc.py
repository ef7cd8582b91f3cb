"""Online elastic weight consolidation (Kirkpatrick et al. 2017; the online form of Schwarz et al. 2018).

After each task (the pretraining included) the diagonal empirical Fisher of the trained parameters is estimated
from that task's training data and added to a decayed running sum; the penalty pulls each scalar back to its value
at the end of the last task in proportion to it. Empirical Fisher: squared gradients of log p(y|x) at the true
label, one sample at a time (the mean of squared per-sample gradients, not the square of a batch's mean gradient,
which would be smaller by about the batch size). On the 700-200-100-50-20 network with T = 100 steps, 200 samples
take about 3 s on one core (every parameter trained, all layers spiking), so no cheaper estimator is offered.

Each task's Fisher is normalised per parameter tensor before it joins the sum (``--importance-norm mean``, the
default; ``none``: the paper's form) and the readout columns of the task's new classes are free during it
(:mod:`sccl.cl.strategies.anchoring`). λ's default is calibrated for neither form until ``python -m sccl.cli.tune`` sets
it (:func:`sccl.core.defaults.tuned`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import islice

import torch

from sccl.cl.strategies.anchoring import IMPORTANCE_NORM_FLAG, ImportanceAnchoredStrategy, require
from sccl.cl.strategies.base import Flag, tuned_flags
from sccl.core.defaults import METHODS
from sccl.learn.training import Batch, logits_of, nll_loss
from sccl.net.sparse_input import SparseInput


def single_samples(batch: Batch) -> Iterator[Batch]:
    """The batch's samples one at a time, in order, each as a batch of one of the same kind."""
    x = batch.x.to_dense() if isinstance(batch.x, SparseInput) else batch.x
    for j in range(len(batch)):
        xj = x[:, j:j + 1] if batch.time_major else x[j:j + 1]
        yield replace(batch, x=xj, y=batch.y[j:j + 1])


def empirical_fisher(net, params: dict[str, torch.nn.Parameter], batches: list[Batch],
                     max_samples: int) -> dict[str, torch.Tensor]:
    """Mean over the first ``max_samples`` samples (in batch order) of the squared gradient of log p(y|x)
    with respect to each of ``params``."""
    fisher = {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()}
    names, tensors = list(params), list(params.values())
    wanted = [p.requires_grad for p in tensors]
    for p in tensors:
        p.requires_grad_(True)
    samples = islice((s for batch in batches for s in single_samples(batch)), max_samples)
    seen = 0
    try:
        for sample in samples:
            nll = nll_loss(logits_of(net, sample), sample.y)
            grads = torch.autograd.grad(nll, tensors, allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:
                    fisher[n] += g.detach() ** 2
            seen += 1
    finally:
        for p, w in zip(tensors, wanted):
            p.requires_grad_(w)
    return {n: f / max(seen, 1) for n, f in fisher.items()}


class OnlineEWC(ImportanceAnchoredStrategy):
    name = "ewc"
    label = "EWC"
    description = ("Online EWC: after every task (the pretraining included) add the diagonal empirical Fisher of "
                   "the trained parameters on that task's training data (normalised per tensor by its mean, "
                   "--importance-norm) to a decayed running sum, and pull each parameter towards its end-of-task "
                   "value with (lambda/2) sum F (theta - theta*)^2; a new class's readout column is free during its "
                   "task.")
    untuned_flags = (
        Flag("--ewc-lambda", "ewc_lambda", "penalty strength lambda (with --importance-norm none, 1 is the quadratic "
             "approximation of the old tasks' mean NLL)", type=float, default=METHODS["ewc_lambda"]),
        Flag("--ewc-gamma", "ewc_gamma", "decay of the running Fisher at each new task (1: plain sum)", type=float,
             default=1.0),
        Flag("--fisher-samples", "fisher_samples", "training samples per task the Fisher is estimated from (the "
             "first ones, in batch order)", type=int, default=200),
        IMPORTANCE_NORM_FLAG,
    )
    flags = tuned_flags(name, untuned_flags)  # the defaults python -m sccl.cli.tune chose, else these
    importance_name = "diagonal Fisher"

    @classmethod
    def validate(cls, cfg, nb_steps):
        super().validate(cfg, nb_steps)
        require(cls, cfg, "ewc_lambda", lambda v: v >= 0, "a number >= 0")
        require(cls, cfg, "ewc_gamma", lambda v: 0 <= v <= 1, "between 0 and 1")
        require(cls, cfg, "fisher_samples", lambda v: v >= 1 and v == int(v), "an integer >= 1")

    def penalty_scale(self) -> float:
        return self.option("ewc_lambda") / 2

    def end_task(self, i):
        samples = int(self.option("fisher_samples"))
        fisher = empirical_fisher(self.ctx.net, self.trained_parameters(), self.ctx.train_batches(i, samples),
                                  samples)
        self.consolidate(fisher, decay=self.option("ewc_gamma"))
