"""The training step's memory (sccl.net.footprint) against what autograd really keeps, and the run's footprint."""

import pytest
import torch

from sccl.learn.training import nll_loss
from sccl.net.footprint import activation_bytes, batch_bytes, trained_hidden_layers
from sccl.net.model import RecurrentSNN, max_over_time
from sccl.net.sparse_input import SparseInput


HIDDEN, INPUTS, CLASSES, T = (20, 10, 6), 30, 4, 12


def kept_by_a_step(net, depth, batch_size):
    """(bytes autograd saves for the backward, not counting the batch itself or parameters; bytes of the LIF
    layers' surrogate buffers, which they keep outside autograd) of one real training step."""
    torch.manual_seed(1)
    for name, p in net.named_parameters():
        p.requires_grad_(depth is None or name in net.trainable_for_depth(depth))
    if depth is None:
        x = SparseInput.from_dense((torch.rand(batch_size, T, INPUTS) < 0.2).float())
        batch_storages = set()
        z = net.input_currents(x)
        depth_run = 0
    else:
        z = (torch.rand(T, batch_size, net.depth_size(depth)) < 0.3).float() if depth else \
            torch.randn(T, batch_size, HIDDEN[0])
        batch_storages = {z.untyped_storage().data_ptr()}
        depth_run = depth
    saved = {}

    def pack(t):
        if not (t.is_leaf and t.requires_grad):  # parameters are not activations
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nll_loss(max_over_time(net.run_from(z, depth_run)), torch.zeros(batch_size, dtype=torch.long))
    surrogate, stack, seen = 0, [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if type(node).__name__ == "LIFFunctionBackward":
            surrogate += node.sg.untyped_storage().nbytes()
        stack += [n for n, _ in node.next_functions]
    loss.backward()
    return sum(b for ptr, b in saved.items() if ptr not in batch_storages), surrogate


@pytest.mark.parametrize("depth", [None, 0, 1, 2, 3])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_the_counted_activations_are_what_a_step_keeps(depth, batch_size):
    net = RecurrentSNN(nb_inputs=INPUTS, nb_outputs=CLASSES, hidden_sizes=HIDDEN)
    autograd, surrogate = kept_by_a_step(net, depth, batch_size)
    assert autograd + surrogate == activation_bytes(HIDDEN, CLASSES, depth, batch_size, T)
    trained = sum(HIDDEN[layer - 1] for layer in trained_hidden_layers(depth))
    assert surrogate == 4 * T * batch_size * trained


def test_activation_bytes_by_hand():
    """SHD's network at depth 2, batch 64, 100 steps: layer 3 (50 units) keeps its spikes and surrogate,
    2 x 4 x 100 x 64 x 50 = 2,560,000 B; the readout its kernel 4 x 101 x 100 = 40,400 B, log-softmax 4 x 64 x 20,
    indices 8 x 64 x 20, labels 8 x 64 and the loss 4: 16,388 B."""
    assert activation_bytes((200, 100, 50), 20, 2, 64, 100) == 2_560_000 + 40_400 + 5_120 + 10_240 + 512 + 4
    # batch 1, depth 3 (the readout only)
    assert activation_bytes((200, 100, 50), 20, 3, 1, 100) == 40_400 + 80 + 160 + 8 + 4
    assert trained_hidden_layers(None) == trained_hidden_layers(0) == (1, 2, 3)
    assert trained_hidden_layers(3) == ()


def test_batch_bytes():
    assert batch_bytes(700, None, 64, 100) == 700 * 64 * 100  # raw counts, one byte each
    assert batch_bytes(100, 2, 64, 100) == 4 * 100 * 64 * 100
    with pytest.raises(ValueError, match="depth must be"):
        activation_bytes((200, 100, 50), 20, 4, 1, 100)
