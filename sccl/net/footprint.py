"""The memory one training step of the network needs, in bytes, computed from its shape (no run needed).

A step trains the layers above the cut depth d (:data:`sccl.net.model.TRAINABLE_BY_DEPTH`; d = None: from the
input, every layer) on a batch of B samples of T steps. What its backward pass keeps, in this implementation
(float32, 4 B a value; :mod:`sccl.net.lif`, :mod:`sccl.net.model`):

* every trained hidden layer l (l > d): its spikes O_l (T x B x H_l, kept by :class:`~sccl.net.lif.LIFFunction`
  and by the next layer's feed-forward product, one tensor) and its surrogate-gradient buffer (T x B x H_l);
* the readout: its (T+1) x T kernel, the log-softmax of the logits (B x C, 4 B), the max-over-time indices (B x C,
  int64) and the labels (B, int64), and the loss (4 B).

The batch itself (the input at the cut: latents, currents or raw counts) is data, not an activation: it is held by
the replay memory or by whatever delivers new samples, and counted there (:func:`batch_bytes`).
``tests/test_footprint.py`` checks this count against what autograd actually saves in a step.
"""

from __future__ import annotations

from sccl.net.model import TRAINABLE_BY_DEPTH


FLOAT_BYTES = 4
INDEX_BYTES = 8


def trained_hidden_layers(depth: int | None) -> tuple[int, ...]:
    """The hidden layers (1..3) a step at cut ``depth`` trains: those above it."""
    return tuple(range(1 if depth is None else depth + 1, 4))


def activation_bytes(hidden_sizes, nb_classes: int, depth: int | None, batch_size: int, nb_steps: int) -> int:
    """Bytes the backward pass of one training step keeps (module docstring)."""
    if depth is not None and depth not in TRAINABLE_BY_DEPTH:
        raise ValueError(f"depth must be None or one of {sorted(TRAINABLE_BY_DEPTH)}, got {depth}")
    T, B = int(nb_steps), int(batch_size)
    hidden = sum(hidden_sizes[layer - 1] for layer in trained_hidden_layers(depth))
    spikes_and_surrogates = 2 * FLOAT_BYTES * T * B * hidden
    readout = FLOAT_BYTES * (T + 1) * T + (FLOAT_BYTES + INDEX_BYTES) * B * nb_classes + INDEX_BYTES * B + FLOAT_BYTES
    return spikes_and_surrogates + readout


def batch_bytes(cut_width: int, depth: int | None, batch_size: int, nb_steps: int) -> int:
    """Bytes of one batch at the cut as a step reads it: float32 activity (T x B x width) at a depth, one byte a
    count for raw input (``depth`` None; ``cut_width``: the input channels)."""
    per_value = 1 if depth is None else FLOAT_BYTES
    return per_value * int(nb_steps) * int(batch_size) * int(cut_width)


def parameter_shapes(nb_inputs: int, hidden_sizes, nb_classes: int) -> dict[str, tuple[int, int]]:
    """Every weight matrix's (rows, columns), by name (:data:`sccl.net.model.PARAM_NAMES`)."""
    h1, h2, h3 = hidden_sizes
    return {"w1": (nb_inputs, h1), "w2": (h1, h2), "w3": (h2, h3), "v1": (h1, h1), "v2": (h2, h2), "v3": (h3, h3),
            "w_out": (h3, nb_classes)}


def trained_values(nb_inputs: int, hidden_sizes, nb_classes: int, depth: int | None) -> int:
    """How many parameter values a run at cut ``depth`` trains (None: every one)."""
    shapes = parameter_shapes(nb_inputs, hidden_sizes, nb_classes)
    names = shapes if depth is None else TRAINABLE_BY_DEPTH[depth]
    return sum(r * c for r, c in (shapes[n] for n in names))
