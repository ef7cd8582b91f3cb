"""sccl.net.activity: NeuroBench-style synaptic operations, activation sparsity and spikes per sample, checked
against counts made by hand on a tiny network whose spikes are written out literally."""

import json

import pytest
import torch

from sccl.learn.training import Batch
from sccl.net.activity import (MATRICES, NEUROBENCH_KEYS, inference_activity, neurobench_record,
                               training_step_activity)
from sccl.net.model import RecurrentSNN, SparseInput


T = 8

# The tiny net: 3 inputs -> 2 -> 2 -> 2 -> 2 classes, all 30 weights 0 but five:
# input 0 -> neuron 0 of layer 1, input 1 -> neuron 1 of layer 1 (input 2 reaches nothing),
# layer-1 neuron 0 -> layer-2 neuron 1, layer-2 neuron 1 -> layer-3 neuron 0, layer-3 neuron 0 -> class 0.
# Input spikes: channel 0 at step 0, channel 2 at step 1, channel 1 at step 4 (3 non-zero input values).
# The spikes (as net.record gives them, checked in test_the_tiny_net_spikes_as_written):
SPIKES1 = [[0, 0], [0, 0], [1, 0], [0, 0], [1, 0], [0, 0], [0, 1], [1, 0]]  # 4 spikes, 3 in steps 0..6
SPIKES2 = [[0, 0], [0, 0], [0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]]  # 2 spikes, 2 in steps 0..6
SPIKES3 = [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [1, 0], [0, 0]]  # 1 spike,  1 in steps 0..6


def tiny_net() -> RecurrentSNN:
    net = RecurrentSNN(nb_inputs=3, hidden_sizes=(2, 2, 2), nb_outputs=2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.w1[0, 0] = 2.0
        net.w1[1, 1] = 2.0
        net.w2[0, 1] = 2.0
        net.w3[1, 0] = 2.0
        net.w_out[0, 0] = 1.0
    return net


def tiny_input(count_on_channel_2: float = 1.0, samples: int = 1) -> torch.Tensor:
    x = torch.zeros(1, T, 3)
    x[0, 0, 0] = 1.0
    x[0, 1, 2] = count_on_channel_2
    x[0, 4, 1] = 1.0
    return x.repeat(samples, 1, 1)


def raw(x) -> Batch:
    return Batch(x, torch.zeros(len(x), dtype=torch.long))


def at_depth(depth: int, samples: int = 1, time_major: bool = True) -> Batch:
    """The tiny net's depth-2 or depth-3 spikes, as the engine caches them."""
    spikes = {2: SPIKES2, 3: SPIKES3}[depth]
    z = torch.tensor(spikes, dtype=torch.float32).unsqueeze(1).repeat(1, samples, 1)  # (T, B, 2)
    return Batch(z if time_major else z.transpose(0, 1).contiguous(), torch.zeros(samples, dtype=torch.long),
                 from_depth=depth, time_major=time_major)


def ops(macs, acs, dense) -> dict:
    return {"Effective_MACs": macs, "Effective_ACs": acs, "Dense": dense}


def test_the_tiny_net_spikes_as_written():
    rec = tiny_net().record(tiny_input())
    for name, expected in (("spikes1", SPIKES1), ("spikes2", SPIKES2), ("spikes3", SPIKES3)):
        assert rec[name][:, 0].tolist() == expected, name
    # a count of 2 on channel 2 (which reaches nothing) changes no spike
    rec2 = tiny_net().record(tiny_input(2.0))
    assert rec2["spikes1"][:, 0].tolist() == SPIKES1 and rec2["spikes3"][:, 0].tolist() == SPIKES3


def test_dense_operations_at_shd_sizes():
    net = RecurrentSNN()  # 700 -> 200 -> 100 -> 50 -> 20
    out = inference_activity(net, raw(torch.zeros(1, 100, 700)))
    assert out["synaptic_operations"] == ops(0, 0, 21_850_000)
    assert 21_850_000 == (700 * 200 + 200 * 200 + 200 * 100 + 100 * 100 + 100 * 50 + 50 * 50 + 50 * 20) * 100
    assert out["activation_sparsity"] == 1.0 and out["spikes_per_sample"] == 0
    assert out["footprint"] == (700 * 200 + 200 * 200 + 200 * 100 + 100 * 100 + 100 * 50 + 50 * 50 + 50 * 20) * 4


def test_tiny_net_dense_by_hand_for_three_steps():
    # w1 3x2, v1 2x2, w2 2x2, v2 2x2, w3 2x2, v3 2x2, w_out 2x2: 6 + 6 * 4 = 30 weights, 3 steps
    out = inference_activity(tiny_net(), raw(torch.zeros(1, 3, 3)))
    assert out["synaptic_operations"]["Dense"] == 90
    assert out["synaptic_operations_per_matrix"]["w1"]["Dense"] == 18
    assert out["synaptic_operations_per_matrix"]["v3"]["Dense"] == 12


def test_binary_input_counts_accumulates_by_hand():
    out = inference_activity(tiny_net(), raw(tiny_input()))
    per = {name: out["synaptic_operations_per_matrix"][name]["Effective_ACs"] for name in MATRICES}
    # non-zero inputs x fan_out: 3 input values x 2; v1: 3 spikes1 in steps 0..6 x 2; w2: 4 spikes1 x 2;
    # v2: 2 x 2; w3: 2 spikes2 x 2; v3: 1 x 2; w_out: 1 spike3 x 2 classes
    assert per == {"w1": 6, "v1": 6, "w2": 8, "v2": 4, "w3": 4, "v3": 2, "w_out": 2}
    assert out["synaptic_operations"] == ops(0, 32, 8 * 30)
    assert list(out)[:4] == list(NEUROBENCH_KEYS)


def test_a_count_above_one_makes_the_input_projection_macs():
    out = inference_activity(tiny_net(), raw(tiny_input(2.0)))
    assert out["synaptic_operations_per_matrix"]["w1"] == ops(6, 0, 48)
    assert out["synaptic_operations"] == ops(6, 26, 240)
    # a binary batch and a counting batch: w1 is ACs in the one, MACs in the other; means per sample
    both = inference_activity(tiny_net(), [raw(tiny_input()), raw(tiny_input(2.0))])
    assert both["synaptic_operations_per_matrix"]["w1"] == ops(3, 3, 48)
    assert both["samples"] == 2 and both["nb_steps"] == T


def test_sparse_input_gives_the_same_numbers():
    dense = inference_activity(tiny_net(), raw(tiny_input(2.0)))
    sparse = inference_activity(tiny_net(), raw(SparseInput.from_dense(tiny_input(2.0))))
    assert sparse == dense


def test_activation_sparsity_spikes_and_connection_sparsity_by_hand():
    out = inference_activity(tiny_net(), raw(tiny_input()))
    # 3 layers x 8 steps x 2 neurons = 48 outputs, 4 + 2 + 1 = 7 spikes
    assert out["activation_sparsity"] == pytest.approx(1 - 7 / 48)
    assert out["activation_sparsity_per_layer"] == pytest.approx({"layer1": 1 - 4 / 16, "layer2": 1 - 2 / 16,
                                                                  "layer3": 1 - 1 / 16})
    assert out["spikes_per_sample_per_layer"] == {"layer1": 4, "layer2": 2, "layer3": 1}
    assert out["spikes_per_sample"] == 7
    assert out["connection_sparsity"] == pytest.approx(25 / 30)  # 5 of 30 weights set
    assert out["footprint"] == 30 * 4  # float32


def test_training_step_at_depth_2_by_hand():
    out = training_step_activity(tiny_net(), at_depth(2), 2)
    assert out["trained"] == ["w3", "v3", "w_out"]
    # forward: w3 2 spikes2 x 2, v3 1 x 2, w_out 1 x 2 = 8 ACs; Dense 8 steps x (4 + 4 + 4)
    assert out["forward_synaptic_operations"] == ops(0, 8, 96)
    assert set(out["synaptic_operations_per_matrix"]) == {"w3", "v3", "w_out"}
    # backward: weight gradients as the forward (8 ACs, Dense 96); input errors of v3 and w_out (not w3,
    # whose input is the cut) 8 x 4 MACs each, dense
    assert out["synaptic_operations_per_matrix"]["w3"]["input_error"] == ops(0, 0, 0)
    assert out["synaptic_operations_per_matrix"]["v3"]["input_error"] == ops(32, 0, 32)
    assert out["backward_synaptic_operations"] == ops(64, 8, 160)
    assert out["synaptic_operations"] == ops(64, 16, 256)
    assert out["spikes_per_sample_per_layer"] == {"layer3": 1}
    assert out["activation_sparsity"] == pytest.approx(1 - 1 / 16)


def test_training_step_at_depth_3_by_hand():
    out = training_step_activity(tiny_net(), at_depth(3), 3)
    # forward w_out: 1 spike3 x 2 ACs, Dense 8 x 4; its weight gradient the same; no input error
    assert out["synaptic_operations_per_matrix"] == {"w_out": {
        "forward": ops(0, 2, 32), "weight_gradient": ops(0, 2, 32), "input_error": ops(0, 0, 0)}}
    assert out["synaptic_operations"] == ops(0, 4, 64)
    assert out["activation_sparsity"] is None and out["spikes_per_sample_per_layer"] == {}


def test_training_step_from_the_input_and_at_depth_0():
    out = training_step_activity(tiny_net(), raw(tiny_input()), None)
    # forward 32 ACs, Dense 240; weight gradients the same; input errors of all but w1: 8 x (30 - 6) MACs
    assert out["synaptic_operations"] == ops(192, 64, 240 + 240 + 192)
    # depth 0 (a raw batch: the currents are computed first and not counted): no w1 at all
    out = training_step_activity(tiny_net(), raw(tiny_input()), 0)
    assert "w1" not in out["synaptic_operations_per_matrix"]
    assert out["synaptic_operations"] == ops(192, 52, 192 * 3)


def test_a_summed_cut_input_counts_macs():
    z = torch.tensor(SPIKES2, dtype=torch.float32).unsqueeze(1)
    z[4, 0, 1] = 2.0  # a sum-compressed window holding two spikes
    out = training_step_activity(tiny_net(), Batch(z, torch.zeros(1), from_depth=2, time_major=True), 2)
    w3 = out["synaptic_operations_per_matrix"]["w3"]
    assert w3["forward"] == ops(4, 0, 32) and w3["weight_gradient"] == ops(4, 0, 32)


def test_per_sample_normalisation():
    def without_samples(d):
        return {k: v for k, v in d.items() if k != "samples"}

    one, two = (inference_activity(tiny_net(), raw(tiny_input(samples=n))) for n in (1, 2))
    assert two["samples"] == 2 and without_samples(two) == without_samples(one)
    for depth in (2, 3):
        one, two = (training_step_activity(tiny_net(), at_depth(depth, n), depth) for n in (1, 2))
        assert two["samples"] == 2 and without_samples(two) == without_samples(one)
        batch_first = training_step_activity(tiny_net(), at_depth(depth, 2, time_major=False), depth)
        assert without_samples(batch_first) == without_samples(one)


def test_batches_of_the_wrong_kind_are_refused():
    with pytest.raises(ValueError, match="raw input"):
        inference_activity(tiny_net(), at_depth(2))
    with pytest.raises(ValueError, match="depth-2 activity"):
        training_step_activity(tiny_net(), at_depth(2), 3)


def test_the_record_is_json_ready_with_neurobench_names_first():
    inference = inference_activity(tiny_net(), raw(tiny_input()))
    training = training_step_activity(tiny_net(), at_depth(2), 2)
    record = neurobench_record(inference, training)
    assert list(record)[:4] == ["footprint", "connection_sparsity", "activation_sparsity", "synaptic_operations"]
    assert list(record)[-1] == "training_step"
    assert list(record["training_step"])[:2] == ["activation_sparsity", "synaptic_operations"]
    assert record["activation_sparsity"] == 0.854167  # 1 - 7/48 = 0.8541666..., 6 significant digits
    assert record["connection_sparsity"] == 0.833333
    dense = record["synaptic_operations"]["Dense"]
    assert dense == 240 and isinstance(dense, int)
    assert json.loads(json.dumps(record)) == record
    assert "training_step" not in neurobench_record(inference)
