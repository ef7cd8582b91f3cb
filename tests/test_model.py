"""Correctness of sccl.net.model against a plain step-by-step reference of the original equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sccl.core.device import resolve_device, set_threads
from sccl.core.errors import ConfigError
from sccl.net.model import PARAM_NAMES, RecurrentSNN, SparseInput, max_over_time, readout_kernel


torch.set_num_threads(1)

B, T, N = 6, 40, 700
ALPHA = math.exp(-0.2)
BETA = math.exp(-0.1)


# ----------------------------------------------------------------------------------------------
# the reference: the original's algorithm, batch-first, interleaved layers, autograd through the time loop


class RefSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (100.0 * x.abs() + 1.0) ** 2


def reference(net, x):
    """Returns (trace (B, T+1, C), [spikes of layers 1..3 as (B, T, H)])."""
    alpha, beta = net.alpha, net.beta
    Bx, Tx, _ = x.shape
    Ws = [None, net.w2, net.w3]
    Vs = [net.v1, net.v2, net.v3]
    h_in = torch.einsum("abc,cd->abd", x, net.w1)
    syn = [torch.zeros(Bx, h, dtype=x.dtype) for h in net.hidden_sizes]
    mem = [torch.zeros(Bx, h, dtype=x.dtype) for h in net.hidden_sizes]
    out = [torch.zeros(Bx, h, dtype=x.dtype) for h in net.hidden_sizes]
    spikes = [[], [], []]
    for t in range(Tx):
        for layer in range(3):
            ff = h_in[:, t] if layer == 0 else out[layer - 1] @ Ws[layer]
            h = ff + out[layer] @ Vs[layer]
            s = RefSpike.apply(mem[layer] - 1.0)
            rst = s.detach()
            new_syn = alpha * syn[layer] + h
            new_mem = (beta * mem[layer] + syn[layer]) * (1.0 - rst)
            out[layer], syn[layer], mem[layer] = s, new_syn, new_mem
            spikes[layer].append(s)
    spk = [torch.stack(s, dim=1) for s in spikes]
    a = torch.einsum("abc,cd->abd", spk[2], net.w_out)
    flt = torch.zeros(Bx, net.nb_outputs, dtype=x.dtype)
    o = torch.zeros(Bx, net.nb_outputs, dtype=x.dtype)
    trace = [o]
    for t in range(Tx):
        new_flt = alpha * flt + a[:, t]
        new_o = beta * o + flt
        flt, o = new_flt, new_o
        trace.append(o)
    return torch.stack(trace, dim=1), spk


def nll(logits, y):
    return F.nll_loss(F.log_softmax(logits, dim=1), y)


def make_batch(seed=0, b=B, t=T, n=N, density=0.06, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, t, n, generator=g) < density).to(dtype) * torch.randint(1, 4, (b, t, n), generator=g).to(dtype)
    x[:, 0] = 0  # as after the original's binning: step 0 is always empty
    y = torch.randint(0, 20, (b,), generator=g)
    return x, y


def make_net(scale=1.0, seed=1, dtype=torch.float64, **kw):
    net = RecurrentSNN(weight_scale=scale, generator=torch.Generator().manual_seed(seed), **kw)
    return net.to(dtype)


def grads(net, names=PARAM_NAMES):
    return {n: getattr(net, n).grad.detach().clone() for n in names}


def assert_rel_close(a, b, tol, what=""):
    scale = max(float(b.abs().max()), 1e-30)
    err = float((a - b).abs().max())
    assert err <= tol * scale, f"{what}: max abs diff {err:.3e} vs scale {scale:.3e}"


@pytest.fixture(scope="module")
def f64_case():
    net = make_net(1.0)
    x, y = make_batch()
    trace, spk = reference(net, x)
    logits = torch.max(trace, dim=1).values
    nll(logits, y).backward()
    return net, x, y, logits.detach(), grads(net), spk


# ----------------------------------------------------------------------------------------------
# exactness in float64


def test_reference_setup_spikes_in_every_layer(f64_case):
    _, _, _, logits, _, spk = f64_case
    for layer, s in enumerate(spk, 1):
        rate = float(s.detach().mean())
        assert 0.03 < rate < 0.5, f"layer {layer} spike rate {rate}"
    assert float(logits.abs().max()) > 1.0


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_logits_and_grads_match_reference_f64(f64_case, kind):
    net, x, y, ref_logits, ref_grads, _ = f64_case
    net.zero_grad(set_to_none=True)
    inp = x if kind == "dense" else SparseInput.from_dense(x)
    logits = net(inp)
    assert_rel_close(logits.detach(), ref_logits, 1e-12, "logits")
    nll(logits, y).backward()
    for name, g in grads(net).items():
        assert float(ref_grads[name].abs().max()) > 0, name
        assert_rel_close(g, ref_grads[name], 1e-9, f"grad {name} ({kind})")


def test_record_matches_reference_f64(f64_case):
    net, x, _, ref_logits, _, spk = f64_case
    rec = net.record(x)
    for layer in (1, 2, 3):
        assert torch.equal(rec[f"spikes{layer}"].transpose(0, 1), spk[layer - 1])
    assert_rel_close(rec["trace"].max(0).values, ref_logits, 1e-12, "trace")
    tr = net.trace(x)
    assert tr.shape == (B, T + 1, 20)
    assert torch.all(tr[:, 0] == 0)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_latents_and_from_depth(f64_case, depth):
    net, x, y, ref_logits, ref_grads, spk = f64_case
    z = net.latents(x, depth)
    assert not z.requires_grad
    assert z.shape == (B, T, net.depth_size(depth))
    if depth == 0:
        assert_rel_close(z, torch.einsum("abc,cd->abd", x, net.w1.detach()), 1e-13, "currents")
        assert_rel_close(net.latents(SparseInput.from_dense(x), 0), z, 1e-13, "sparse currents")
    else:
        assert torch.equal(z, spk[depth - 1])
    net.zero_grad(set_to_none=True)
    logits = net(z, from_depth=depth)
    assert_rel_close(logits.detach(), ref_logits, 1e-12, f"logits from depth {depth}")
    nll(logits, y).backward()
    trained = net.trainable_for_depth(depth)
    for name in PARAM_NAMES:
        p = getattr(net, name)
        if name in trained:
            assert_rel_close(p.grad, ref_grads[name], 1e-9, f"grad {name} from depth {depth}")
        else:
            assert p.grad is None, f"{name} is below depth {depth} and must not be run"
    # time-major helpers agree with the batch-first API
    ztm = net.activity_time_major(x, depth)
    assert torch.equal(ztm.transpose(0, 1), z)
    assert_rel_close(net.forward_time_major(ztm, depth).detach(), ref_logits, 1e-12, "time-major")


def test_trainable_for_depth():
    net = RecurrentSNN(hidden_sizes=(4, 3, 2), nb_inputs=5)
    assert net.trainable_for_depth(None) == PARAM_NAMES
    assert set(net.trainable_for_depth(0)) == set(PARAM_NAMES) - {"w1"}
    assert set(net.trainable_for_depth(1)) == set(PARAM_NAMES) - {"w1", "v1"}
    assert set(net.trainable_for_depth(2)) == {"w3", "v3", "w_out"}
    assert net.trainable_for_depth(3) == ("w_out",)
    assert net.trainable_parameters(3) == [net.w_out]
    with pytest.raises(ValueError):
        net.trainable_for_depth(4)


def test_grad_of_input_currents_from_depth0(f64_case):
    """The LIF backward also returns the gradient with respect to its input current (checked by finite
    differences of the logits in a direction that flips no spike)."""
    net, x, y, *_ = f64_case
    z = net.latents(x, 0).requires_grad_(True)
    logits = net(z, from_depth=0)
    (logits * torch.linspace(0.5, 1.5, 20, dtype=logits.dtype)).sum().backward()
    g = z.grad
    ref_z = z.detach().clone().requires_grad_(True)
    trace, _ = reference_from_currents(net, ref_z)
    (torch.max(trace, 1).values * torch.linspace(0.5, 1.5, 20, dtype=logits.dtype)).sum().backward()
    assert_rel_close(g, ref_z.grad, 1e-9, "dL/dcurrents")


def reference_from_currents(net, cur):
    """The reference fed with layer-1 input currents (B, T, H1): a copy of ``net`` whose w1 is the identity."""
    probe = RecurrentSNN(nb_inputs=cur.shape[2], hidden_sizes=net.hidden_sizes).to(cur.dtype)
    with torch.no_grad():
        for n in PARAM_NAMES:
            if n != "w1":
                getattr(probe, n).copy_(getattr(net, n))
        probe.w1.copy_(torch.eye(cur.shape[2], dtype=cur.dtype))
    return reference(probe, cur)


def test_interleaved_graphs_and_single_backward():
    """Two live graphs (reused internal buffers must not be shared), backwards in reverse order; a second
    backward through the same graph is refused with a clear error."""
    net = make_net(1.0, seed=11)
    x1, y1 = make_batch(seed=12)
    x2, y2 = make_batch(seed=13)
    separate = []
    for x, y in ((x1, y1), (x2, y2)):
        net.zero_grad(set_to_none=True)
        nll(net(x), y).backward()
        separate.append(grads(net))
    net.zero_grad(set_to_none=True)
    l1 = nll(net(x1), y1)
    l2 = nll(net(x2), y2)
    l2.backward()
    g2 = grads(net)
    net.zero_grad(set_to_none=True)
    l1.backward(retain_graph=True)
    g1 = grads(net)
    for name in PARAM_NAMES:
        assert torch.equal(g1[name], separate[0][name]), name
        assert torch.equal(g2[name], separate[1][name]), name
    with pytest.raises(RuntimeError, match="only once"):
        l1.backward()


# ----------------------------------------------------------------------------------------------
# a hand-computed example: one neuron per layer


def tiny_net():
    net = RecurrentSNN(nb_inputs=1, hidden_sizes=(1, 1, 1), nb_outputs=1).double()
    with torch.no_grad():
        net.w1.fill_(2.0)
        net.v1.fill_(0.5)
        net.w2.fill_(1.0)
        net.v2.fill_(0.0)
        net.w3.fill_(3.0)
        net.v3.fill_(0.0)
        net.w_out.fill_(1.0)
    return net


def test_single_neuron_by_hand():
    net = tiny_net()
    assert net.alpha == pytest.approx(math.exp(-0.2), abs=1e-15)
    assert net.beta == pytest.approx(math.exp(-0.1), abs=1e-15)
    x = torch.zeros(1, 9, 1, dtype=torch.float64)
    x[0, 1, 0] = 3.0  # three spikes in step 1
    rec = net.record(x)
    a, b = ALPHA, BETA
    # layer 1: I = [0, 6, 0, ...]
    #  t=1: h=6 -> syn(2)=6;  t=2: mem(3) = b*0 + syn(2) = 6;  t=3: s=1, mem(4) = 0 (reset), h(3)=0
    #  t=4: h(4) = s(3)*v1 = 0.5 -> syn(5) = 6a^3 + 0.5; mem(5) = (0 + syn(4)) = 6a^2 (> 1) -> spike at t=5
    #  t=5: s=1, mem(6) = 0; h(5) = 0 (s(4)=0);  t=6: syn(6) = 6a^4 + 0.5a; h(6) = 0.5
    #       mem(7) = 0*b + syn(6) = 6a^4 + 0.5a (> 1) -> spike at t=7;  t=7: mem(8)=0
    syn = {2: 6.0, 3: 6 * a, 4: 6 * a * a, 5: 6 * a**3 + 0.5, 6: 6 * a**4 + 0.5 * a}
    mem1 = [0, 0, 0, 6.0, 0, syn[4], 0, syn[6], 0]
    spikes1 = [0, 0, 0, 1, 0, 1, 0, 1, 0]
    assert rec["currents"][:, 0, 0].tolist() == [0, 6, 0, 0, 0, 0, 0, 0, 0]
    assert rec["mem1"][:, 0, 0].tolist() == pytest.approx(mem1, abs=1e-14)
    assert rec["spikes1"][:, 0, 0].tolist() == spikes1
    # layer 2 (w2 = 1, v2 = 0): I2 = s1 = [0,0,0,1,0,1,0,1,0]
    #  syn2(4) = 1, syn2(5) = a, syn2(6) = a^2 + 1, syn2(7) = a^3 + a
    #  mem2(5) = syn2(4) = 1 exactly -> NO spike at t=5 (the threshold test is strict, x > 0)
    #  mem2(6) = b*1 + syn2(5) = b + a (> 1) -> spike at t=6, mem2(7) = 0 (reset)
    #  mem2(8) = b*0 + syn2(7) = a^3 + a (> 1) -> spike at t=8
    mem2 = [0, 0, 0, 0, 0, 1.0, b + a, 0, a**3 + a]
    assert rec["mem2"][:, 0, 0].tolist() == pytest.approx(mem2, abs=1e-14)
    assert rec["mem2"][5, 0, 0].item() == 1.0
    assert rec["spikes2"][:, 0, 0].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 1]
    # layer 3 (w3 = 3): I3 = 3 * s2 = 3 at t = 6, 8 -> syn3(7) = 3, mem3(8) = syn3(7) = 3 -> s3(8) = 1
    assert rec["mem3"][:, 0, 0].tolist() == pytest.approx([0] * 8 + [3.0], abs=1e-14)
    assert rec["spikes3"][:, 0, 0].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    # readout with w_out = 1 and a spike at the last step only: the trace never sees it (it needs 2 steps)
    assert rec["trace"][:, 0, 0].tolist() == [0.0] * 10


def test_readout_by_hand():
    net = tiny_net()
    s3 = torch.zeros(5, 1, 1, dtype=torch.float64)
    s3[1] = 1.0
    tr = net.readout_trace(s3)[:, 0, 0]
    a, b = ALPHA, BETA
    # a(1) = 1 -> flt(2) = 1, out(3) = 1, flt(3) = a, out(4) = b + a, out(5) = b(b + a) + a^2
    expected = [0, 0, 0, 1, b + a, b * (b + a) + a * a]
    assert tr.tolist() == pytest.approx(expected, abs=1e-15)
    K = readout_kernel(5, a, b)
    assert K.shape == (6, 5)
    assert np.allclose(K[:, 1], expected)


def test_surrogate_gradient_single_step_by_hand():
    """d logits / d w1 for one neuron where a single spike is emitted, computed by hand."""
    net = RecurrentSNN(nb_inputs=1, hidden_sizes=(1, 1, 1), nb_outputs=1).double()
    with torch.no_grad():
        for n in PARAM_NAMES:
            getattr(net, n).fill_(0.0)
        net.w1.fill_(1.0)
    # layer 1 alone: I = [0, c, 0, 0]; mem(3) = c -> s(3) = H(c - 1). ds(3)/dw1 = c / (100 |c - 1| + 1)^2
    c = 1.5
    cur = torch.tensor([0.0, c, 0.0, 0.0], dtype=torch.float64).view(4, 1, 1)
    w = net.w1.detach().clone().requires_grad_(True)
    from sccl.net.lif import lif_layer

    s = lif_layer(cur * w, net.v1, net.alpha, net.beta)
    assert s[:, 0, 0].tolist() == [0, 0, 0, 1]
    s[3].sum().backward()
    assert w.grad.item() == pytest.approx(c / (100 * abs(c - 1) + 1) ** 2, rel=1e-14)


# ----------------------------------------------------------------------------------------------
# float32 behaviour and the max-over-time semantics


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_float32_spikes_identical(kind):
    net = make_net(1.0, seed=3, dtype=torch.float32)
    x, y = make_batch(seed=4, dtype=torch.float32)
    ref_trace, spk = reference(net, x)
    rec = net.record(x if kind == "dense" else SparseInput.from_dense(x))
    for layer in (1, 2, 3):
        assert float(spk[layer - 1].detach().mean()) > 0.03
        assert torch.equal(rec[f"spikes{layer}"].transpose(0, 1), spk[layer - 1]), f"layer {layer}"
    ref_logits = ref_trace.max(1).values
    logits = net(x if kind == "dense" else SparseInput.from_dense(x))
    assert torch.allclose(logits, ref_logits, rtol=1e-5, atol=1e-4)
    nll(ref_logits, y).backward()
    ref_g = grads(net)
    net.zero_grad(set_to_none=True)
    nll(logits, y).backward()
    for name, g in grads(net).items():
        assert_rel_close(g, ref_g[name], 2e-4, f"f32 grad {name}")


def test_max_over_time_gradient_goes_to_first_maximum():
    trace = torch.tensor([[0.0, 1.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0]]).unsqueeze(1).requires_grad_(True)
    max_over_time(trace).sum().backward()
    assert trace.grad[:, 0].tolist() == [[0, 1], [1, 0], [0, 0], [0, 0]]
    t2 = trace.detach().clone().requires_grad_(True)
    torch.amax(t2, dim=0).sum().backward()
    assert not torch.equal(t2.grad, trace.grad)  # amax splits the gradient between ties


def test_ties_at_zero_in_the_model():
    """A class whose readout is never positive ties at exactly 0 over its first steps: torch.max sends the
    gradient to the constant first entry (no gradient at all), amax would split it over the tied steps and
    reach the hidden weights through the surrogate."""
    net = make_net(1.0, seed=5)
    x, _ = make_batch(seed=6)
    with torch.no_grad():
        net.w_out[:, 0] = -net.w_out[:, 0].abs()  # class 0 readout is never positive
    logits = net(x)
    assert torch.all(logits[:, 0] == 0)
    logits[:, 0].sum().backward()
    for name in PARAM_NAMES:
        assert float(getattr(net, name).grad.abs().max()) == 0.0, name
    net.zero_grad(set_to_none=True)
    trace = net.trace(x)[:, :, 0]
    assert int((trace == 0).sum(1).min()) >= 3  # several exact ties per sample
    torch.amax(trace, dim=1).sum().backward()
    assert float(net.w3.grad.abs().max()) > 0.0


# ----------------------------------------------------------------------------------------------
# SparseInput


def test_sparse_input_from_coo_round_trip():
    batch_pos = np.array([0, 1, 1, 0, 1, 2, 0], dtype=np.int64)
    step = np.array([3, 0, 0, 3, 4, 1, 2], dtype=np.uint8)
    unit = np.array([5, 2, 2, 5, 6, 0, 6], dtype=np.uint16)
    count = np.array([1, 2, 3, 4, 1, 1, 5], dtype=np.uint8)
    sp = SparseInput.from_coo(batch_pos, step, unit, count, batch_size=3, nb_steps=5, nb_inputs=7)
    expected = torch.zeros(3, 5, 7)
    expected[0, 3, 5] = 5  # 1 + 4, duplicates summed
    expected[1, 0, 2] = 5  # 2 + 3
    expected[1, 4, 6] = 1
    expected[2, 1, 0] = 1
    expected[0, 2, 6] = 5
    assert sp.nnz == 5
    assert sp.shape == (3, 5, 7)
    assert torch.equal(sp.to_dense(), expected)
    assert torch.equal(sp.to_dense(time_major=True), expected.transpose(0, 1))
    # torch inputs, shuffled order, count omitted = ones
    perm = np.random.default_rng(0).permutation(7)
    sp2 = SparseInput.from_coo(torch.from_numpy(batch_pos[perm]), torch.from_numpy(step[perm].astype(np.int64)),
                               torch.from_numpy(unit[perm].astype(np.int64)), None, batch_size=3, nb_steps=5,
                               nb_inputs=7)
    ones = torch.zeros(3, 5, 7)
    ones[0, 3, 5] = 2
    ones[1, 0, 2] = 2
    ones[1, 4, 6] = ones[2, 1, 0] = ones[0, 2, 6] = 1
    assert torch.equal(sp2.to_dense(), ones)
    # from_dense inverts to_dense
    assert torch.equal(SparseInput.from_dense(expected).to_dense(), expected)
    with pytest.raises(ValueError):
        SparseInput.from_coo([0], [5], [0], [1], batch_size=1, nb_steps=5, nb_inputs=7)


def test_sparse_input_from_binned_coo():
    from sccl.data.hdf5 import bin_spikes

    rng = np.random.default_rng(1)
    times = np.empty(4, dtype=object)
    units = np.empty(4, dtype=object)
    for i in range(4):
        n = rng.integers(50, 200)
        times[i] = np.sort(rng.uniform(0, 1.3, n))
        units[i] = rng.integers(0, 700, n)
    binned = bin_spikes(times, units, nb_steps=30, max_time=1.4)
    idx = [2, 0, 3]
    sp = SparseInput.from_coo(*binned.coo(idx), batch_size=3, nb_steps=30)
    assert torch.equal(sp.to_dense(), torch.from_numpy(binned.dense(idx)))


def test_sparse_projection_and_grad():
    x, _ = make_batch(seed=7, b=3, t=10, n=20, density=0.3)
    sp = SparseInput.from_dense(x)
    w = torch.randn(20, 4, dtype=torch.float64, requires_grad=True)
    out = sp.project(w)
    ref = torch.einsum("btn,nh->tbh", x, w)
    assert_rel_close(out.detach(), ref.detach(), 1e-14, "projection")
    g = torch.randn_like(ref)
    (out * g).sum().backward()
    gw = w.grad.clone()
    w.grad = None
    (ref * g).sum().backward()
    assert_rel_close(gw, w.grad, 1e-13, "projection grad")


# ----------------------------------------------------------------------------------------------
# construction, seeding, devices


def test_shapes_and_defaults():
    net = RecurrentSNN()
    shapes = {n: tuple(getattr(net, n).shape) for n in PARAM_NAMES}
    assert shapes == {"w1": (700, 200), "w2": (200, 100), "w3": (100, 50), "v1": (200, 200),
                      "v2": (100, 100), "v3": (50, 50), "w_out": (50, 20)}
    assert all(isinstance(getattr(net, n), torch.nn.Parameter) for n in PARAM_NAMES)
    assert sum(p.numel() for p in net.parameters()) == 218_500
    assert RecurrentSNN(nb_hidden=64).hidden_sizes == (64, 32, 16)
    x, _ = make_batch(seed=8, b=2, t=12, dtype=torch.float32)
    assert net(x).shape == (2, 20)
    assert net(SparseInput.from_dense(x)).shape == (2, 20)
    with pytest.raises(ValueError):
        net(torch.zeros(2, 12, 699))
    with pytest.raises(ValueError):
        net(torch.zeros(2, 12, 100), from_depth=1)


def test_init_statistics():
    net = RecurrentSNN(generator=torch.Generator().manual_seed(0))
    for name in PARAM_NAMES:
        p = getattr(net, name).detach()
        expected = 0.2 / math.sqrt(p.shape[0])
        assert abs(float(p.mean())) < 4 * expected / math.sqrt(p.numel())
        assert float(p.std()) == pytest.approx(expected, rel=0.08 if p.numel() >= 1000 else 0.15), name
    assert float(net.w1.detach().std()) == pytest.approx(0.2 / math.sqrt(700), rel=0.01)


def test_seeding_determinism():
    a = RecurrentSNN(generator=torch.Generator().manual_seed(42))
    b = RecurrentSNN(generator=torch.Generator().manual_seed(42))
    c = RecurrentSNN(generator=torch.Generator().manual_seed(43))
    torch.manual_seed(7)
    d = RecurrentSNN()
    torch.manual_seed(7)
    e = RecurrentSNN()
    for n in PARAM_NAMES:
        assert torch.equal(getattr(a, n), getattr(b, n))
        assert not torch.equal(getattr(a, n), getattr(c, n))
        assert torch.equal(getattr(d, n), getattr(e, n))


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    with pytest.raises(ConfigError):
        set_threads(0)
    set_threads(1)
    assert torch.get_num_threads() == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    net = make_net(1.0, seed=9, dtype=torch.float64)
    x, y = make_batch(seed=10)
    cpu_logits = net(SparseInput.from_dense(x))
    nll(cpu_logits, y).backward()
    cpu_g = grads(net)
    net.zero_grad(set_to_none=True)
    dev = torch.device("cuda")
    net.to(dev)
    logits = net(SparseInput.from_dense(x).to(dev))
    nll(logits, y.to(dev)).backward()
    assert_rel_close(logits.detach().cpu(), cpu_logits.detach(), 1e-10, "cuda logits")
    for name, g in grads(net).items():
        assert_rel_close(g.cpu(), cpu_g[name], 1e-8, f"cuda grad {name}")
