"""The built-in tuning plans of :mod:`sccl.cli.tune`: per method, the scenario, the epochs and the grid it is tuned on.

A plan is data: edit a row to change a grid (``STRATEGY.FLAG=V1,V2``, as ``python -m sccl.cli.tune --grid``; a
hosted method names the hosted strategy's flags, e.g. ``ewc.ewc-lambda`` for ``latent_replay+ewc``). ``quick``
matches reproduce.py's quick configuration (``CONFIGS["quick"]``: its pretraining, epochs, batch size and lr per
scenario and method; ``tests/test_tune.py`` checks the pretraining and the held-out ids against it), on seeds 3
and 4, which the reported results (seeds 0-2) do not use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One method's tuning: ``method`` is a strategy's name or ``HOST+NAME`` (a strategy hosted by another, e.g.
    ``latent_replay+ewc``); ``lr`` / ``batch_size`` None: the scenario's default; ``ids``: the held-out speaker or
    class of a two-task scenario (None: :data:`HELD_OUT`); ``latent_depth`` / ``latent_batches``: the host's cut
    and memory (None: the scenario's default)."""

    method: str
    scenario: str
    epochs: int
    grid: tuple[str, ...]
    lr: float | None = None
    batch_size: int | None = None
    ids: str | None = None
    latent_depth: int | None = None
    latent_batches: int | None = None


#: the held-out speaker / class of the two-task scenarios (reproduce.py's quick configuration)
HELD_OUT = {"sample_incremental": "3", "class_incremental": "7"}

# EWC's and SI's importances are normalised per layer, so their strengths live around 1e-2 .. 1e4
STRENGTHS = "0.01,0.1,1,10,100,1000,10000"
# the projection's energy: GPM's usual 0.97-0.99 and below (the first grids, 0.9-0.99 and 0.5-0.99, chose their
# lowest value)
ENERGIES = "0.1,0.3,0.5,0.7,0.8,0.9,0.95,0.97,0.99"

PLANS = {
    "quick": {
        "seeds": "3,4",
        "pretrain": {"epochs": 25, "lr": 1e-3, "batch_size": 64},  # reproduce.py CONFIGS["quick"]
        "entries": (
            # standalone: train all seven parameters, as in the quick configuration's class-incremental grid (30
            # epochs at the scenario's lr) and its progressive grid (5 epochs)
            Entry("ewc", "class_incremental", 30, (f"ewc.ewc-lambda={STRENGTHS}",)),
            # LwF: the distillation weight and Li & Hoiem's warm-up (epochs training only the new readout columns)
            Entry("lwf", "class_incremental", 30, ("lwf.lwf-alpha=0.1,1,10,100,1000",
                                                   "lwf.lwf-warmup-epochs=0,2,5,10,20")),
            Entry("projection", "class_incremental", 30, (f"projection.energy={ENERGIES}",)),
            # SI has no importance for the unobserved pretraining: in a two-task scenario it is naive fine-tuning
            Entry("si", "progressive", 5, (f"si.si-c={STRENGTHS}",)),
            # on top of latent replay at depth 2 with one batch per class, lr 1e-3 (the quick configuration's)
            # (the first grids chose their smallest strengths on top of replay: widened below)
            Entry("latent_replay+ewc", "class_incremental", 30, (f"ewc.ewc-lambda=0.0001,0.001,{STRENGTHS}",), lr=1e-3,
                  latent_depth=2, latent_batches=1),
            Entry("latent_replay+lwf", "class_incremental", 30, ("lwf.lwf-alpha=0.001,0.01,0.1,1,10,100,1000",),
                  lr=1e-3,
                  latent_depth=2, latent_batches=1),
            Entry("latent_replay+projection", "class_incremental", 30, (f"projection.energy={ENERGIES}",),
                  lr=1e-3, latent_depth=2, latent_batches=1),
            Entry("latent_replay+si", "progressive", 10, (f"si.si-c={STRENGTHS}",), lr=1e-3, latent_depth=2,
                  latent_batches=1),
        ),
    },
}
