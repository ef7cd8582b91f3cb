"""Fewer-step replay: the network at S steps (decays alpha^w, beta^w), the threshold as scaled currents, the
readout gain and its calibration, the replayed batches at S steps, and the strategy on the tiny embedded dataset."""

import math

import numpy as np
import pytest
import torch

from sccl.cl.context import RunContext, cached_batches
from sccl.cl.engine import Evaluator, fit_task
from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import Scenario, Task, from_split
from sccl.cl.strategies import get_strategy
from sccl.cl.strategies.fewer_steps import CALIBRATION_SAMPLES, matched_readout_gain, window_gain
from sccl.cli.continual import build_parser, config_from_args
from sccl.core.errors import ConfigError
from sccl.data.splits import make_batches, make_split
from sccl.learn.training import Batch, logits_of
from sccl.net.lif import lif_states
from sccl.net.model import RecurrentSNN, readout_kernel
from sccl.replay.batches import fewer_step_batches
from sccl.replay.building import build_latent_memory


ALPHA, BETA = math.exp(-0.2), math.exp(-0.1)
NAME = "latent_replay_fewer_steps"


def small_net(weight_scale=8.0):
    torch.manual_seed(0)
    return RecurrentSNN(nb_inputs=20, hidden_sizes=(16, 12, 8), nb_outputs=5, weight_scale=weight_scale).double()


def counts(n=6, steps=30, seed=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (n, steps, 20), generator=g).double() * (torch.rand(n, steps, 20, generator=g) < 0.3)


# ---------------------------------------------------------------------------------------------- (1) w = 1


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_stored_steps_equal_to_t_replay_exactly_as_today(depth):
    net, x = small_net(), counts()
    y = torch.arange(6) % 5
    mem = build_latent_memory(net, [Batch(x, y)], depth, stored_steps=30, float_dtype=torch.float64)
    with torch.no_grad():
        today = [logits_of(net, b) for b in mem.training_batches(batch_size=4, dtype=torch.float64)]
        fewer = fewer_step_batches(mem, batch_size=4, dtype=torch.float64)
        assert [b.time_factor for b in fewer] == [1, 1] and fewer[0].timing() == {}
        assert all(torch.equal(logits_of(net, b), t) for b, t in zip(fewer, today))
        z = net.activity_time_major(x, depth)
        assert torch.equal(net.forward_time_major(z, depth, time_factor=1, threshold=1.0),
                           net.forward_time_major(z, depth))


# ---------------------------------------------------------------------------------------------- (2) decays


def hand_membrane(pulses, alpha, beta):
    """mem(t), t = 0..T-1, of one neuron without recurrence or spikes (original-spec §2.2, numpy)."""
    syn = mem = 0.0
    out = []
    for h in pulses:
        out.append(mem)
        mem, syn = beta * mem + syn, alpha * syn + h  # mem uses the OLD syn
    return np.array(out)


def test_s_step_membrane_matches_the_t_step_one_at_window_ends():
    T, w = 40, 5
    S = T // w
    amplitudes = np.array([0.10, 0.05, 0.0, 0.08, 0.02, 0.0, 0.0, 0.04])
    pulses_t = np.zeros(T)
    pulses_t[w - 1::w] = amplitudes  # one pulse per window, at its last step
    net = RecurrentSNN(nb_inputs=1, hidden_sizes=(1, 1, 1)).double()
    a_w, b_w = net.decays(w)
    assert (a_w, b_w) == (ALPHA ** w, BETA ** w) and net.decays(1) == (net.alpha, net.beta)

    mem_t = hand_membrane(pulses_t, ALPHA, BETA)
    V = torch.zeros(1, 1, dtype=torch.float64)
    s, m = lif_states(torch.tensor(pulses_t).view(T, 1, 1), V, ALPHA, BETA)
    assert np.allclose(m.view(-1).numpy(), mem_t, rtol=0, atol=1e-15) and not s.any()

    gain = sum(ALPHA ** j * BETA ** (w - 1 - j) for j in range(w))
    assert window_gain(ALPHA, BETA, w) == pytest.approx(gain, rel=1e-14)
    assert gain == pytest.approx((BETA ** w - ALPHA ** w) / (BETA - ALPHA), rel=1e-12)
    # the S-step layer, by hand and through lif: its membrane is the T-step one / gain at every window end
    mem_s = hand_membrane(amplitudes, a_w, b_w)
    s_s, m_s = lif_states(torch.tensor(amplitudes).view(S, 1, 1), V, a_w, b_w)
    assert np.allclose(m_s.view(-1).numpy(), mem_s, rtol=0, atol=1e-15) and not s_s.any()
    assert np.allclose(mem_s * gain, mem_t[::w], rtol=1e-12, atol=1e-15)
    assert mem_t[::w].max() > 0.1  # not a trivially zero comparison
    # threshold 1/gain (currents scaled by gain): the membrane itself equals the T-step one
    _, m_g = lif_states(torch.tensor(amplitudes * gain).view(S, 1, 1), V, a_w, b_w)
    assert np.allclose(m_g.view(-1).numpy(), mem_t[::w], rtol=1e-12, atol=1e-15)


def test_window_gain_is_what_makes_equal_time_constants():
    assert window_gain(ALPHA, BETA, 1) == 1.0
    assert window_gain(ALPHA, BETA, 10) == pytest.approx(2.7007, abs=1e-4)


def test_hidden_layer_runs_with_the_decays_of_its_time_factor():
    net, x = small_net(), counts(steps=12)
    cur = net.input_currents(x)
    for w in (1, 3):
        expected, _ = lif_states(cur, net.v1, ALPHA ** w, BETA ** w)
        assert torch.equal(net.hidden_layer(1, cur, time_factor=w), expected)
    with pytest.raises(ValueError, match="time_factor"):
        net.decays(0)


# ---------------------------------------------------------------------------------------------- (3) readout


def test_readout_kernel_at_a_time_factor_and_its_cache():
    net = small_net()
    S, w = 7, 4
    s3 = (torch.rand(S, 3, 8, generator=torch.Generator().manual_seed(3)) < 0.4).double()
    a = (s3.reshape(-1, 8) @ net.w_out).view(S, -1).detach()
    plain = net.readout_trace(s3).detach()  # caches the w = 1 kernel of S steps first
    fewer = net.readout_trace(s3, time_factor=w).detach()
    K = torch.as_tensor(readout_kernel(S, ALPHA ** w, BETA ** w))
    assert torch.allclose(fewer.reshape(S + 1, -1), K @ a, rtol=1e-13, atol=1e-15)
    assert not torch.allclose(fewer, plain)
    assert torch.equal(net.readout_trace(s3).detach(), plain)


# ---------------------------------------------------------------------------------------------- (4) threshold


def reference_spikes(I, V, alpha, beta, theta):
    """Plain-torch LIF with firing threshold theta (original-spec §2.2 with 1 -> theta)."""
    T, B, H = I.shape
    syn = I.new_zeros(B, H)
    mem = I.new_zeros(B, H)
    s_prev = I.new_zeros(B, H)
    out = []
    for t in range(T):
        s = (mem > theta).to(I.dtype)
        h = I[t] + s_prev @ V
        mem = (beta * mem + syn) * (1.0 - s)
        syn = alpha * syn + h
        out.append(s)
        s_prev = s
    return torch.stack(out)


@pytest.mark.parametrize("theta, w, dtype", [(0.5, 1, torch.float32), (2.0, 1, torch.float32),
                                             (0.25, 5, torch.float32), (0.7, 1, torch.float64),
                                             (1.3, 5, torch.float64)])
def test_threshold_is_scaled_currents_exactly(theta, w, dtype):
    net = small_net(weight_scale=4.0).to(dtype)
    cur = net.input_currents(counts(steps=40).to(dtype)).detach()
    expected = reference_spikes(cur, net.v1.detach(), ALPHA ** w, BETA ** w, theta)
    got = net.hidden_layer(1, cur, time_factor=w, threshold=theta)
    assert 0 < float(expected.mean()) < 0.9
    assert torch.equal(got, expected)
    assert not torch.equal(got, reference_spikes(cur, net.v1.detach(), ALPHA ** w, BETA ** w, 1.0))


def test_threshold_trains_the_layer_weights():
    net, x = small_net(), counts()
    z = net.activity_time_major(x, 1)
    loss = net.forward_time_major(z, 1, time_factor=2, threshold=0.5).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in (net.w2, net.v2, net.w_out))


# ---------------------------------------------------------------------------------------------- (5), (6) strategy


@pytest.fixture(scope="module")
def tiny(embedded_tiny):
    ds = embedded_tiny
    split = make_split("class_incremental", 7, ds.labels, ds.speakers, ds.source)
    return ds, from_split(split)


def strategy_of(name, tiny, **kw):
    ds, scenario = tiny
    settings = dict(latent_depth=2, replay_batches=1, stored_steps=10, batch_size=8, quiet=True)
    settings.update(kw)
    cfg = RunConfig.of(scenario="class_incremental", strategy=name, held_out=7, **settings)
    get_strategy(name).validate(cfg, ds.binned.nb_steps)
    torch.manual_seed(1)
    net = RecurrentSNN()
    return get_strategy(name)(cfg, RunContext(net, ds, torch.device("cpu"), scenario, lambda line: None, 2,
                                              net.trainable_for_depth(2), 8))


def test_replayed_batches_hold_s_steps_and_the_memory_is_latent_replays(tiny):
    ds, _ = tiny
    assert ds.binned.nb_steps == 100
    fewer = strategy_of(NAME, tiny, options={"replay_threshold": 0.5, "readout_gain": 4.0})
    plain = strategy_of("latent_replay", tiny)
    fewer.end_task(0)
    plain.end_task(0)
    batches = fewer.memory_batches()
    assert batches and all(b.x.shape[1:] == (10, 100) and b.time_factor == 10 and b.threshold == 0.5
                           and b.readout_gain == 4.0 for b in batches)
    assert [b.x.shape[1] for b in plain.memory_batches()] == [100] * len(batches)
    assert fewer.memory_bytes_stored == plain.memory_bytes_stored > 0
    assert fewer.memory_bits_analytic == plain.memory_bits_analytic
    assert torch.equal(fewer.memory.get_compressed(range(len(fewer.memory))),
                       plain.memory.get_compressed(range(len(plain.memory))))


@pytest.mark.parametrize("kw, message", [({"stored_steps": None}, "needs --latent-subsample S below the 100"),
                                         ({"stored_steps": 100}, "needs --latent-subsample S below the 100"),
                                         ({"options": {"replay_threshold": 0.0}}, "--replay-threshold: expected"),
                                         ({"options": {"readout_gain": "abc"}}, "--readout-gain: expected"),
                                         ({"options": {"readout_gain": float("inf")}}, "--readout-gain: expected")])
def test_bad_settings_are_clear_errors(tiny, kw, message):
    with pytest.raises(ConfigError, match=message):
        strategy_of(NAME, tiny, **kw)


def test_command_line_defaults_to_ten_stored_steps():
    parser = build_parser(NAME, "class_incremental")
    cfg = config_from_args(parser.parse_args(["--removed-class", "7"]), NAME, "class_incremental")
    assert cfg.options["stored_steps"] == 10 and cfg.options["latent_depth"] == 2
    assert cfg.options["replay_threshold"] == cfg.options["readout_gain"] == "auto"


def test_one_task_trains_on_new_and_replayed_s_step_batches(tiny):
    ds, scenario = tiny
    strategy = strategy_of(NAME, tiny, options={"replay_threshold": 0.4, "readout_gain": 2.0})
    net = strategy.ctx.net
    strategy.end_task(0)
    for n, p in net.named_parameters():
        p.requires_grad_(n in strategy.ctx.trainable)
    new = strategy.view(cached_batches(net, ds, make_batches(scenario.tasks[1].train, 8), 2, torch.device("cpu")))
    batches = strategy.epoch_batches(new)
    assert {b.x.shape[0] for b in new} == {10}
    assert {(b.time_factor, b.threshold, b.readout_gain) for b in batches} == {(10, 0.4, 2.0)}
    evaluate = Evaluator(net, ds, scenario, 2, "cpu", view=strategy.view)
    assert {(b.x.shape[0], b.time_factor) for b in evaluate.batches} == {(10, 10)}  # evaluated at S steps
    rows = fit_task(net, strategy, 1, new, 1, 1e-3, strategy.ctx.trainable, evaluate)
    assert rows[-1]["loss"] > 0 and rows[-1]["memory_bytes"] == strategy.memory_bytes_stored


# ---------------------------------------------------------------------------------------------- (7) the view


def viewer(mode="or", stored_steps=10, threshold=0.5):
    """The strategy with only what its view reads: the stored steps, the compression, the threshold."""
    cfg = RunConfig.of(scenario="class_incremental", strategy=NAME, held_out=7, latent_depth=1, stored_steps=stored_steps,
                    compression=mode, options={"replay_threshold": threshold, "readout_gain": 1.0})
    scenario = Scenario("class_incremental", [Task("0-6", np.arange(1), np.arange(1)),
                                              Task("7", np.arange(1), np.arange(1), (7,))])
    return get_strategy(NAME)(cfg, RunContext(small_net(), None, torch.device("cpu"), scenario, lambda line: None))


@pytest.mark.parametrize("mode, expected", [("or", [[1, 0], [1, 1]]), ("sum", [[2, 0], [1, 1]])])
def test_view_compresses_each_window_as_the_memory_does(mode, expected):
    # unit 0: spikes at steps 0, 1 (window 0 only); unit 1: steps 1, 2 (one in each window); T = 4, S = 2
    z = torch.zeros(4, 1, 2)
    z[[0, 1], 0, 0] = 1
    z[[1, 2], 0, 1] = 1
    viewed = viewer(mode, stored_steps=2).view([Batch(z, torch.tensor([3]), from_depth=1, time_major=True)])[0]
    assert viewed.x[:, 0].t().tolist() == expected  # per unit, its two windows
    assert (viewed.time_factor, viewed.threshold, viewed.from_depth, viewed.time_major) == (2, 0.5, 1, True)


@pytest.mark.parametrize("depth, mode", [(0, "or"), (1, "or"), (1, "sum"), (2, "or")])
def test_a_viewed_batch_gives_the_logits_of_the_same_samples_replayed(depth, mode):
    net, x = small_net(), counts()
    y = torch.arange(6) % 5
    memory = build_latent_memory(net, [Batch(x, y)], depth, stored_steps=10, mode=mode, float_dtype=torch.float64)
    replayed = fewer_step_batches(memory, batch_size=6, threshold=0.5, dtype=torch.float64)[0]
    cached = Batch(net.activity_time_major(x, depth), y, from_depth=depth, time_major=True)
    viewed = viewer(mode).view([cached])[0]
    assert viewed.x.shape == (10, 6, net.depth_size(depth)) and viewed.time_factor == replayed.time_factor == 3
    with torch.no_grad():
        torch.testing.assert_close(logits_of(net, viewed), logits_of(net, replayed), rtol=0, atol=1e-12)


def test_a_hosted_regularizer_estimates_from_s_step_batches(tiny):
    ds, scenario = tiny
    strategy = strategy_of(NAME, tiny, options={"regularizer": "ewc", "fisher_samples": 8})
    seen = strategy.regularizer.ctx.train_batches(1, 8)
    assert seen and all(b.x.shape[0] == 10 and b.time_factor == 10 for b in seen)
    assert strategy.regularizer.ctx.net is strategy.ctx.net  # the rest is the run's


def test_the_description_says_what_runs_at_s_steps():
    text = get_strategy(NAME).description
    assert "Replay4NCL-like, evaluated at S steps" in text and "new data and test sets" in text


# ---------------------------------------------------------------------------------------------- (8) readout gain


def test_readout_gain_multiplies_the_readout_input_current():
    net = small_net()
    s3 = (torch.rand(30, 4, 8, generator=torch.Generator().manual_seed(3)) < 0.3).double()
    plain = net.readout_trace(s3, time_factor=3)
    # by hand: the readout recurrence is linear in a = s3 @ w_out, so the trace of 4 a is 4 times the trace of a
    torch.testing.assert_close(net.readout_trace(s3, time_factor=3, readout_gain=4.0), 4 * plain, rtol=0, atol=0)
    z = s3[:10]
    assert torch.equal(net.forward_time_major(z, 3, 3, 1.0, 0.25), net.forward_time_major(z, 3, 3) * 0.25)
    with pytest.raises(ValueError, match="readout_gain must be a positive number"):
        net.readout_trace(s3, readout_gain=-1.0)


def test_matched_gain_makes_the_mean_largest_logit_that_of_t_steps():
    net = small_net()
    x = counts(n=12)
    batch = Batch(net.activity_time_major(x, 1), torch.zeros(12, dtype=torch.long), from_depth=1, time_major=True)
    g = matched_readout_gain(net, [batch], steps=10, mode="or", threshold=0.5)
    viewed = viewer("or", threshold=0.5).view([batch])[0]
    with torch.no_grad():
        t_mean = net.forward_time_major(batch.x, 1).max(1).values.mean()
        s_mean = net.forward_time_major(viewed.x, 1, 3, 0.5, g).max(1).values.mean()
        assert g > 1 and float(t_mean) > 0  # this net's S-step logits are smaller: the gain lifts them
    torch.testing.assert_close(s_mean, t_mean, rtol=1e-12, atol=0)


def test_a_silent_s_step_network_cannot_be_matched_and_a_silent_readout_has_nothing_to_match():
    net = small_net()
    batch = Batch(net.activity_time_major(counts(), 1), torch.zeros(6, dtype=torch.long), from_depth=1, time_major=True)
    with pytest.raises(ConfigError, match="no gain matches them"):  # layers above the cut silent at S steps only
        matched_readout_gain(net, [batch], steps=10, mode="or", threshold=1e6)
    with torch.no_grad():
        net.w_out.fill_(-1.0)  # every readout trace <= 0 at T steps too: every largest logit is the leading 0
    assert matched_readout_gain(net, [batch], steps=10, mode="or", threshold=1.0) is None


def test_auto_settings_are_one_over_the_window_gain_and_the_matched_gain(tiny):
    lines = []
    strategy = strategy_of(NAME, tiny)
    strategy.ctx.log = lines.append
    net = strategy.ctx.net
    assert strategy.threshold == pytest.approx(1 / window_gain(net.alpha, net.beta, 10))
    calibration = strategy.ctx.train_batches(0, CALIBRATION_SAMPLES)
    expected = matched_readout_gain(net, calibration, 10, "or", strategy.threshold)
    assert strategy.readout_gain == expected and strategy.view(calibration)[0].readout_gain == expected
    assert sum("readout gain" in line for line in lines) == 1  # computed once, and said
