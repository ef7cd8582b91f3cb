"""The regularisers at their best (issue 19): a new class's readout column is free of EWC's and SI's anchor during
its task, importance normalised per tensor, LwF's warm-up and its distillation that pins the old logits' level.
Every expected number is worked out by hand in the comments."""

import numpy as np
import pytest
import torch

from sccl.cl.context import RunContext
from sccl.cl.engine import reinit_readout_column
from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import Scenario, Task
from sccl.cl.strategies.anchoring import normalised
from sccl.cl.strategies.ewc import OnlineEWC, single_samples
from sccl.cl.strategies.lwf import LearningWithoutForgetting, distillation_loss, logit_matching_loss
from sccl.cl.strategies.si import SynapticIntelligence
from sccl.learn.training import Batch, logits_of, nll_loss, train_epoch
from sccl.net.model import TRAINABLE_BY_DEPTH, RecurrentSNN


CPU = torch.device("cpu")
ONE = (np.arange(1), np.arange(1))
# three tasks: classes 0 (pretraining), then class 1, then class 2
PROGRESSIVE = Scenario("progressive", [Task("0", *ONE), Task("1", *ONE, (1,)), Task("2", *ONE, (2,))])
SPEAKERS = Scenario("speakers", [Task("old", *ONE), Task("new", *ONE)])


def tiny_net():
    torch.manual_seed(0)
    return RecurrentSNN(nb_inputs=20, hidden_sizes=(6, 5, 4), nb_outputs=3, weight_scale=3.0)


def dense_inputs(n, seed=1, steps=30):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, steps, 20, generator=g) < 0.3).float() * 2


def make(cls, net, scenario=PROGRESSIVE, trainable=TRAINABLE_BY_DEPTH[2], log=None, **options):
    cfg = RunConfig.of(scenario=scenario.name, strategy=cls.name, options=options)
    ctx = RunContext(net, None, CPU, scenario, log or (lambda line: None), trainable=tuple(trainable))
    return cls(cfg, ctx)


# ---------------------------------------------------------------------------------------------- (1) free column

ANCHORED = [(OnlineEWC, {"ewc_lambda": 2.0}), (SynapticIntelligence, {"si_c": 1.0})]  # both: scale 1


@pytest.mark.parametrize("cls, options", ANCHORED)
def test_the_redrawn_column_of_the_new_class_costs_nothing_during_its_task(cls, options):
    net = tiny_net()
    s = make(cls, net, importance_norm="none", **options)
    s.consolidate({n: torch.ones_like(p) for n, p in s.trained_parameters().items()})  # importance 1, anchor now
    s.start_task(1)
    reinit_readout_column(net, 1, seed=3)  # the engine re-draws class 1's column after start_task
    assert not torch.equal(net.w_out[:, 1], s.anchor["w_out"][:, 1])
    assert s.extra_loss(None, None).item() == 0.0  # everything else at its anchor: exactly nothing
    assert not s.penalty_gradient()["w_out"].any()
    assert torch.equal(s.importance["w_out"], torch.ones(4, 3))  # the stored importance is untouched
    with torch.no_grad():
        net.w_out[:, 0] += 0.1  # an old column: 1 · Σ_4 rows 1 · 0.1² = 0.04
    assert s.extra_loss(None, None).item() == pytest.approx(0.04, rel=1e-5)


@pytest.mark.parametrize("cls, options", ANCHORED)
def test_once_learnt_the_column_is_protected_and_the_next_new_one_is_free(cls, options):
    net = tiny_net()
    s = make(cls, net, importance_norm="none", **options)
    ones = {n: torch.ones_like(p) for n, p in s.trained_parameters().items()}
    s.consolidate(ones)
    s.start_task(1)
    s.consolidate(ones)  # the end of task 1: importance 2 everywhere, anchor = the learnt column
    s.start_task(2)
    with torch.no_grad():
        net.w_out[:, 1] += 0.1  # class 1's column, learnt: 1 · Σ_4 rows 2 · 0.01 = 0.08
        net.w_out[:, 2] += 5.0  # class 2's column, new in task 2: free
    assert s.extra_loss(None, None).item() == pytest.approx(0.08, rel=1e-5)


def test_speaker_scenarios_have_no_free_column():
    net = tiny_net()
    s = make(OnlineEWC, net, SPEAKERS, importance_norm="none", ewc_lambda=2.0)
    s.consolidate({n: torch.ones_like(p) for n, p in s.trained_parameters().items()})
    s.start_task(1)
    with torch.no_grad():
        net.w_out[:, 2] += 0.1  # 1 · 4 · 0.01
    assert s.extra_loss(None, None).item() == pytest.approx(0.04, rel=1e-5)


# ---------------------------------------------------------------------------------------------- (2) normalisation


def test_each_tensor_is_divided_by_its_mean_absolute_value():
    out = normalised({"w1": torch.tensor([1e-7, 3e-7]), "w_out": torch.tensor([0.4, 1.2]),
                      "si": torch.tensor([-1.0, 3.0]), "zero": torch.zeros(2)})
    # means 2e-7 and 0.8: both (0.5, 1.5), 7 decades apart before; SI's (-1, 3) by mean |.| 2; zeros stay
    assert out["w1"].tolist() == pytest.approx([0.5, 1.5]) and out["w_out"].tolist() == pytest.approx([0.5, 1.5])
    assert out["si"].tolist() == [-0.5, 1.5] and out["zero"].tolist() == [0.0, 0.0]


def test_the_normalised_importance_joins_the_decayed_sum():
    net = tiny_net()
    ewc = make(OnlineEWC, net, trainable=("w_out",))
    ewc.consolidate({"w_out": torch.full((4, 3), 1e-3).index_fill_(1, torch.tensor([0]), 4e-3)})
    # mean (4 + 1 + 1) / 3 · 1e-3 = 2e-3: column 0 -> 2, the others -> 0.5
    assert ewc.importance["w_out"][:, 0].tolist() == pytest.approx([2.0] * 4)
    assert ewc.importance["w_out"][:, 1:].flatten().tolist() == pytest.approx([0.5] * 8)
    ewc.consolidate({"w_out": torch.full((4, 3), 7.0)}, decay=0.5)  # new: 7 / 7 = 1; 0.5 · (2, .5) + 1
    assert ewc.importance["w_out"][:, 0].tolist() == pytest.approx([2.0] * 4)
    assert ewc.importance["w_out"][:, 2].tolist() == pytest.approx([1.25] * 4)
    raw = make(OnlineEWC, net, trainable=("w_out",), importance_norm="none")
    raw.consolidate({"w_out": torch.full((4, 3), 1e-3)})
    assert raw.importance["w_out"].flatten().tolist() == pytest.approx([1e-3] * 12)  # the paper's form


def test_ewc_s_fisher_has_mean_one_on_every_layer():
    net = tiny_net()
    x, y = dense_inputs(6), torch.tensor([0, 1, 2, 0, 1, 2])
    ewc = make(OnlineEWC, net, trainable=("w2", "v2", "w3", "v3", "w_out"), fisher_samples=6)
    ewc.ctx.task_batches[0] = [Batch(x, y)]
    ewc.end_task(0)
    assert all(w.mean().item() == pytest.approx(1.0, rel=1e-5) for w in ewc.importance.values())


def test_single_samples_keep_the_batch_s_steps_and_threshold():
    batch = Batch(torch.zeros(10, 3, 4), torch.tensor([0, 1, 2]), from_depth=2, time_major=True, time_factor=3,
                  threshold=0.5)
    assert [(s.x.shape, s.time_factor, s.threshold) for s in single_samples(batch)] == [((10, 1, 4), 3, 0.5)] * 3


# ---------------------------------------------------------------------------------------------- (3) LwF

OLD = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)


def test_a_shift_common_to_every_old_logit_costs_nothing_under_kl_and_its_square_under_mse():
    shifted = OLD - 1.5  # every old logit lowered together: the softmax does not see it
    assert distillation_loss(OLD, shifted, 2.0).item() == pytest.approx(0.0, abs=1e-12)
    assert logit_matching_loss(OLD, shifted).item() == pytest.approx(0.5 * 1.5 ** 2)  # 1.125


def test_mse_distillation_by_hand():
    new = OLD + torch.tensor([[1.0, -1.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    # ½ · mean of the squared differences (1 + 1 + 9 + 0 + 0 + 0) / 6 = 11/12
    assert logit_matching_loss(OLD, new).item() == pytest.approx(11 / 12)


@pytest.mark.parametrize("kind, expected", [("kl", 0.0), ("mse", 0.75 * 0.5 * 2.0 ** 2)])
def test_lwf_strategy_uses_its_loss_over_the_old_classes(kind, expected):
    net = tiny_net()
    scenario = Scenario("class_incremental", [Task("0-1", *ONE), Task("2", *ONE, (2,))])
    lwf = make(LearningWithoutForgetting, net, scenario, lwf_alpha=0.75, lwf_loss=kind)
    batch = Batch(dense_inputs(3), torch.tensor([0, 1, 0]))
    lwf.end_task(0)
    logits = logits_of(net, batch).detach() + torch.tensor([2.0, 2.0, -9.0])  # old classes up by 2; class 2 free
    assert lwf.extra_loss(batch, logits).item() == pytest.approx(expected, abs=1e-5)  # α · ½ · 2² = 1.5 (mse)


def test_warm_up_trains_only_the_new_columns_then_everything():
    net = tiny_net()
    scenario = Scenario("class_incremental", [Task("0-1", *ONE), Task("2", *ONE, (2,))])
    lwf = make(LearningWithoutForgetting, net, scenario, lwf_warmup_epochs=2)
    new = [Batch(dense_inputs(4, seed=s), torch.tensor([2, 2, 2, 2])) for s in (2, 3)]
    lwf.end_task(0)
    trained = lwf.trained_parameters()
    for n, p in net.named_parameters():
        p.requires_grad_(n in trained)
    opt = torch.optim.Adamax(list(trained.values()), lr=1e-2)
    lwf.start_task(1)
    start = {n: p.detach().clone() for n, p in trained.items()}
    for epoch in (1, 2):
        train_epoch(net, opt, lwf.epoch_batches(new), None, lwf.extra_loss, lwf.edit_gradients, lwf.after_step)
        assert lwf.warming_up
        moved = {n: (p.detach() - start[n]).abs() for n, p in trained.items()}
        assert moved["w_out"][:, 2].any()  # the new head learns (the rows of the layer-3 units that spike)...
        assert not moved["w_out"][:, :2].any() and not any(moved[n].any() for n in ("w3", "v3"))  # ...alone
    train_epoch(net, opt, lwf.epoch_batches(new), None, lwf.extra_loss, lwf.edit_gradients, lwf.after_step)
    assert not lwf.warming_up and lwf.epoch == 3
    assert all((p.detach() - start[n]).abs().sum() > 0 for n, p in trained.items())  # epoch 3: every weight


def test_without_new_classes_there_is_no_warm_up_and_the_log_says_so_once():
    net, lines = tiny_net(), []
    lwf = make(LearningWithoutForgetting, net, SPEAKERS, log=lines.append, lwf_warmup_epochs=3)
    lwf.end_task(0)
    lwf.start_task(1)
    lwf.epoch_batches([])
    assert not lwf.warming_up
    batch = Batch(dense_inputs(2), torch.tensor([0, 1]))
    nll_loss(logits_of(net, batch), batch.y).backward()
    grads = {n: p.grad.clone() for n, p in lwf.trained_parameters().items()}
    lwf.edit_gradients()
    assert all(torch.equal(p.grad, grads[n]) for n, p in lwf.trained_parameters().items())
    lwf.start_task(1)
    assert len(lines) == 1 and "no new head" in lines[0] and "--lwf-warmup-epochs" in lines[0]
