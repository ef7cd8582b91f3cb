"""NeuroBench-style activity metrics of the network: synaptic operations, activation sparsity, spikes per sample.

The top-level names are NeuroBench's (v1): ``footprint``, ``connection_sparsity``, ``activation_sparsity`` and
``synaptic_operations`` = {``Effective_MACs``, ``Effective_ACs``, ``Dense``}; sccl's extras sit beside them under
names of their own. No neurobench dependency: every number follows the rules below and can be recomputed by hand.

Notation: a weight matrix M (fan_in x fan_out, rows = inputs) is applied at each of the T steps of a sample to an
input vector u(t) of fan_in values; nnz(u) counts the non-zero input values of a sample over all its steps.

Synaptic operations of a forward pass (per matrix, summed over the batch, then divided by the number of samples):

* ``Dense`` = T x fan_in x fan_out: every weight used at every step as if every input were non-zero.
* effective = nnz(u) x fan_out: one operation per weight leaving a non-zero input (weights that are exactly 0 are
  not skipped, as NeuroBench does). They are ``Effective_ACs`` when every value of u in that batch is 0 or 1 (binary
  spikes: an accumulate), ``Effective_MACs`` otherwise (one value that is not 0/1 makes the whole batch's count
  MACs for that matrix).
* inputs: w1 takes the input counts (binned SHD spikes: a bin holding 2 spikes of a channel is a count of 2, so a
  batch with such a bin counts w1's operations as MACs, a batch of 0/1 counts as ACs); w2, w3 the spikes of the
  layer below, w_out the spikes of layer 3 (always binary: ACs). The recurrent v_l at step t takes s_l(t-1), so
  its effective count uses the spikes of steps 0..T-2 (step 0 has no previous spikes); its Dense still counts all
  T steps (T x H_l x H_l), as for every matrix.
* not synaptic operations, so not counted: the LIF state updates, the threshold scaling, the readout's leak
  (its kernel over time), the readout gain, the max over time, the loss, the optimiser's update.

SHD sizes (700 -> 200 -> 100 -> 50 -> 20) at T = 100: Dense = 100 x (700*200 + 200*200 + 200*100 + 100*100 +
100*50 + 50*50 + 50*20) = 21,850,000 per sample.

``activation_sparsity`` = 1 - (spikes of the hidden layers) / (neuron outputs of the hidden layers), over every
sample and step (layers 1..3; the readout does not spike and is left out). Per layer l: 1 - spikes_l / (B T H_l).
``spikes_per_sample``: the spikes of a layer (or of all three) divided by the number of samples.
``footprint``: bytes of the model's parameters and buffers (numel x element size). ``connection_sparsity``: the
fraction of the seven matrices' weights that are exactly 0.

One training step (:func:`training_step_activity`) on a batch at depth d (its x the depth-d activity, as the
continual-learning engine trains: layers at or below the cut are frozen and their activity is cached, so they
cost nothing per step; d None: from the input, everything trained):

* forward: the rules above for the matrices that run above the cut (depth 0: v1 and up, layer 1 driven by the
  cached currents; depth 1: w2 and up; depth 2: w3, v3, w_out; depth 3: w_out), u of the cut's matrix being x;
* weight gradient of every trained matrix (``trainable_for_depth``): dM = sum over t of u(t)^T delta(t), one
  operation per non-zero input per output: effective = nnz(u) x fan_out (ACs when u is binary, MACs otherwise:
  the same count as its forward), Dense = T x fan_in x fan_out;
* error propagated to the matrix's input, delta(t) @ M^T: the surrogate error is dense, so effective MACs =
  Dense = T x fan_in x fan_out; none for the matrix whose input is the cut itself (x, or the raw input at d None).

T is the batch's own number of steps (a fewer-step batch: its S steps; a sum-compressed cut is not binary: MACs).
These are the rule's counts, not the kernels' (the LIF backward skips its boundary steps; the rule does not).
All counts are per sample (divided by the batch size). Counted with Python integers, exactly, before that.
"""

from __future__ import annotations

import math

import torch

from sccl.net.model import RecurrentSNN, SparseInput


__all__ = ["inference_activity", "training_step_activity", "neurobench_record", "footprint", "connection_sparsity",
           "MATRICES", "NEUROBENCH_KEYS", "OPERATIONS"]

#: the weight matrices in the order the network applies them
MATRICES = ("w1", "v1", "w2", "v2", "w3", "v3", "w_out")
#: NeuroBench's names for the synaptic operations
OPERATIONS = ("Effective_MACs", "Effective_ACs", "Dense")
#: NeuroBench's metrics, first in a record
NEUROBENCH_KEYS = ("footprint", "connection_sparsity", "activation_sparsity", "synaptic_operations")
#: the matrix whose input is the step's x at each depth (it needs no input error); depth 0 has none
CUT_MATRIX = {None: "w1", 0: None, 1: "w2", 2: "w3", 3: "w_out"}


def _nonzeros(u) -> tuple[int, bool]:
    """(number of non-zero values, whether every value is 0 or 1) of a tensor or a SparseInput's counts."""
    values = u.counts if isinstance(u, SparseInput) else u
    binary = bool(((values == 0) | (values == 1)).all()) if values.numel() else True
    return int(torch.count_nonzero(values)), binary


def _forward(net: RecurrentSNN, x, depth: int | None, time_factor: int = 1, threshold: float = 1.0):
    """Run the layers above ``depth`` on ``x`` (the raw input at None, else time-major depth activity).

    Returns ``(inputs, spikes)``: the (nnz, binary) of every running matrix's input, and the spikes (T, B, H) of
    every running hidden layer, keyed 1..3."""
    inputs, spikes = {}, {}
    if depth is None:
        inputs["w1"] = _nonzeros(x)
        s, first = net.input_currents(x), 0
    else:
        s, first = x, depth
    if first == 0:
        s = net.hidden_layer(1, s, time_factor, threshold)
        spikes[1], first = s, 1
    for layer in range(first + 1, 4):
        inputs[f"w{layer}"] = _nonzeros(s)
        s = net.hidden_layer(layer, net.feedforward(layer, s), time_factor, threshold)
        spikes[layer] = s
    inputs["w_out"] = _nonzeros(s)
    for layer, s in spikes.items():
        inputs[f"v{layer}"] = _nonzeros(s[:-1])
    return {name: inputs[name] for name in MATRICES if name in inputs}, spikes


def _forward_ops(net: RecurrentSNN, name: str, nnz: int, binary: bool, steps: int, samples: int) -> list[int]:
    """[MACs, ACs, Dense] of matrix ``name`` over a batch (see the module docstring)."""
    fan_in, fan_out = getattr(net, name).shape
    effective = nnz * fan_out
    return [0 if binary else effective, effective if binary else 0, steps * fan_in * fan_out * samples]


def _add(total: list, ops) -> list:
    for i, v in enumerate(ops):
        total[i] += v
    return total


def _per_sample(ops, samples: int) -> dict:
    return {key: v / samples for key, v in zip(OPERATIONS, ops)}


def _batch_x(net: RecurrentSNN, batch, depth: int | None):
    """The batch's x on the network's device: the raw input at depth None, else time-major (T, B, H) activity."""
    x, from_depth = batch.x, batch.from_depth
    device, dtype = net.w_out.device, net.w_out.dtype
    if isinstance(x, SparseInput):
        if from_depth is not None:
            raise ValueError("a SparseInput batch is raw input (from_depth None)")
        x = x.to(device)
    elif not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"batch.x must be a SparseInput or a 3-d tensor, got {type(x).__name__}")
    else:
        x = x.to(device)
    if from_depth is None and depth is not None:  # raw batch, frozen prefix computed once (not counted)
        return net.activity_time_major(x, depth).to(dtype)
    if from_depth != depth:
        raise ValueError(f"the batch holds depth-{from_depth} activity, not depth {depth}")
    if depth is None:
        return x
    if not getattr(batch, "time_major", False):
        x = x.transpose(0, 1)
    if x.shape[2] != net.depth_size(depth):
        raise ValueError(f"depth-{depth} activity must have {net.depth_size(depth)} units, got {x.shape[2]}")
    return x.contiguous().to(dtype)


def _size(x, depth: int | None) -> tuple[int, int]:
    """(T, B) of a raw input (depth None: batch-first or a SparseInput) or of time-major depth activity."""
    if isinstance(x, SparseInput):
        return x.nb_steps, x.batch_size
    return (int(x.shape[1]), int(x.shape[0])) if depth is None else (int(x.shape[0]), int(x.shape[1]))


def _layer_metrics(counts: dict, outputs: dict, samples: int) -> dict:
    """activation_sparsity (overall and per layer) and spikes per sample (total and per layer) from the spike
    ``counts`` and neuron ``outputs`` (B x T x H) of hidden layers keyed 1..3."""
    total = sum(outputs.values())
    return {
        "activation_sparsity": 1 - sum(counts.values()) / total if total else None,
        "spikes_per_sample": sum(counts.values()) / samples,
        "activation_sparsity_per_layer": {f"layer{l}": 1 - counts[l] / outputs[l] for l in counts},
        "spikes_per_sample_per_layer": {f"layer{l}": counts[l] / samples for l in counts},
    }


def footprint(net: RecurrentSNN) -> int:
    """Bytes of the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))


def connection_sparsity(net: RecurrentSNN) -> float:
    """Fraction of the seven weight matrices' entries that are exactly 0."""
    weights = [getattr(net, name) for name in MATRICES]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


@torch.no_grad()
def inference_activity(net: RecurrentSNN, batches) -> dict:
    """Per-sample activity of the whole network over raw input ``batches`` (Batch objects, from_depth None, x a
    SparseInput or dense (B, T, N) counts; one Batch is taken as a list of one). Keys: NEUROBENCH_KEYS, then
    ``samples``, ``nb_steps`` (mean T per sample), ``spikes_per_sample``, ``activation_sparsity_per_layer``,
    ``spikes_per_sample_per_layer`` (both keyed layer1..layer3) and ``synaptic_operations_per_matrix`` (w1, v1, w2,
    v2, w3, v3, w_out -> the three operation counts)."""
    if hasattr(batches, "x"):
        batches = [batches]
    per_matrix = {name: [0, 0, 0] for name in MATRICES}
    counts, outputs = dict.fromkeys((1, 2, 3), 0), dict.fromkeys((1, 2, 3), 0)
    samples = steps = 0
    for batch in batches:
        if batch.from_depth is not None:
            raise ValueError("inference_activity counts the whole network: give raw input batches (from_depth None)")
        x = _batch_x(net, batch, None)
        T, B = _size(x, None)
        inputs, spikes = _forward(net, x, None, getattr(batch, "time_factor", 1), getattr(batch, "threshold", 1.0))
        for name, (nnz, binary) in inputs.items():
            _add(per_matrix[name], _forward_ops(net, name, nnz, binary, T, B))
        for layer, s in spikes.items():
            counts[layer] += int(torch.count_nonzero(s))
            outputs[layer] += s.numel()
        samples, steps = samples + B, steps + B * T
    if samples == 0:
        raise ValueError("inference_activity needs at least one sample")
    total = [0, 0, 0]
    for ops in per_matrix.values():
        _add(total, ops)
    layers = _layer_metrics(counts, outputs, samples)
    return {
        "footprint": footprint(net),
        "connection_sparsity": connection_sparsity(net),
        "activation_sparsity": layers.pop("activation_sparsity"),
        "synaptic_operations": _per_sample(total, samples),
        "samples": samples,
        "nb_steps": steps / samples,
        **layers,
        "synaptic_operations_per_matrix": {name: _per_sample(ops, samples) for name, ops in per_matrix.items()},
    }


@torch.no_grad()
def training_step_activity(net: RecurrentSNN, batch, depth: int | None) -> dict:
    """Per-sample operations of ONE training step on ``batch`` at ``depth`` (see the module docstring).

    ``batch.x``: depth-``depth`` activity (from_depth = depth, time-major when ``batch.time_major``, else
    batch-first), or a raw input batch (from_depth None), whose frozen prefix is then computed first and not
    counted. Keys: NEUROBENCH_KEYS[2:] (``synaptic_operations`` = forward + backward; ``activation_sparsity`` over
    the hidden layers that run, None when none does), then ``depth``, ``trained``, ``samples``, ``nb_steps``,
    ``forward_synaptic_operations``, ``backward_synaptic_operations``, ``spikes_per_sample``,
    ``activation_sparsity_per_layer``, ``spikes_per_sample_per_layer`` (the running layers only) and
    ``synaptic_operations_per_matrix``: every running matrix -> {``forward``, ``weight_gradient``, ``input_error``}
    -> the three operation counts."""
    if depth is not None:
        net._check_depth(depth)
    x = _batch_x(net, batch, depth)
    T, B = _size(x, depth)
    if B == 0:
        raise ValueError("training_step_activity needs at least one sample")
    inputs, spikes = _forward(net, x, depth, getattr(batch, "time_factor", 1), getattr(batch, "threshold", 1.0))
    trained = set(net.trainable_for_depth(depth))
    forward, backward, per_matrix = [0, 0, 0], [0, 0, 0], {}
    for name, (nnz, binary) in inputs.items():
        ops = _forward_ops(net, name, nnz, binary, T, B)
        grad, error = [0, 0, 0], [0, 0, 0]
        if name in trained:
            grad = list(ops)  # the weight gradient uses each non-zero input once per output, as the forward
            if name != CUT_MATRIX[depth]:
                error = [ops[2], 0, ops[2]]  # dense error: T x fan_in x fan_out MACs
        _add(forward, ops)
        _add(_add(backward, grad), error)
        per_matrix[name] = {"forward": _per_sample(ops, B), "weight_gradient": _per_sample(grad, B),
                            "input_error": _per_sample(error, B)}
    layers = _layer_metrics({l: int(torch.count_nonzero(s)) for l, s in spikes.items()},
                            {l: s.numel() for l, s in spikes.items()}, B)
    return {
        "activation_sparsity": layers["activation_sparsity"],
        "synaptic_operations": _per_sample(_add(list(forward), backward), B),
        "depth": depth,
        "trained": [name for name in MATRICES if name in trained],
        "samples": B,
        "nb_steps": T,
        "forward_synaptic_operations": _per_sample(forward, B),
        "backward_synaptic_operations": _per_sample(backward, B),
        "spikes_per_sample": layers["spikes_per_sample"],
        "activation_sparsity_per_layer": layers["activation_sparsity_per_layer"],
        "spikes_per_sample_per_layer": layers["spikes_per_sample_per_layer"],
        "synaptic_operations_per_matrix": per_matrix,
    }


def _json_ready(value):
    """Floats to 6 significant digits (ints where whole, None where not finite); containers recursively."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, torch.Tensor):
        value = value.item()
    value = float(value) if not isinstance(value, int) else value
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        return None
    value = float(f"{value:.6g}")
    return int(value) if value.is_integer() else value


def _neurobench_first(d: dict) -> dict:
    return {**{k: d[k] for k in NEUROBENCH_KEYS if k in d}, **{k: v for k, v in d.items() if k not in NEUROBENCH_KEYS}}


def neurobench_record(inference: dict, training: dict | None = None) -> dict:
    """The JSON-ready record a run writes: NeuroBench's metrics first, then sccl's extras, then (when given) the
    training step's metrics under ``training_step`` (its NeuroBench keys first too)."""
    record = _neurobench_first(inference)
    if training is not None:
        record["training_step"] = _neurobench_first(training)
    return _json_ready(record)
