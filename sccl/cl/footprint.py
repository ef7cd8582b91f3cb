"""A run's footprint: the bytes the whole learner needs, as a device would have to hold them.

* the learning state (:func:`sccl.cl.metrics.learning_state`): the replay memory, the trained parameters, the
  optimiser's state (Adamax: two tensors of each trained parameter's size) and the regulariser's state;
* the frozen parameters (the layers at or below the cut, still needed for inference and to turn new samples into
  latents);
* the activations one training step keeps for its backward pass (:func:`sccl.net.footprint.activation_bytes`) and
  the batch it reads (:func:`sccl.net.footprint.batch_bytes`), at the run's batch size and at batch 1 (the least a
  learner that takes one sample at a time needs).

``whole_learner_bytes`` adds them up at the run's batch size, ``whole_learner_bytes_batch1`` at batch 1. Values
are float32 (4 B), unless the run trains at a reduced precision (``value_bytes``: bytes of a trained parameter,
of its optimiser state and of a frozen parameter).
"""

from __future__ import annotations

from sccl.cl import metrics
from sccl.learn.quantize import state_bytes
from sccl.net.footprint import activation_bytes, batch_bytes


OPTIMIZER_STATE_TENSORS = 2  # fit_task's Adamax keeps exp_avg and exp_inf, each of its parameter's size
#: bytes a value in float32: of a trained parameter, of its optimiser state, of a frozen parameter
FLOAT32_VALUE_BYTES = {"trained": 4, "optimizer": 4 * OPTIMIZER_STATE_TENSORS, "frozen": 4}


def value_bytes_of(precision: str) -> dict | None:
    """Bytes a value of a trained parameter, of its optimiser state and of a frozen parameter at a reduced
    ``precision`` (:func:`sccl.learn.quantize.state_bytes`); None at float32 (the parameters' own dtype)."""
    if precision == "float32":
        return None
    one = state_bytes(precision, 1, 1)
    return {"trained": one["trained_weights"], "optimizer": one["optimizer_state"], "frozen": one["frozen_weights"]}


def _bytes(params, per_value: int | None) -> int:
    """Bytes of ``params`` at ``per_value`` bytes a value (None: as they are held, e.g. 4 for float32)."""
    return sum(p.numel() * (p.element_size() if per_value is None else per_value) for p in params)


def learning_state_of(strategy, value_bytes: dict | None = None) -> dict[str, int]:
    """The bytes a run holds to go on learning (:func:`sccl.cl.metrics.learning_state`): the strategy's replay
    memory and regulariser state, its trained parameters and their Adamax state (``value_bytes``: a reduced
    precision's bytes a value; None: the parameters' own dtype, two optimiser tensors of the same)."""
    trained = strategy.trained_parameters().values()
    per = value_bytes or {}
    tensors = per["optimizer"] // per["trained"] if per else OPTIMIZER_STATE_TENSORS
    return metrics.learning_state(_bytes(trained, per.get("trained")), strategy.replay_memory_bytes,
                                  strategy.memory_bytes_stored, tensors)


def footprint_of(strategy, net, depth: int | None, batch_size: int, nb_steps: int,
                 value_bytes: dict | None = None) -> dict[str, int]:
    """Every part of the whole learner's bytes (module docstring) and the totals."""
    state = learning_state_of(strategy, value_bytes)
    trained = set(strategy.trained_parameters())
    frozen = _bytes([p for n, p in net.named_parameters() if n not in trained], (value_bytes or {}).get("frozen"))
    width = net.nb_inputs if depth is None else net.depth_size(depth)
    shape = (net.hidden_sizes, net.nb_outputs, depth)
    parts = {
        **{k: v for k, v in state.items() if k != "total_bytes"}, "learning_state_bytes": state["total_bytes"],
        "frozen_parameter_bytes": frozen,
        "activation_bytes": activation_bytes(*shape, batch_size, nb_steps),
        "activation_bytes_batch1": activation_bytes(*shape, 1, nb_steps),
        "batch_bytes": batch_bytes(width, depth, batch_size, nb_steps),
        "batch_bytes_batch1": batch_bytes(width, depth, 1, nb_steps),
    }
    parts["whole_learner_bytes"] = (parts["learning_state_bytes"] + frozen + parts["activation_bytes"]
                                    + parts["batch_bytes"])
    parts["whole_learner_bytes_batch1"] = (parts["learning_state_bytes"] + frozen + parts["activation_bytes_batch1"]
                                           + parts["batch_bytes_batch1"])
    return parts
