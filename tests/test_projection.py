"""Gradient projection (GPM) and its Hebbian form (HLOP): the basis maths on spectra checkable by hand, the key
property (old inputs' spike trains and logits unchanged after projected Adamax steps on new data, at any cut), the
Oja rule's convergence, the memory count, the settings' errors and one engine run of each variant."""

import math

import numpy as np
import pytest
import torch

from sccl.cl.context import RunContext
from sccl.cl.engine import run
from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import Scenario, Task
from sccl.cl.strategies.naive import Naive
from sccl.cl.strategies.projection import Projection, projected_weights
from sccl.core.errors import ConfigError
from sccl.core.results import read_json
from sccl.learn.pretraining import PretrainConfig, pretrain
from sccl.learn.subspace import (OjaSubspace, energy_rank, extend_basis, largest_principal_angle, presynaptic_rows,
                                 project_out, projection_groups)
from sccl.learn.training import Batch, train_epoch
from sccl.net.model import RecurrentSNN


N = 8


def directions(n=N, seed=0):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def activity(energies: dict[int, float], rows=40, seed=1):
    """An activity matrix R (rows x N) whose Gram R^T R has exactly ``energies[j]`` along direction j."""
    z, _ = torch.linalg.qr(torch.randn(rows, N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    scale = torch.zeros(N, dtype=torch.float64)
    for j, e in energies.items():
        scale[j] = math.sqrt(e)
    return (z * scale) @ directions().t()


def spans(basis, cols):
    return largest_principal_angle(basis, directions()[:, cols]) < 1e-6


# ---------------------------------------------------------------------------------------------- GPM basis


@pytest.mark.parametrize("threshold, rank", [(0.75, 2), (0.9, 4), (0.95, 5), (1.0, 6), (0.5, 1), (0.3, 1)])
def test_basis_keeps_the_rank_the_energy_threshold_implies(threshold, rank):
    # energies 50 25 12.5 6.25 3.125 3.125 (total 100): cumulative 50 75 87.5 93.75 96.875 100; two directions empty
    r = activity({0: 50, 1: 25, 2: 12.5, 3: 6.25, 4: 3.125, 5: 3.125})
    basis, added = extend_basis(None, r.t() @ r, threshold)
    assert added == rank and basis.shape == (N, rank)
    assert torch.allclose(basis.t() @ basis, torch.eye(rank, dtype=torch.float64), atol=1e-12)
    if rank == 5:  # u4 and u5 tie: the fifth column is some direction of their plane
        assert spans(basis[:, :4], [0, 1, 2, 3])
        outside = project_out(basis, directions()[:, :6])
        assert float(outside.abs().max()) < 1e-10
    else:
        assert spans(basis, list(range(rank)))


@pytest.mark.parametrize("threshold, added, expected", [(0.9, 2, [0, 1, 4, 5]), (0.95, 3, [0, 1, 2, 4, 5]),
                                                        (0.4, 0, [0, 1]), (1.0, 3, [0, 1, 2, 4, 5])])
def test_extension_by_the_residual_adds_exactly_the_missing_components(threshold, added, expected):
    old, _ = extend_basis(None, (lambda r: r.t() @ r)(activity({0: 60, 1: 40})), 1.0)  # span{u0, u1}
    # the new task: 40 along u0 (already explained: 40 %), then 30 u4, 20 u5, 10 u2 in the residual
    r = activity({0: 40, 4: 30, 5: 20, 2: 10}, seed=2)
    basis, n_added = extend_basis(old.float(), r.t() @ r, threshold)
    assert n_added == added and basis.shape[1] == len(expected)
    assert spans(basis, expected)
    assert torch.allclose(basis.t() @ basis, torch.eye(len(expected), dtype=torch.float64), atol=1e-10)


def test_energy_rank_caps_at_the_numerical_rank_and_counts_what_is_explained():
    e = torch.tensor([4.0, 3.0, 2.0, 1.0, 1e-14], dtype=torch.float64)
    assert energy_rank(e, 10.0, 1.0) == 4  # the 1e-14 direction is noise, not a fifth component
    assert energy_rank(e, 10.0, 0.7) == 2 and energy_rank(e, 20.0, 0.7, explained=10.0) == 1
    assert energy_rank(e, 10.0, 0.5, explained=6.0) == 0 and energy_rank(e * 0, 0.0, 0.9) == 0
    g = torch.randn(N, 3, dtype=torch.float64)
    basis = directions()[:, :2]
    assert torch.allclose(basis.t() @ project_out(g, basis), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)


# ---------------------------------------------------------------------------------------------- the key property


def small_net():
    return RecurrentSNN(nb_inputs=20, hidden_sizes=(24, 16, 12), nb_outputs=4, weight_scale=2.0,
                        generator=torch.Generator().manual_seed(0))


def spikes(n, channels, seed, steps=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, steps, 20)
    x[:, :, channels] = (torch.rand(n, steps, len(channels), generator=g) < 0.3).float() * 2
    return x, torch.randint(0, 4, (n,), generator=g)


def train_after_task0(strategy_cls, depth, options, optimizer="adamax"):
    """Consolidate 2 old samples (only inputs 0-9 active), train 5 epochs on 8 new ones (all 20 inputs); returns
    the old samples' records before and after, and how far each weight moved."""
    net = small_net()
    (xo, yo), (xn, yn) = spikes(2, list(range(10)), 1), spikes(8, list(range(20)), 2)
    trainable = net.trainable_for_depth(depth)

    def batch(x, y):
        if depth is None:
            return Batch(x, y)
        return Batch(net.activity_time_major(x, depth), y, from_depth=depth, time_major=True)

    old, new = [batch(xo, yo)], [batch(xn[:4], yn[:4]), batch(xn[4:], yn[4:])]
    ctx = RunContext(net, None, torch.device("cpu"), None, lambda line: None, depth, trainable, 4, {0: old, 1: new})
    cfg = RunConfig.of(scenario="sample_incremental", strategy=strategy_cls.name, options=options)
    strategy = strategy_cls(cfg, ctx)
    strategy.end_task(0)
    before, start = net.record(xo), {n: p.detach().clone() for n, p in net.named_parameters()}
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable)
    params = [p for n, p in net.named_parameters() if n in trainable]
    opt = torch.optim.Adamax(params, lr=1e-2) if optimizer == "adamax" else torch.optim.SGD(params, lr=0.5)
    strategy.start_task(1)
    after_step = strategy.after_step if optimizer == "adamax" else None  # sgd: the projected gradient alone
    for _ in range(5):
        train_epoch(net, opt, new, None, strategy.extra_loss, strategy.edit_gradients, after_step)
    moved = {n: float((p.detach() - start[n]).abs().max()) for n, p in net.named_parameters()}
    return before, net.record(xo), moved, strategy


def unchanged(before, after):
    return (all(torch.equal(before[f"spikes{k}"], after[f"spikes{k}"]) for k in (1, 2, 3))
            and torch.allclose(before["trace"], after["trace"], atol=1e-5))


@pytest.mark.parametrize("depth", [None, 1])
@pytest.mark.parametrize("basis", ["separate", "joint"])
def test_projected_adamax_steps_leave_the_old_spike_trains_and_logits_unchanged(depth, basis):
    before, after, moved, strategy = train_after_task0(Projection, depth, {"energy": 1.0, "basis": basis})
    trained = strategy.ctx.trainable
    assert all(moved[n] > 1e-3 for n in trained)  # every trained weight learnt something...
    assert all(moved[n] == 0 for n in moved if n not in trained)
    assert unchanged(before, after)  # ...yet the old inputs' spikes (every layer) and readout are the same
    assert 0 < min(strategy.ranks) and all(r < n for r, n in zip(strategy.ranks, strategy.widths))


@pytest.mark.parametrize("depth", [None, 1])
def test_without_projection_the_old_outputs_change(depth):
    before, after, _, _ = train_after_task0(Naive, depth, {})
    assert not unchanged(before, after)


def test_adamax_breaks_a_projected_gradient_only_the_projected_update_keeps_it(monkeypatch):
    # the projected gradient alone: Adamax's elementwise m / u leaves the complement, the old outputs drift
    monkeypatch.setattr(Projection, "after_step", lambda self: None)
    before, after, _, _ = train_after_task0(Projection, None, {"energy": 1.0})
    assert not unchanged(before, after)
    monkeypatch.undo()
    before, after, _, _ = train_after_task0(Projection, None, {"energy": 1.0}, optimizer="sgd")  # GPM's setting
    assert unchanged(before, after)


def test_joint_basis_is_less_restrictive_than_separate_ones():
    *_, separate = train_after_task0(Projection, None, {"energy": 1.0, "basis": "separate"})
    *_, joint = train_after_task0(Projection, None, {"energy": 1.0, "basis": "joint"})
    assert [g for g in joint.groups] == [("w1", "v1"), ("w2", "v2"), ("w3", "v3"), ("w_out",)]
    by_layer = [separate.ranks[0] + separate.ranks[1], separate.ranks[2] + separate.ranks[3],
                separate.ranks[4] + separate.ranks[5], separate.ranks[6]]
    assert all(j <= s for j, s in zip(joint.ranks, by_layer))  # span of [x; s] <= span x (+) span s


def test_presynaptic_rows_at_the_depth0_cut_are_the_previous_spikes_of_layer_1():
    net = small_net()
    x, y = spikes(3, list(range(20)), 3)
    groups = projection_groups(net.trainable_for_depth(0), "separate")
    assert groups[0] == ("v1",)
    rows = presynaptic_rows(net, Batch(net.activity_time_major(x, 0), y, from_depth=0, time_major=True), groups)
    s1 = net.record(x)["spikes1"]
    assert torch.equal(rows[0].view(12, 3, 24)[1:], s1[:-1]) and not rows[0].view(12, 3, 24)[0].any()
    raw = presynaptic_rows(net, Batch(x, y), projection_groups(("w1", "w_out"), "separate"))
    assert torch.equal(raw[0], x.transpose(0, 1).reshape(-1, 20))
    assert torch.equal(raw[1], net.record(x)["spikes3"].reshape(-1, 12))


# ---------------------------------------------------------------------------------------------- the readout

ONE = (np.arange(1), np.arange(1))
CLASS_RUN = Scenario("class_incremental", [Task("0-2", *ONE), Task("3", *ONE, (3,))])
SPEAKER_RUN = Scenario("sample_incremental", [Task("old", *ONE), Task("new", *ONE)])


def test_the_readout_is_projected_only_where_no_task_brings_a_class():
    every = small_net().trainable_for_depth(None)
    assert projected_weights(every, SPEAKER_RUN) == every
    assert projected_weights(every, CLASS_RUN) == tuple(n for n in every if n != "w_out")
    assert projected_weights(("w_out",), CLASS_RUN) == ()  # depth 3 in a class run: nothing to project


def learn_the_same_inputs_as_a_new_class(scenario, subspace):
    """Consolidate 4 samples, then train 5 epochs on the very same inputs labelled 3 (the new class); returns the
    strategy and class 3's mean logit on them before and after."""
    net = small_net()
    x, _ = spikes(4, list(range(20)), 5)
    y = torch.full((4,), 3)
    trainable = net.trainable_for_depth(1)
    batch = Batch(net.activity_time_major(x, 1), y, from_depth=1, time_major=True)
    ctx = RunContext(net, None, torch.device("cpu"), scenario, lambda line: None, 1, trainable, 4, {0: [batch]})
    options = {"energy": 1.0, "subspace": subspace, "hebbian_rows": 24, "hebbian_passes": 20}
    strategy = Projection(RunConfig.of(scenario=scenario.name, strategy="projection", options=options), ctx)
    strategy.end_task(0)
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable)
    opt = torch.optim.Adamax([p for n, p in net.named_parameters() if n in trainable], lr=1e-2)
    before = float(net(x)[:, 3].mean().detach())
    strategy.start_task(1)
    for _ in range(5):
        train_epoch(net, opt, [batch], None, strategy.extra_loss, strategy.edit_gradients, strategy.after_step)
    return strategy, before, float(net(x)[:, 3].mean().detach())


def test_in_a_class_run_the_new_class_column_learns_what_the_old_span_holds():
    strategy, before, after = learn_the_same_inputs_as_a_new_class(CLASS_RUN, "svd")
    assert all("w_out" not in g for g in strategy.groups) and len(strategy.bases) == 4  # w2, v2, w3, v3
    widths = {"w2": 24, "v2": 16, "w3": 16, "v3": 12}
    assert strategy.memory_bytes_stored == 4 * sum(widths[g[0]] * r for g, r in zip(strategy.groups, strategy.ranks))
    assert "w_out" not in strategy.describe_memory()
    assert after > before + 0.01  # class 3's logit rises on its samples
    # in a speaker run the readout is projected: the same inputs lie wholly in the old span, nothing can change
    strategy, before, after = learn_the_same_inputs_as_a_new_class(SPEAKER_RUN, "svd")
    assert strategy.groups[-1] == ("w_out",) and after == pytest.approx(before, abs=1e-5)


def test_hlop_leaves_the_readout_free_in_a_class_run_too():
    strategy, before, after = learn_the_same_inputs_as_a_new_class(CLASS_RUN, "hebbian")
    assert len(strategy.learners) == 4 and after > before + 0.01


# ---------------------------------------------------------------------------------------------- HLOP


def test_oja_rows_converge_to_the_principal_subspace_and_old_rows_stay_frozen():
    x = activity({0: 16, 1: 9, 2: 4, 3: 2.25, 4: 0.04, 5: 0.04, 6: 0.04, 7: 0.04}, rows=200).float()
    learner = OjaSubspace(N)
    learner.new_rows(2, torch.Generator().manual_seed(0))
    for _ in range(400):
        learner.learn(x, 0.05, 3)
    assert largest_principal_angle(learner.rows.t().double(), directions()[:, :2]) < 1e-3
    learner.merge()
    frozen = learner.frozen.clone()
    assert learner.rank == 2 and torch.allclose(frozen @ frozen.t(), torch.eye(2), atol=1e-6)
    learner.new_rows(2, torch.Generator().manual_seed(1))
    for _ in range(400):
        learner.learn(x, 0.05, 3)
    assert torch.equal(learner.frozen, frozen)  # the old rows never move
    assert largest_principal_angle(learner.rows.t().double(), directions()[:, 2:4]) < 1e-3  # the next two
    learner.merge()
    assert learner.rank == 4 and largest_principal_angle(learner.basis().double(), directions()[:, :4]) < 1e-3


def test_hebbian_strategy_learns_rows_at_task0_and_during_the_task():
    opts = {"subspace": "hebbian", "hebbian_rows": 3, "hebbian_passes": 2}
    _, _, moved, strategy = train_after_task0(Projection, 1, opts)
    assert strategy.ranks == [3, 3, 3, 3, 3] and all(v > 0 for n, v in moved.items() if n in strategy.ctx.trainable)
    frozen = [b.clone() for b in strategy.bases]
    assert all(lr.updates == 10 for lr in strategy.learners)  # one per step: 5 epochs x 2 batches
    strategy.end_task(1)
    assert strategy.ranks == [6, 6, 6, 6, 6]
    for old, new in zip(frozen, strategy.bases):
        assert largest_principal_angle(old.double(), new[:, :3].double()) < 1e-5  # the old rows are kept
        assert torch.allclose(new.t() @ new, torch.eye(6), atol=1e-5)


# ---------------------------------------------------------------------------------------------- memory, settings


def test_memory_is_the_float32_bases():
    *_, strategy = train_after_task0(Projection, None, {"energy": 1.0})
    widths = {"w1": 20, "v1": 24, "w2": 24, "v2": 16, "w3": 16, "v3": 12, "w_out": 12}
    expected = 4 * sum(widths[g[0]] * b.shape[1] for g, b in zip(strategy.groups, strategy.bases))
    assert strategy.ranks[0] == 10  # the old inputs use 10 of the 20 channels
    assert strategy.memory_bytes_stored == expected and strategy.memory_bits_analytic == 8 * expected
    assert all(b.dtype == torch.float32 for b in strategy.bases)
    assert "w1 20x10" in strategy.describe_memory()


@pytest.mark.parametrize("options, message", [
    ({"energy": 0.0}, "--energy must be in (0, 1], got 0.0"), ({"energy": 1.5}, "--energy must be in (0, 1]"),
    ({"subspace": "pca"}, "--subspace must be one of svd, hebbian, got 'pca'"),
    ({"basis": "both"}, "--basis must be one of separate, joint, got 'both'"),
    ({"hebbian_rows": 0}, "--hebbian-rows must be >= 1, got 0"),
    ({"hebbian_iterations": 0}, "--hebbian-iterations must be >= 1"),
    ({"hebbian_passes": 0}, "--hebbian-passes must be >= 1"),
    ({"hebbian_lr": 0.0}, "--hebbian-lr must be a positive number"),
    ({"hebbian_lr": float("nan")}, "--hebbian-lr must be a positive number"),
])
def test_bad_settings_are_one_line_errors(options, message):
    cfg = RunConfig.of(scenario="sample_incremental", strategy="projection", held_out=3, options=options)
    with pytest.raises(ConfigError) as err:
        Projection.validate(cfg, 100)
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, embedded_tiny):
    root, ds = tmp_path_factory.mktemp("projection"), embedded_tiny
    pretrain(PretrainConfig("sample_incremental", 3, epochs=1, batch_size=16, quiet=True), ds, root / "runs")
    return ds, root


@pytest.mark.parametrize("options", [{"subspace": "svd"}, {"subspace": "hebbian", "hebbian_passes": 1},
                                     {"subspace": "svd", "basis": "joint"}])
def test_each_variant_runs_through_the_engine(tiny, tmp_path, options):
    ds, root = tiny
    cfg = RunConfig.of(scenario="sample_incremental", strategy="projection", held_out=3, epochs=1, batch_size=16,
                    quiet=True, options=options, pretrained=str(root / "runs/pretrain/paper/speaker3_seed0"))
    s = read_json(run(cfg, ds, tmp_path) / "summary.json")
    assert s["memory_bytes_stored"] > 0 and s["memory_bits_analytic"] == 8 * s["memory_bytes_stored"]
    assert s["memory"].startswith("Hebbian rows" if options["subspace"] == "hebbian" else "GPM bases")
