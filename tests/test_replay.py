"""sccl.replay.memory: time compression / un-compression, bit-packed storage and its accounting, exact replay."""

import math

import pytest
import torch

from sccl.core.errors import ConfigError
from sccl.learn.training import Batch
from sccl.net.model import RecurrentSNN, SparseInput
from sccl.replay.building import build_latent_memory, build_raw_memory, generate_latents
from sccl.replay.memory import ReplayMemory, check_stored_steps, compress, uncompress


def bt(rows):
    """(T, H) nested list -> (1, T, H) float32 tensor."""
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(0)


# ---------------------------------------------------------------------------------------------- hand examples

# T = 8, S = 4 (w = 2), 3 units; rows are time steps
SPIKES = bt([[1, 0, 0], [0, 1, 0],
             [0, 1, 0], [0, 1, 0],
             [1, 0, 0], [1, 0, 0],
             [0, 0, 0], [1, 0, 0]])


def test_or_spikes_hand_example():
    c = compress(SPIKES, 4, "or", "spikes")
    assert torch.equal(c, bt([[1, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]]))
    u = uncompress(c, 8, "or", "spikes")
    assert u.dtype == torch.float32
    assert torch.equal(u, bt([[1, 1, 0], [0, 0, 0],
                              [0, 1, 0], [0, 0, 0],
                              [1, 0, 0], [0, 0, 0],
                              [1, 0, 0], [0, 0, 0]]))


def test_sum_spikes_hand_example_burst():
    c = compress(SPIKES, 4, "sum", "spikes")
    assert torch.equal(c, bt([[1, 1, 0], [0, 2, 0], [2, 0, 0], [1, 0, 0]]))
    u = uncompress(c, 8, "sum", "spikes")
    assert torch.equal(u, bt([[1, 1, 0], [0, 0, 0],
                              [0, 1, 0], [0, 1, 0],
                              [1, 0, 0], [1, 0, 0],
                              [1, 0, 0], [0, 0, 0]]))
    # a longer window: counts 0..4 with w = 4 become bursts from the window's first step
    c = torch.tensor([[[0.0, 1, 2, 3, 4]]])
    u = uncompress(c, 4, "sum", "spikes")[0]
    assert torch.equal(u.T, torch.tensor([[0.0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]))


@pytest.mark.parametrize("mode", ["or", "sum"])
def test_currents_hand_example(mode):
    # T = 12, S = 3 (w = 4), 2 units
    z = bt([[0.5, -1.0], [0.25, 0.0], [0.0, 2.0], [1.0, 0.0],
            [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0],
            [-0.5, 1.5], [0.5, 0.5], [0.0, 0.0], [0.0, -3.0]])
    c = compress(z, 3, mode, "currents")
    assert torch.equal(c, bt([[1.75, 1.0], [0.0, 0.0], [0.0, -1.0]]))  # sum of currents, also in "or" mode
    u = uncompress(c, 12, mode, "currents")
    expected = torch.zeros(1, 12, 2)
    expected[0, 0] = torch.tensor([1.75, 1.0])
    expected[0, 8] = torch.tensor([0.0, -1.0])
    assert torch.equal(u, expected)


@pytest.mark.parametrize("mode", ["or", "sum"])
def test_raw_counts_hand_example(mode):
    # T = 12, S = 2 (w = 6), 3 channels, counts up to 3
    z = torch.zeros(1, 12, 3)
    z[0, 0, 0], z[0, 5, 0], z[0, 7, 0] = 2, 1, 3
    z[0, 3, 2], z[0, 11, 2] = 1, 1
    c = compress(z, 2, mode, "counts")
    assert torch.equal(c, bt([[3, 0, 1], [3, 0, 1]]))
    u = uncompress(c, 12, mode, "counts")
    expected = torch.zeros(1, 12, 3)
    expected[0, 0] = torch.tensor([3.0, 0, 1])
    expected[0, 6] = torch.tensor([3.0, 0, 1])
    assert torch.equal(u, expected)


@pytest.mark.parametrize("kind", ["spikes", "currents", "counts"])
@pytest.mark.parametrize("mode", ["or", "sum"])
def test_s_equal_t_is_identity(kind, mode):
    g = torch.Generator().manual_seed(1)
    if kind == "spikes":
        z = (torch.rand(5, 12, 7, generator=g) < 0.3).float()
    elif kind == "counts":
        z = torch.randint(0, 4, (5, 12, 7), generator=g).float()
    else:
        z = torch.randn(5, 12, 7, generator=g)
    c = compress(z, 12, mode, kind)
    assert torch.equal(c, z)
    assert torch.equal(uncompress(c, 12, mode, kind), z)
    m = ReplayMemory(kind, 12, 12, mode, units=7)
    m.add(z, torch.arange(5))
    (x, y), = m.batches()
    assert torch.equal(x, z) and torch.equal(y, torch.arange(5))
    if kind == "spikes":
        assert m.bits_per_value == 1 and m.memory_bytes_stored == math.ceil(5 * 12 * 7 / 8)


def test_stored_steps_must_divide():
    with pytest.raises(ConfigError, match=r"--latent-subsample 30 must divide the 100 time steps "
                                          r"\(divisors: 1, 2, 4, 5, 10, 20, 25, 50, 100\)"):
        check_stored_steps(100, 30)
    with pytest.raises(ConfigError, match="divisors: 1, 2, 3, 4, 6, 12"):
        compress(torch.zeros(1, 12, 2), 5)
    with pytest.raises(ConfigError, match="must divide"):
        ReplayMemory("spikes", 100, 0, units=5)
    with pytest.raises(ConfigError, match="must divide"):
        uncompress(torch.zeros(1, 3, 2), 10)
    assert check_stored_steps(100, 10) == 10


def test_bad_arguments():
    with pytest.raises(ValueError):
        compress(torch.zeros(1, 4, 2), 2, mode="max")
    with pytest.raises(ValueError):
        compress(torch.zeros(1, 4, 2), 2, kind="voltages")
    m = ReplayMemory("spikes", 4, 2, "sum", units=2)
    with pytest.raises(ValueError, match="binary"):
        m.add(torch.full((1, 4, 2), 2.0), [0])  # window count 4 > w = 2
    with pytest.raises(ValueError, match="units"):
        m.add(torch.zeros(1, 4, 3), [0])
    with pytest.raises(ValueError, match="labels"):
        m.add(torch.zeros(2, 4, 2), [0])
    with pytest.raises(ValueError, match="integer"):
        ReplayMemory("counts", 4, 2, units=2).add(torch.tensor([[[0.5, 0], [0, 0], [0, 0], [0, 0]]]), [0])
    with pytest.raises(ValueError, match="integer"):
        ReplayMemory("counts", 4, 2, units=2).add(-torch.ones(1, 4, 2), [0])
    with pytest.raises(ValueError, match="0 and 1"):
        ReplayMemory("spikes", 4, 2, units=2).add(torch.full((1, 2, 2), 2.0), [0], compressed=True)


# ---------------------------------------------------------------------------------------------- storage


def test_bit_packing_round_trip_uneven_adds():
    g = torch.Generator().manual_seed(2)
    S, T, H = 3, 12, 7  # 21 bits per sample: nothing is byte aligned
    z = (torch.rand(70, T, H, generator=g) < 0.2).float()
    y = torch.randint(0, 20, (70,), generator=g)
    m = ReplayMemory("spikes", T, S, "or", units=H)
    for a, b in ((0, 5), (5, 18), (18, 19), (19, 70)):
        m.add(z[a:b], y[a:b])
    assert len(m) == 70 and torch.equal(m.labels, y)
    assert m.memory_bits_analytic == 70 * 21
    assert m.memory_bytes_stored == math.ceil(70 * 21 / 8)  # flat: padding only at the very end
    expected = uncompress(compress(z, S), T)
    got = m.batches(batch_size=16)
    assert [len(xb) for xb, _ in got] == [16, 16, 16, 16, 6]
    assert torch.equal(torch.cat([xb for xb, _ in got]), expected)
    assert torch.equal(torch.cat([yb for _, yb in got]), y)
    perm = torch.randperm(70, generator=g)
    xb, yb = m.get(perm)
    assert torch.equal(xb, expected[perm]) and torch.equal(yb, y[perm])
    assert torch.equal(m.get_compressed([-1]), compress(z[-1:], S))


def test_paper_160kb_example_exact():
    g = torch.Generator().manual_seed(3)
    m = ReplayMemory("spikes", 100, 10, "or", units=50, depth=3)
    zs = []
    for i in range(40):
        z = (torch.rand(64, 100, 50, generator=g) < 0.05).float()
        zs.append(z)
        before = m.memory_bytes_stored
        m.add(z, torch.full((64,), i % 20))
        assert m.memory_bytes_stored - before == 4_000  # 64 x 500 bits, no padding
    assert len(m) == 2_560
    assert m.memory_bits_analytic == 2_560 * 50 * 10 * 1 == 1_280_000
    assert m.memory_bytes_stored == 160_000
    assert m.paper_bits == 1_280_000 and m.label_bytes == 2_560
    assert "160,000 B" in m.describe()
    # the same samples added in uneven pieces still take exactly 160,000 bytes, and read back the same
    allz = torch.cat(zs)
    m2 = ReplayMemory("spikes", 100, 10, "or", units=50)
    for a, b in ((0, 1), (1, 64), (64, 1000), (1000, 1001), (1001, 2560)):
        m2.add(allz[a:b], torch.zeros(b - a, dtype=torch.long))
    assert m2.memory_bytes_stored == 160_000
    idx = torch.tensor([0, 1, 63, 64, 999, 1000, 1001, 2559])
    assert torch.equal(m2.get(idx)[0], m.get(idx)[0])
    assert torch.equal(m2.get(idx)[0], uncompress(compress(allz[idx], 10), 100))


def test_sum_spike_counts_uint8():
    g = torch.Generator().manual_seed(4)
    z = (torch.rand(64, 100, 50, generator=g) < 0.3).float()
    m = ReplayMemory("spikes", 100, 10, "sum", units=50)
    m.add(z, torch.zeros(64, dtype=torch.long))
    assert m.bits_per_value == 4  # ceil(log2(10 + 1))
    assert m.memory_bits_analytic == 64 * 50 * 10 * 4
    assert m.memory_bytes_stored == 64 * 50 * 10  # uint8
    assert m.storage_dtype == "uint8"
    assert torch.equal(m.batches()[0][0], uncompress(compress(z, 10, "sum"), 100, "sum"))


def test_raw_counts_uint8_and_upcast():
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 4, (10, 100, 700), generator=g).float()  # window sums <= 30
    m = ReplayMemory("counts", 100, 10, "or", units=700)
    m.add(x, torch.arange(10))
    assert m.storage_dtype == "uint8"
    assert m.memory_bytes_stored == 10 * 10 * 700
    top = int(compress(x, 10, kind="counts").max())
    assert m.bits_per_value == math.ceil(math.log2(top + 1))
    assert m.memory_bits_analytic == 10 * 700 * 10 * m.bits_per_value
    assert m.paper_bits == 10 * 700 * 10  # the paper's 1 bit per raw value
    assert torch.equal(m.batches()[0][0], uncompress(compress(x, 10, kind="counts"), 100, kind="counts"))
    big = torch.zeros(2, 100, 700)
    big[0, 0, 0] = 300  # does not fit uint8 -> this chunk is uint16
    before = m.memory_bytes_stored
    m.add(big, [1, 2])
    assert m.memory_bytes_stored - before == 2 * 10 * 700 * 2
    assert m.storage_dtype == "uint8/uint16" and m.bits_per_value == 9
    assert m.get([10])[0][0, 0, 0] == 300


@pytest.mark.parametrize("dtype,nbytes", [(torch.float32, 4), (torch.float16, 2)])
def test_currents_float_storage(dtype, nbytes):
    g = torch.Generator().manual_seed(6)
    z = torch.randn(8, 100, 200, generator=g)
    m = ReplayMemory("currents", 100, 20, "or", units=200, float_dtype=dtype, depth=0)
    m.add(z, torch.zeros(8, dtype=torch.long))
    assert m.memory_bytes_stored == 8 * 20 * 200 * nbytes
    assert m.bits_per_value == 8 * nbytes
    assert m.memory_bits_analytic == 8 * 20 * 200 * 8 * nbytes
    expected = uncompress(compress(z, 20, kind="currents"), 100, kind="currents")
    got = m.batches()[0][0]
    assert got.dtype == torch.float32
    if dtype == torch.float32:
        assert torch.equal(got, expected)
    else:
        assert torch.allclose(got, expected, rtol=1e-3, atol=1e-2)


def test_float16_overflow_rejected():
    m = ReplayMemory("currents", 4, 2, units=1, float_dtype=torch.float16)
    with pytest.raises(ValueError, match="finite"):
        m.add(torch.full((1, 4, 1), 1e5), [0])


def test_empty_memory():
    m = ReplayMemory("spikes", 10, 5, units=3)
    assert len(m) == 0 and m.batches() == [] and m.memory_bytes_stored == 0 and m.memory_bits_analytic == 0


# ---------------------------------------------------------------------------------------------- exact replay


def small_net():
    torch.manual_seed(0)
    net = RecurrentSNN(nb_inputs=20, hidden_sizes=(16, 12, 8), nb_outputs=5, weight_scale=8.0).double()
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 3, (6, 30, 20), generator=g).double() * (torch.rand(6, 30, 20, generator=g) < 0.3)
    return net, x


def test_network_spikes_at_every_depth():
    net, x = small_net()
    for d in (1, 2, 3):
        z = net.latents(x, d)
        assert 0 < float(z.mean()) < 0.9, d


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_uncompressed_replay_equals_full_forward(depth):
    net, x = small_net()
    y = torch.arange(6) % 5
    batches = [Batch(x[:4], y[:4]), Batch(SparseInput.from_dense(x[4:]), y[4:])]
    with torch.no_grad():
        # per original batch: the readout's matmul rounds differently for other batch compositions
        full = torch.cat([net(b.x) for b in batches])
        mem = build_latent_memory(net, batches, depth, stored_steps=30, float_dtype=torch.float64)
        assert mem.kind == ("currents" if depth == 0 else "spikes") and len(mem) == 6
        out = [net(xb, from_depth=depth) for xb, _ in mem.batches(batch_size=4, dtype=torch.float64)]
        assert torch.equal(torch.cat(out), full)
        tb = mem.training_batches(batch_size=4, dtype=torch.float64)
        assert tb[0].from_depth == depth and torch.equal(torch.cat([b.y for b in tb]), y)


def hand_uncompress(stored, T, mode):
    """The original's per-step un-compression, written as loops: (N, S, H) -> (N, T, H)."""
    N, S, H = stored.shape
    w = T // S
    out = torch.zeros(N, T, H, dtype=torch.float64)
    for t in range(T):
        k, r = t // w, t % w
        for n in range(N):
            for h in range(H):
                v = float(stored[n, k, h])
                out[n, t, h] = (v if r == 0 else 0.0) if mode == "or" else (1.0 if v > r else 0.0)
    return out


def hand_compress(z, S, mode):
    """The original's triple loop over (sample, unit, window)."""
    N, T, H = z.shape
    w = T // S
    out = torch.zeros(N, S, H, dtype=torch.float64)
    for n in range(N):
        for h in range(H):
            for k in range(S):
                s = float(torch.sum(z[n, k * w:(k + 1) * w, h]))
                if mode == "or":
                    out[n, k, h] = 1.0 if s != 0 else 0.0
                else:
                    out[n, k, h] = s
    return out


@pytest.mark.parametrize("mode", ["or", "sum"])
@pytest.mark.parametrize("depth", [1, 2])
def test_compressed_replay_equals_hand_uncompressed(mode, depth):
    net, x = small_net()
    S = 6  # w = 5
    with torch.no_grad():
        z, y = generate_latents(net, [Batch(x, torch.zeros(6, dtype=torch.long))], depth)
        mem = build_latent_memory(net, [Batch(x, torch.zeros(6, dtype=torch.long))], depth, S, mode)
        hand = hand_uncompress(hand_compress(z, S, mode), 30, mode)
        (xb, _), = mem.batches(dtype=torch.float64)
        assert torch.equal(xb, hand)
        assert torch.equal(net(xb, from_depth=depth), net(hand, from_depth=depth))


def test_raw_rehearsal_injects_window_current_at_first_step():
    net, x = small_net()
    y = torch.arange(6) % 5
    S, w = 5, 6
    mem = build_raw_memory([x[:3], x[3:]], y, S)
    mem_b = build_raw_memory([Batch(SparseInput.from_dense(x[:3]), y[:3]), Batch(x[3:], y[3:])], None, S)
    assert mem.kind == "counts" and len(mem) == 6 and torch.equal(mem.labels, y)
    (xa, ya), = mem.batches(dtype=torch.float64)
    (xb, yb), = mem_b.batches(dtype=torch.float64)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xc = hand_compress(x, S, "sum")  # window sums of counts
    cur = torch.zeros(6, 30, 16, dtype=torch.float64)
    for t in range(0, 30, w):
        cur[:, t] = xc[:, t // w] @ net.w1.detach()
    with torch.no_grad():
        assert torch.allclose(net.latents(xa, 0), cur, rtol=0, atol=1e-12)
        assert torch.allclose(net(xa), net(cur, from_depth=0), rtol=0, atol=1e-9)


def test_generate_latents_concatenates():
    net, x = small_net()
    y = torch.arange(6)
    z, yy = generate_latents(net, [Batch(x[:2], y[:2]), (x[2:], y[2:])], 2)
    assert z.shape == (6, 30, 12) and torch.equal(yy, y)
    assert torch.equal(z, net.latents(x, 2))
    with pytest.raises(ValueError):
        generate_latents(net, [Batch(z, y, from_depth=2)], 2)
