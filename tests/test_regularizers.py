"""EWC, SI and LwF: their penalties and importances against numbers worked out by hand, their memory, their
checks, and one run of each through the engine on the tiny embedded dataset."""

import gc

import numpy as np
import pytest
import torch
from torch import nn

from sccl.cl.context import RunContext
from sccl.cl.engine import run
from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import Scenario, Task
from sccl.cl.strategies import get_strategy
from sccl.cl.strategies.ewc import OnlineEWC, empirical_fisher
from sccl.cl.strategies.lwf import LearningWithoutForgetting, classes_seen_up_to, distillation_loss
from sccl.cl.strategies.si import SynapticIntelligence
from sccl.core.errors import ConfigError
from sccl.core.results import read_json
from sccl.learn.pretraining import PretrainConfig, pretrain
from sccl.learn.training import Batch, logits_of
from sccl.net.model import TRAINABLE_BY_DEPTH, RecurrentSNN
from sccl.net.sparse_input import SparseInput


CPU = torch.device("cpu")
NO_TASKS = Scenario("sample_incremental", [Task("old", np.arange(2), np.arange(2)),
                                           Task("new", np.arange(2), np.arange(2))])


def config(strategy, scenario="sample_incremental", **options):
    return RunConfig.of(scenario=scenario, strategy=strategy, held_out=3, options=options)


def context(net, trainable, scenario=NO_TASKS, task_batches=None):
    return RunContext(net, None, CPU, scenario, lambda line: None, trainable=tuple(trainable),
                      task_batches=task_batches or {})


class Theta(nn.Module):
    """Two scalars, float64 so that the hand-worked decimals compare exactly."""

    def __init__(self, values):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(values, dtype=torch.float64))

    def set(self, values):
        with torch.no_grad():
            self.theta.copy_(torch.tensor(values, dtype=torch.float64))


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return RecurrentSNN(nb_inputs=20, hidden_sizes=(6, 5, 4), nb_outputs=3, weight_scale=3.0)


def dense_inputs(n, seed=1, steps=30):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, steps, 20, generator=g) < 0.3).float() * 2


# ---------------------------------------------------------------------------------------------- EWC


def test_ewc_penalty_and_its_gradient_by_hand():
    net = Theta([1.0, -2.0])
    ewc = OnlineEWC(config("ewc", ewc_lambda=3.0), context(net, ["theta"]))
    ewc.importance = {"theta": torch.tensor([2.0, 0.5], dtype=torch.float64)}
    ewc.anchor = {"theta": torch.tensor([0.5, -1.0], dtype=torch.float64)}
    # (λ/2) Σ F (θ − θ*)² = 3/2 · (2 · 0.5² + 0.5 · (−1)²) = 1.5 · (0.5 + 0.5) = 1.5
    penalty = ewc.extra_loss(None, None)
    assert penalty.item() == pytest.approx(1.5)
    # ∂/∂θ = λ F (θ − θ*) = 3 · (2 · 0.5, 0.5 · (−1)) = (3, −1.5), and penalty_gradient says the same
    penalty.backward()
    assert net.theta.grad.tolist() == pytest.approx([3.0, -1.5])
    assert ewc.penalty_gradient()["theta"].tolist() == pytest.approx([3.0, -1.5])


def test_ewc_adds_nothing_before_its_first_consolidation():
    ewc = OnlineEWC(config("ewc"), context(Theta([1.0, 2.0]), ["theta"]))
    assert ewc.extra_loss(None, None) is None
    assert ewc.memory_bytes_stored == ewc.memory_bits_analytic == 0 and ewc.describe_memory() == "none"


def test_running_fisher_decays_by_gamma_and_the_anchor_follows():
    net = Theta([1.0, 2.0])
    ewc = OnlineEWC(config("ewc", importance_norm="none"), context(net, ["theta"]))
    ewc.consolidate({"theta": torch.tensor([4.0, 2.0], dtype=torch.float64)})
    net.set([3.0, 5.0])
    ewc.consolidate({"theta": torch.tensor([1.0, 1.0], dtype=torch.float64)}, decay=0.5)
    assert ewc.importance["theta"].tolist() == [3.0, 2.0]  # 0.5 · (4, 2) + (1, 1)
    assert ewc.anchor["theta"].tolist() == [3.0, 5.0]


def per_sample_squared_gradients(net, x, y, names):
    """The reference: each sample alone through net(dense x), backward into .grad, squares summed."""
    total = {n: torch.zeros_like(getattr(net, n)) for n in names}
    for j in range(len(y)):
        net.zero_grad(set_to_none=True)
        log_p = torch.log_softmax(net(x[j:j + 1]), dim=1)[0, y[j]]
        log_p.backward()
        for n in names:
            total[n] += getattr(net, n).grad ** 2
    net.zero_grad(set_to_none=True)
    return {n: t / len(y) for n, t in total.items()}


def test_fisher_is_the_mean_of_per_sample_squared_gradients_over_the_first_samples():
    net = tiny_net()
    x, y = dense_inputs(8), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    assert net.record(x[:1])["spikes3"].sum() > 0  # layer 3 spikes: every parameter gets a gradient
    trainable = ("v1", "w2", "w_out")
    # the engine's raw batches (sparse inputs), two of four; the first 6 samples in batch order count
    batches = [Batch(SparseInput.from_dense(x[:4]), y[:4]), Batch(SparseInput.from_dense(x[4:]), y[4:])]
    ewc = OnlineEWC(config("ewc", fisher_samples=6, importance_norm="none"),
                    context(net, trainable, task_batches={0: batches}))
    ewc.end_task(0)
    expected = per_sample_squared_gradients(net, x[:6], y[:6], trainable)
    assert set(ewc.importance) == set(trainable)
    for n in trainable:
        assert expected[n].abs().sum() > 0
        torch.testing.assert_close(ewc.importance[n], expected[n], rtol=1e-4, atol=1e-9)
    assert all(getattr(net, n).grad is None for n in trainable)  # the run's gradients are left alone


def test_fisher_at_a_cut_depth_equals_the_raw_one_for_the_layers_above():
    net = tiny_net()
    x, y = dense_inputs(5), torch.tensor([0, 1, 2, 0, 1])
    above = TRAINABLE_BY_DEPTH[1]
    raw = empirical_fisher(net, {n: getattr(net, n) for n in above}, [Batch(x, y)], 5)
    cached = [Batch(net.activity_time_major(x, 1), y, from_depth=1, time_major=True)]
    at_cut = empirical_fisher(net, {n: getattr(net, n) for n in above}, cached, 5)
    for n in above:
        torch.testing.assert_close(at_cut[n], raw[n], rtol=1e-4, atol=1e-9)


# ---------------------------------------------------------------------------------------------- SI


def si_step(si, net, gradient, new_values):
    """One step as the engine drives it: .grad set by the backward, edit_gradients, the step, after_step."""
    net.theta.grad = torch.tensor(gradient, dtype=torch.float64)
    si.edit_gradients()
    net.set(new_values)
    si.after_step()


def test_si_importance_on_a_known_trajectory():
    net = Theta([1.0, 2.5])
    si = SynapticIntelligence(config("si", si_c=2.0, si_xi=0.01, importance_norm="none"), context(net, ["theta"]))
    si.end_task(0)  # the pretraining was not observed: anchor only, Ω = 0
    assert si.importance["theta"].tolist() == [0.0, 0.0] and si.anchor["theta"].tolist() == [1.0, 2.5]
    assert si.extra_loss(None, None).item() == 0.0

    si.start_task(1)
    net.set([1.0, 2.0])  # the engine re-draws a readout column: not a step, so neither in ω nor in Δ
    si_step(si, net, [0.5, -1.0], [0.9, 2.2])  # −g·Δθ = (−0.5 · −0.1, 1.0 · 0.2) = (0.05, 0.2)
    si_step(si, net, [0.2, 0.5], [0.8, 2.3])  # −g·Δθ = (−0.2 · −0.1, −0.5 · 0.1) = (0.02, −0.05)
    assert si.omega["theta"].tolist() == pytest.approx([0.07, 0.15])
    si.end_task(1)
    # Δ = (0.8 − 1.0, 2.3 − 2.0) = (−0.2, 0.3); Ω = ω / (Δ² + ξ) = (0.07 / 0.05, 0.15 / 0.10) = (1.4, 1.5)
    assert si.importance["theta"].tolist() == pytest.approx([1.4, 1.5])
    assert si.anchor["theta"].tolist() == pytest.approx([0.8, 2.3])


def test_si_path_integral_uses_the_task_gradient_without_its_own_penalty():
    net = Theta([0.8, 2.3])
    si = SynapticIntelligence(config("si", si_c=2.0, si_xi=0.01, importance_norm="none"), context(net, ["theta"]))
    si.consolidate({"theta": torch.tensor([1.4, 1.5], dtype=torch.float64)})  # Ω, θ* = (0.8, 2.3)
    si.start_task(1)
    si_step(si, net, [1.0, 0.0], [0.7, 2.4])  # at θ*: no penalty gradient; ω = (0.1, 0)
    # θ − θ* = (−0.1, 0.1): penalty gradient 2c Ω (θ − θ*) = 4 · (−0.14, 0.15) = (−0.56, 0.6); the task loss
    # 0.3 θ0 + 0.4 θ1 has gradient (0.3, 0.4); the backward of their sum leaves (−0.26, 1.0) in .grad
    loss = (torch.tensor([0.3, 0.4], dtype=torch.float64) * net.theta).sum() + si.extra_loss(None, None)
    net.theta.grad = None  # the engine's zero_grad
    loss.backward()
    assert net.theta.grad.tolist() == pytest.approx([-0.26, 1.0])
    si.edit_gradients()
    assert si.task_gradient["theta"].tolist() == pytest.approx([0.3, 0.4])
    net.set([0.65, 2.35])
    si.after_step()
    # Δθ = (−0.05, −0.05): −g·Δθ = (0.015, 0.02) with the task gradient, so ω = (0.115, 0.02) (the whole
    # gradient would have given −(−0.26, 1.0)·Δθ = (−0.013, 0.05))
    assert si.omega["theta"].tolist() == pytest.approx([0.115, 0.02])
    si.end_task(1)
    # Δ = (0.65 − 0.8, 2.35 − 2.3) = (−0.15, 0.05); Ω += ω / (Δ² + 0.01) = (0.115 / 0.0325, 0.02 / 0.0125)
    assert si.importance["theta"].tolist() == pytest.approx([1.4 + 0.115 / 0.0325, 1.5 + 1.6])


# ---------------------------------------------------------------------------------------------- LwF


def kl_by_hand(old, new, T):
    p = np.exp(old / T) / np.exp(old / T).sum(1, keepdims=True)
    q = np.exp(new / T) / np.exp(new / T).sum(1, keepdims=True)
    return float((p * (np.log(p) - np.log(q))).sum(1).mean())


def test_distillation_loss_is_t_squared_kl_at_temperature_t():
    old = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    new = np.array([[0.5, 2.5, 0.0], [1.0, 1.0, 1.0]])
    got = distillation_loss(torch.tensor(old), torch.tensor(new), 3.0).item()
    assert got == pytest.approx(9.0 * kl_by_hand(old, new, 3.0))
    assert distillation_loss(torch.tensor(old), torch.tensor(old), 2.0).item() == pytest.approx(0.0, abs=1e-12)


def test_old_classes_of_each_scenario_kind():
    progressive = Scenario("progressive", [Task("0-2", np.arange(1), np.arange(1)),
                                           Task("3", np.arange(1), np.arange(1), (3,)),
                                           Task("4", np.arange(1), np.arange(1), (4,))])
    assert classes_seen_up_to(progressive, 0, 5) == [0, 1, 2]
    assert classes_seen_up_to(progressive, 1, 5) == [0, 1, 2, 3]
    assert classes_seen_up_to(NO_TASKS, 0, 5) == [0, 1, 2, 3, 4]  # speaker scenarios: every class


@pytest.mark.parametrize("loss_kind", ["kl", "mse"])
def test_lwf_loss_over_old_classes_of_a_class_scenario(loss_kind):
    net = tiny_net()
    scenario = Scenario("class_incremental", [Task("classes except 2", np.arange(1), np.arange(1)),
                                              Task("class 2", np.arange(1), np.arange(1), (2,))])
    lwf = LearningWithoutForgetting(config("lwf", "class_incremental", lwf_alpha=0.5, lwf_temperature=3.0,
                                           lwf_loss=loss_kind), context(net, TRAINABLE_BY_DEPTH[2], scenario))
    batch = Batch(dense_inputs(4), torch.tensor([0, 1, 0, 1]))
    old = logits_of(net, batch).detach().numpy()
    lwf.end_task(0)
    with torch.no_grad():
        net.w_out.add_(0.5 * torch.randn_like(net.w_out))
        net.w3.mul_(1.2)
    new = logits_of(net, batch)
    loss = lwf.extra_loss(batch, new)
    diff = new.detach().numpy()[:, :2] - old[:, :2]  # class 2 is not old
    expected = (0.5 * 9.0 * kl_by_hand(old[:, :2], new.detach().numpy()[:, :2], 3.0) if loss_kind == "kl"
                else 0.5 * 0.5 * float((diff ** 2).mean()))
    assert expected > 0 and loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert net.w_out.grad[:, 2].abs().sum() == 0 and net.w_out.grad[:, :2].abs().sum() > 0


def test_lwf_copies_the_trained_parameters_shares_the_frozen_ones_and_caches_per_batch():
    net = tiny_net()
    lwf = LearningWithoutForgetting(config("lwf"), context(net, TRAINABLE_BY_DEPTH[2]))
    lwf.end_task(0)
    assert lwf.old_net.w1 is net.w1 and lwf.old_net.v2 is net.v2
    assert lwf.old_net.w_out is not net.w_out and not lwf.old_net.w_out.requires_grad
    before = lwf.old_net.w_out.clone()
    with torch.no_grad():
        net.w_out.add_(1.0)
    assert torch.equal(lwf.old_net.w_out, before)

    calls = []

    def counted(b):
        calls.append(b)
        return lwf._old_logits(b)

    batch = Batch(dense_inputs(2), torch.tensor([0, 1]))
    first = lwf.old_logits.get(batch, counted)
    assert lwf.old_logits.get(batch, counted) is first and len(calls) == 1  # the same batch: computed once
    other = Batch(dense_inputs(2, seed=5), torch.tensor([0, 1]))
    lwf.old_logits.get(other, counted)
    assert len(lwf.old_logits) == 2
    del other, calls[:]
    gc.collect()
    assert len(lwf.old_logits) == 1  # a batch that is gone leaves the cache


# ---------------------------------------------------------------------------------------------- memory, checks


@pytest.mark.parametrize("trainable, scalars", [
    (TRAINABLE_BY_DEPTH[1], 200 * 100 + 100 * 100 + 100 * 50 + 50 * 50 + 50 * 20),
    (("w1", "v1", "w2", "v2", "w3", "v3", "w_out"), 700 * 200 + 200 * 200 + 38500),
])
def test_memory_is_two_float32_per_trained_scalar_for_ewc_and_si_and_one_for_lwf(trainable, scalars):
    torch.manual_seed(0)
    net = RecurrentSNN()  # 700-200-100-50-20
    one = [Batch(dense_inputs(1, steps=100).repeat(1, 1, 35), torch.tensor([3]))]
    strategies = {"ewc": (OnlineEWC, {"fisher_samples": 1}, 8), "si": (SynapticIntelligence, {}, 8),
                  "lwf": (LearningWithoutForgetting, {}, 4)}
    for name, (cls, options, bytes_per_scalar) in strategies.items():
        s = cls(config(name, **options), context(net, trainable, task_batches={0: one}))
        assert s.memory_bytes_stored == 0
        s.end_task(0)
        assert s.memory_bytes_stored == bytes_per_scalar * scalars
        assert s.memory_bits_analytic == 8 * bytes_per_scalar * scalars
        assert f"{s.memory_bytes_stored} bytes" in s.describe_memory()


@pytest.mark.parametrize("strategy, dest, value, flag", [
    ("ewc", "ewc_lambda", -1.0, "--ewc-lambda"),
    ("ewc", "ewc_lambda", float("nan"), "--ewc-lambda"),
    ("ewc", "ewc_gamma", 1.5, "--ewc-gamma"),
    ("ewc", "ewc_gamma", -0.1, "--ewc-gamma"),
    ("ewc", "fisher_samples", 0, "--fisher-samples"),
    ("si", "si_c", -0.1, "--si-c"),
    ("si", "si_xi", 0.0, "--si-xi"),
    ("si", "si_xi", float("inf"), "--si-xi"),
    ("lwf", "lwf_alpha", -1.0, "--lwf-alpha"),
    ("lwf", "lwf_temperature", 0.0, "--lwf-temperature"),
])
def test_bad_values_name_their_flag(strategy, dest, value, flag):
    cls = get_strategy(strategy)
    cls.validate(config(strategy), 100)  # the defaults are fine
    with pytest.raises(ConfigError, match=f"^{flag} must be"):
        cls.validate(config(strategy, **{dest: value}), 100)


# ---------------------------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedded_tiny):
    """The tiny embedded dataset and a model pretrained 2 epochs on classes 0-9 (the progressive scenario)."""
    root, ds = tmp_path_factory.mktemp("regularizers"), embedded_tiny
    pretrain(PretrainConfig("progressive", None, epochs=2, batch_size=16, quiet=True), ds, root / "runs")
    return ds, root / "runs" / "pretrain" / "paper" / "classes0-9_seed0"


@pytest.mark.parametrize("strategy, bytes_per_scalar", [("ewc", 8), ("si", 8), ("lwf", 4)])
def test_each_runs_through_the_engine_over_ten_new_classes(world, tmp_path, strategy, bytes_per_scalar):
    ds, pre = world
    cfg = RunConfig.of(scenario="progressive", strategy=strategy, epochs=1, batch_size=4, quiet=True,
                    pretrained=str(pre), options={"fisher_samples": 20} if strategy == "ewc" else {})
    s = read_json(run(cfg, ds, tmp_path) / "summary.json")
    assert np.array(s["accuracy_matrix"]).shape == (11, 11)
    scalars = sum(p.numel() for p in RecurrentSNN().parameters())
    assert [m["bytes"] for m in s["memory_per_task"]] == [bytes_per_scalar * scalars] * 11
    assert s["memory_bits_analytic"] == 8 * bytes_per_scalar * scalars
