"""Reduced precision (sccl.learn.quantize): fixed point against numbers worked out by hand, one int8 Adamax step
by hand, float32 bit-identical to plain training, grids kept over steps, frozen weights, bytes held."""

import pytest
import torch
from torch import nn

from sccl.core.errors import ConfigError, TrainingDiverged
from sccl.learn.quantize import (PRECISIONS, LowPrecision, check_precision, dequantize, fake_quantize, quantize,
                                 quantize_currents, state_bytes, step_exponent)


def t32(values):
    return torch.tensor(values, dtype=torch.float32)


def on_grid(t, bits):
    return torch.equal(fake_quantize(t, bits), t)


def test_quantize_8_bits_by_hand():
    # max 1.2 <= 127 * 2^e: 127 / 64 = 1.984 >= 1.2, 127 / 128 = 0.992 < 1.2, so e = -6;
    # q = round([0.3, -1.2, 0.05] * 64) = round([19.2, -76.8, 3.2]) = [19, -77, 3]
    q, e = quantize(t32([0.3, -1.2, 0.05]), 8)
    assert e == -6 and q.dtype == torch.int8
    assert q.tolist() == [19, -77, 3]
    assert dequantize(q, e).tolist() == [0.296875, -1.203125, 0.046875]
    assert fake_quantize(t32([0.3, -1.2, 0.05]), 8).tolist() == [0.296875, -1.203125, 0.046875]


def test_quantize_16_bits_by_hand():
    # 32767 * 2^-14 = 1.99994 >= 1.2, 32767 * 2^-15 = 0.99997 < 1.2, so e = -14 (step 1/16384);
    # q = round([0.3, -1.2, 0.05] * 16384) = round([4915.2, -19660.8, 819.2]) = [4915, -19661, 819]
    q, e = quantize(t32([0.3, -1.2, 0.05]), 16)
    assert e == -14 and q.dtype == torch.int16
    assert q.tolist() == [4915, -19661, 819]
    assert dequantize(q, e).tolist() == [0.29998779296875, -1.20001220703125, 0.04998779296875]


def test_zero_edge_half_to_even_and_clamp():
    q, e = quantize(torch.zeros(3), 8)
    assert e == 0 and q.tolist() == [0, 0, 0] and q.dtype == torch.int8
    assert quantize(torch.zeros(0), 16)[0].dtype == torch.int16
    # max exactly 127 / 64: equality counts, e = -6, q = 127; 2.5 -> 2 and 3.5 -> 4 (half to even), -0.5 -> 0
    q, e = quantize(t32([127 / 64, 2.5 / 64, 3.5 / 64, -0.5 / 64]), 8)
    assert e == -6 and q.tolist() == [127, 2, 4, 0]
    # max 2.0: 127 / 64 < 2 <= 127 / 32, e = -5, q = [-2 * 32, 1 * 32]
    assert quantize(t32([-2.0, 1.0]), 8)[0].tolist() == [-64, 32]
    # a given step clamps at the range's edges [-128, 127]
    q, e = quantize(t32([1000.0, -1000.0, 1.0, -128.6]), 8, exponent=0)  # -128.6 rounds to -129: clamped
    assert e == 0 and q.tolist() == [127, -128, 1, -128]
    assert step_exponent(t32([0.5]), 2) == -1  # 2 bits: q in [-2, 1], 0.5 <= 1 * 2^-1
    with pytest.raises(ValueError):
        quantize(t32([1.0]), 17)
    with pytest.raises(ValueError):
        quantize(t32([float("nan"), 1.0]), 8)


def test_fake_quantize_idempotent_and_currents():
    x = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0))
    for bits in (8, 16):
        y = fake_quantize(x, bits)
        assert torch.equal(fake_quantize(y, bits), y)
    # one exponent per stored batch: max 1.0 <= 127 * 2^-6 (127 / 128 < 1), q = [0.5, -0.25, 1, 0] * 64
    q, e = quantize_currents(t32([[0.5, -0.25], [1.0, 0.0]]))
    assert e == -6 and q.dtype == torch.int8 and q.tolist() == [[32, -16], [64, 0]]
    assert dequantize(q, e).tolist() == [[0.5, -0.25], [1.0, 0.0]]


def test_check_precision():
    for name in PRECISIONS:
        assert check_precision(name) == name
    with pytest.raises(ConfigError, match="--precision must be one of float32, int16, int8, got 'int4'") as info:
        check_precision("int4")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        LowPrecision("fp16", {})


def test_one_int8_step_by_hand():
    # model: one weight vector w, loss = 0.5 * sum(w^2), so the gradient is the forward weight itself;
    # Adamax lr = 1/64, betas (0.9, 0.999), eps 1e-8
    w = nn.Parameter(t32([0.3, -1.2]))
    opt = torch.optim.Adamax([w], lr=1 / 64, betas=(0.9, 0.999))
    lp = LowPrecision("int8", {"w": w}, opt)
    lp.start()
    # shadow: e = -14 (as above), q = round([4915.2, -19660.8]) = [4915, -19661]
    assert lp.shadows["w"].tolist() == [4915 / 16384, -19661 / 16384]
    # forward: shadow max 1.20001 -> e = -6, q = round([0.2999878 * 64, -1.2000122 * 64]) = round([19.199, -76.801])
    assert w.data.tolist() == [19 / 64, -77 / 64]  # [0.296875, -1.203125]
    opt.zero_grad()
    (0.5 * (w ** 2).sum()).backward()
    assert w.grad.tolist() == [0.296875, -1.203125]  # g at the forward weight, not at the shadow
    lp.before_step()
    assert w.data.tolist() == [4915 / 16384, -19661 / 16384]  # the step updates the shadow
    assert torch.equal(w.grad, t32([0.296875, -1.203125]))  # gradient untouched
    opt.step()
    # t = 1: m = 0.1 * g = [0.0296875, -0.1203125]; u = |g| + 1e-8 = [0.296875, 1.203125] in float32 (1e-8 is
    # below half an ulp of both); s' = s - (1/64) / (1 - 0.9) * m / u = s - (1/64) * sign(g)
    #    = [4915/16384 - 256/16384, -19661/16384 + 256/16384] = [4659, -19405] / 16384 (up to float rounding)
    state = opt.state[w]
    assert state["exp_avg"].tolist() == pytest.approx([0.0296875, -0.1203125], rel=1e-6)
    assert state["exp_inf"].tolist() == [0.296875, 1.203125]
    assert w.data.tolist() == pytest.approx([4659 / 16384, -19405 / 16384], abs=1e-7)
    lp.after_step()
    # shadow: max 1.18439 -> e = -14, q = round([4659.0000, -19405.0000]) = [4659, -19405]
    assert lp.shadows["w"].tolist() == [4659 / 16384, -19405 / 16384]  # [0.28436279296875, -1.18438720703125]
    # m to bfloat16 (8 significant bits): 0.0296875 = 1.9 * 2^-6 -> 1.9 * 128 = 243.2 -> 243 / 128 * 2^-6;
    #    -0.1203125 = -1.925 * 2^-4 -> 1.925 * 128 = 246.4 -> -246 / 128 * 2^-4
    assert state["exp_avg"].tolist() == [243 / 128 / 64, -246 / 128 / 16]  # [0.0296630859375, -0.1201171875]
    # u: 0.296875 = 152 / 128 * 2^-2 and 1.203125 = 154 / 128 exactly: unchanged
    assert state["exp_inf"].tolist() == [0.296875, 1.203125]
    # new forward: e = -6, q = round([0.28436279 * 64, -1.18438721 * 64]) = round([18.199, -75.801]) = [18, -76]
    assert w.data.tolist() == [18 / 64, -76 / 64]  # [0.28125, -1.1875]


def _steps(w, opt, hooks, n=3):
    for i in range(n):
        opt.zero_grad()
        loss = ((w - 0.1 * (i + 1)) ** 2).sum() + (w ** 3).sum()
        loss.backward()
        if hooks is not None:
            hooks.before_step()
        opt.step()
        if hooks is not None:
            hooks.after_step()


def test_float32_is_bit_identical_and_untouched():
    init = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    plain, hooked, frozen = nn.Parameter(init.clone()), nn.Parameter(init.clone()), nn.Parameter(init.clone())
    opt_plain = torch.optim.Adamax([plain], lr=0.01, betas=(0.9, 0.999))
    opt_hooked = torch.optim.Adamax([hooked], lr=0.01, betas=(0.9, 0.999))
    lp = LowPrecision("float32", {"w": hooked}, opt_hooked)
    version, pointer, frozen_version = hooked._version, hooked.data_ptr(), frozen._version
    lp.start()
    lp.freeze({"f": frozen})
    lp.before_step()
    lp.after_step()
    assert hooked._version == version and hooked.data_ptr() == pointer and frozen._version == frozen_version
    assert torch.equal(frozen, init) and lp.shadows == {}
    _steps(plain, opt_plain, None)
    _steps(hooked, opt_hooked, lp)
    assert torch.equal(plain, hooked) and not torch.equal(hooked, init)
    for key in ("exp_avg", "exp_inf"):
        assert torch.equal(opt_plain.state[plain][key], opt_hooked.state[hooked][key])
    edit, after = object(), object()
    assert lp.compose(edit, after) == (edit, after)


@pytest.mark.parametrize("precision, bits", [("int8", 8), ("int16", 16)])
def test_grids_kept_over_steps(precision, bits):
    init = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    w = nn.Parameter(init.clone())
    opt = torch.optim.Adamax([w], lr=0.05, betas=(0.9, 0.999))
    lp = LowPrecision(precision, {"w": w}, opt)
    lp.start()
    seen = []
    edit, after = lp.compose(after_step=lambda: seen.append(w.data.clone()))
    for i in range(5):
        opt.zero_grad()
        ((w - 0.3) ** 2).sum().backward()
        edit()
        opt.step()
        after()
        assert on_grid(w.data, bits) and on_grid(lp.shadows["w"], 16)
        assert torch.equal(w.data, fake_quantize(lp.shadows["w"], bits))
        for key in ("exp_avg", "exp_inf"):  # bfloat16 values
            assert torch.equal(opt.state[w][key], opt.state[w][key].to(torch.bfloat16).float())
        assert torch.equal(seen[-1], w.data)  # the strategy's after_step sees the forward value
    assert not torch.equal(w.data, fake_quantize(init, bits))  # it trained
    if bits == 16:
        assert torch.equal(w.data, lp.shadows["w"])


def test_shadow_carried_to_the_next_task_and_divergence():
    w = nn.Parameter(t32([0.3, -1.2]))
    first = LowPrecision("int8", {"w": w}, None)
    first.start()
    assert w.data.tolist() == [19 / 64, -77 / 64]
    # next task: w still holds the forward value of the shadow, so the 16-bit shadow is kept (not re-derived from
    # the 8-bit value) and a fresh optimiser starts from it
    second = LowPrecision("int8", {"w": w}, torch.optim.Adamax([w]), shadows=first.shadows)
    second.start()
    assert second.shadows["w"].tolist() == [4915 / 16384, -19661 / 16384]
    with torch.no_grad():
        w.fill_(float("nan"))
    with pytest.raises(TrainingDiverged):
        second.after_step()


def test_frozen_on_grid_and_bytes():
    frozen = {"a": nn.Parameter(t32([0.3, -1.2, 0.05])), "b": nn.Parameter(torch.randn(4, 4))}
    lp = LowPrecision("int8", {}, None)
    lp.freeze(frozen)
    assert frozen["a"].tolist() == [0.296875, -1.203125, 0.046875]
    assert on_grid(frozen["b"].data, 8)
    before = frozen["b"].detach().clone()
    lp.freeze(frozen.values())  # again: nothing changes
    assert torch.equal(frozen["b"].data, before)
    # 10 trained, 100 frozen: shadow 2 B, state 2 x 2 B, frozen 1 B (int8) / 2 B (int16); float32 4, 8, 4
    assert lp.state_bytes(10, 100) == {"trained_weights": 20, "optimizer_state": 40, "frozen_weights": 100,
                                       "total": 160}
    assert state_bytes("int16", 10, 100) == {"trained_weights": 20, "optimizer_state": 40, "frozen_weights": 200,
                                             "total": 260}
    assert state_bytes("float32", 10, 100) == {"trained_weights": 40, "optimizer_state": 80, "frozen_weights": 400,
                                               "total": 520}


def test_small_optimiser_state_survives_where_16_bit_fixed_point_would_zero_it():
    """Adamax's u spans orders of magnitude within a tensor: at 16-bit fixed point with one step per tensor an entry
    of 1e-6 beside one of 1 is 0 (the step is 2^-15); bfloat16 keeps it within its 8 significant bits."""
    u = torch.tensor([1.0, 1e-6])
    assert fake_quantize(u, 16).tolist()[1] == 0.0
    w = nn.Parameter(torch.tensor([0.5, 0.5]))
    opt = torch.optim.Adamax([w], lr=1e-3, betas=(0.9, 0.999))
    lp = LowPrecision("int16", {"w": w}, opt)
    lp.start()
    opt.zero_grad()
    w.grad = torch.tensor([1.0, 1e-6])
    lp.before_step()
    opt.step()
    lp.after_step()
    assert opt.state[w]["exp_inf"][1].item() == pytest.approx(1e-6 + 1e-8, rel=2 ** -8)  # |g| + eps
