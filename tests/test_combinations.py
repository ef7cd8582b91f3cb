"""A regularizer on top of latent replay (--regularizer), and sweeps over a strategy's own flags (--set)."""

import argparse

import numpy as np
import pytest
import torch

import sccl.core.defaults
from sccl.cl.context import RunContext
from sccl.cl.engine import run
from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import Scenario, Task
from sccl.cl.strategies.base import tuned_flags
from sccl.cl.strategies.ewc import OnlineEWC
from sccl.cl.strategies.latent_replay import LatentReplay, hosted
from sccl.cli.cl_sweep import expand, parse_sets
from sccl.cli.continual import build_parser, config_from_args
from sccl.core.defaults import METHODS
from sccl.core.errors import ConfigError
from sccl.core.results import read_json
from sccl.learn.pretraining import PretrainConfig, pretrain
from sccl.net.model import RecurrentSNN


# parameters trained above depth 2: w3 (100 x 50), v3 (50 x 50), w_out (50 x 20)
TRAINED_ABOVE_2 = 100 * 50 + 50 * 50 + 50 * 20


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedded_tiny):
    root, ds = tmp_path_factory.mktemp("combinations"), embedded_tiny
    pretrain(PretrainConfig("class_incremental", 7, epochs=2, batch_size=16, quiet=True), ds, root / "runs")
    return ds, root / "runs"


def config(argv):
    args = build_parser("latent_replay", "class_incremental").parse_args(["--removed-class", "7"] + argv)
    return config_from_args(args, "latent_replay", "class_incremental")


def test_only_the_hosted_strategy_s_flags_enter_the_settings():
    plain = config([])
    assert plain.settings()["options"] == {} and plain.label() == "latent_replay-class7-d2-n2-seed0"
    with_ewc = config(["--regularizer", "ewc", "--ewc-lambda", "5"])
    assert with_ewc.settings()["options"] == {"regularizer": "ewc", "ewc_lambda": 5.0, "ewc_gamma": 1.0, "fisher_samples": 200,
                                "importance_norm": "mean"}
    assert with_ewc.label() == "latent_replay-class7-d2-n2-ewc-seed0"


def test_a_bad_regularizer_setting_is_refused_before_the_run(world, tmp_path):
    ds, runs = world
    cfg = RunConfig.of("class_incremental", "latent_replay", 7, latent_depth=2, replay_batches=1, batch_size=8,
                    epochs=1, quiet=True, options={"regularizer": "ewc", "ewc_lambda": -1.0})
    with pytest.raises(ConfigError, match="ewc-lambda"):
        run(cfg, ds, runs)
    cfg.options = {**cfg.options, "regularizer": "naive"}
    with pytest.raises(ConfigError, match="--regularizer must be none or one of ewc, si, lwf, projection"):
        run(cfg, ds, runs)


@pytest.mark.parametrize("regularizer, extra_bytes", [
    ("ewc", 2 * 4 * TRAINED_ABOVE_2),  # Fisher + anchor, float32
    ("lwf", 4 * TRAINED_ABOVE_2),  # a copy of the trained parameters
])
def test_the_hosted_memory_is_added_to_the_replay_s_and_its_hooks_act(world, regularizer, extra_bytes):
    ds, runs = world
    base = dict(scenario="class_incremental", strategy="latent_replay", held_out=7, latent_depth=2,
                replay_batches=1, batch_size=8, epochs=2, lr=1e-3, quiet=True)
    plain = read_json(run(RunConfig.of(**base), ds, runs) / "summary.json")
    hosted = read_json(run(RunConfig.of(**base, options={"regularizer": regularizer}), ds, runs) / "summary.json")
    assert hosted["memory_bytes_stored"] == plain["memory_bytes_stored"] + extra_bytes
    assert hosted["memory"].startswith(plain["memory"]) and f"; {regularizer}: " in hosted["memory"]
    assert hosted["config"]["options"]["regularizer"] == regularizer
    # the first epoch's rows are the same model, the penalty then changes the training
    assert hosted["accuracy_matrix"][0] == plain["accuracy_matrix"][0]
    assert hosted["accuracy_matrix"][1] != plain["accuracy_matrix"][1] or hosted["final"] != plain["final"]


def test_projection_on_top_of_latent_replay_keeps_bases_of_the_layers_above_the_cut(world):
    ds, runs = world
    cfg = RunConfig.of("class_incremental", "latent_replay", 7, latent_depth=2, replay_batches=1, batch_size=8, epochs=1,
                    quiet=True, options={"regularizer": "projection", "energy": 0.9})
    summary = read_json(run(cfg, ds, runs) / "summary.json")
    assert "; projection: " in summary["memory"]
    assert set(summary["frozen_parameters"]) == {"w1", "v1", "w2", "v2"}
    replay_only = read_json(run(RunConfig.of("class_incremental", "latent_replay", 7, latent_depth=2, replay_batches=1,
                                          batch_size=8, epochs=1, quiet=True), ds, runs) / "summary.json")
    bases = summary["memory_bytes_stored"] - replay_only["memory_bytes_stored"]
    assert 0 < bases <= 4 * (100 * 100 + 50 * 50 + 50 * 50)  # at most full rank of w3, v3 and w_out's inputs


def test_set_sweeps_a_strategy_s_own_flag_over_values():
    assert parse_sets(["ewc.ewc-lambda=1,10", "latent_replay.regularizer=none,ewc"]) == {
        "ewc": [("--ewc-lambda", ["1", "10"])], "latent_replay": [("--regularizer", ["none", "ewc"])]}
    args = argparse.Namespace(strategies="ewc,naive", depths="2", latent_batches="1", rehearsal_batches="1",
                              subsample=None, compression="or", ids="7", seeds="0", epochs=1, batch_size=8, lr=None,
                              sets=["ewc.ewc-lambda=1,10"])
    runs = expand(args, "class_incremental")
    assert [(s, a[a.index("--ewc-lambda") + 1] if "--ewc-lambda" in a else None) for s, a in runs] == [
        ("ewc", "1"), ("ewc", "10"), ("naive", None)]


def test_a_sweep_passes_eval_every_to_its_runs_and_refuses_zero_before_any():
    args = argparse.Namespace(strategies="naive", depths="2", latent_batches="1", rehearsal_batches="1",
                              subsample=None, compression="or", ids="7", seeds="0", epochs=1, batch_size=8, lr=None,
                              sets=[], eval_every=5)
    ((_, argv),) = expand(args, "class_incremental")
    assert argv[argv.index("--eval-every") + 1] == "5"
    args.eval_every = 1  # the default adds nothing: earlier sweeps' commands stay as they were
    assert "--eval-every" not in expand(args, "class_incremental")[0][1]
    args.eval_every = 0
    with pytest.raises(ConfigError, match="--eval-every must be a positive whole number of epochs, got 0"):
        expand(args, "class_incremental")


@pytest.mark.parametrize("text, message", [
    ("ewc-lambda=1", "takes STRATEGY.FLAG=V1,V2"),
    ("nope.x=1", "unknown strategy 'nope'"),
    ("ewc.si-c=1", "ewc has no flag --si-c"),
])
def test_bad_set_is_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_sets([text])


# ---------------------------------------------------------------------------------------------- tuned defaults


CLASS_7 = Scenario("class_incremental", [Task("0-6", np.arange(1), np.arange(1)),
                                         Task("7", np.arange(1), np.arange(1), (7,))])


@pytest.fixture
def tuned_table(monkeypatch):
    """A tuning result in place of sccl/core/tuned_defaults.json (the hosted classes are rebuilt around it)."""
    table = {}
    monkeypatch.setattr(sccl.core.defaults, "_TUNED", table)
    hosted.cache_clear()
    yield table
    hosted.cache_clear()


def test_standalone_defaults_are_the_tuned_ones_else_the_untuned(tuned_table):
    tuned_table["ewc"] = {"ewc_lambda": 3.0, "importance_norm": "none"}
    flags = {f.dest: f.default for f in tuned_flags("ewc", OnlineEWC.untuned_flags)}
    # numeric defaults only: the choice keeps its own; what the table lacks keeps the untuned value
    assert flags == {"ewc_lambda": 3.0, "ewc_gamma": 1.0, "fisher_samples": 200, "importance_norm": "mean"}


def test_a_hosted_strategy_has_its_own_defaults_and_the_shared_flags_are_untouched(tuned_table):
    tuned_table.update({"ewc": {"ewc_lambda": 3.0}, "latent_replay+ewc": {"ewc_lambda": 7.0},
                        "latent_replay+lwf": {"lwf_warmup_epochs": 0}})
    assert {f.dest: f.default for f in hosted("latent_replay", "ewc").flags}["ewc_lambda"] == 7.0
    assert {f.dest: f.default for f in hosted("latent_replay", "si").flags}["si_c"] == METHODS["si_c"]
    assert OnlineEWC.flags[0].default == METHODS["ewc_lambda"]  # the standalone class is not changed
    cfg = config(["--regularizer", "ewc"])  # the command line's default is the hosted one
    assert cfg.options["ewc_lambda"] == 7.0 and config(["--regularizer", "lwf"]).options["lwf_warmup_epochs"] == 0
    ctx = RunContext(None, None, torch.device("cpu"), CLASS_7, lambda line: None)
    host = LatentReplay(RunConfig.of("class_incremental", "latent_replay", 7, options={"regularizer": "ewc"}), ctx)
    assert host.regularizer.option("ewc_lambda") == 7.0 and host.regularizer.name == "ewc"
    del tuned_table["latent_replay+ewc"]  # a value tuned for EWC alone does not carry over to the combination
    hosted.cache_clear()
    assert {f.dest: f.default for f in hosted("latent_replay", "ewc").flags}["ewc_lambda"] == METHODS["ewc_lambda"]


def test_a_hosted_lwf_counts_the_epochs_for_its_warm_up():
    net = RecurrentSNN(nb_inputs=20, hidden_sizes=(6, 5, 4), nb_outputs=8)
    ctx = RunContext(net, None, torch.device("cpu"), CLASS_7, lambda line: None, 2, net.trainable_for_depth(2))
    host = LatentReplay(RunConfig.of("class_incremental", "latent_replay", 7, replay_batches=0,
                                  options={"regularizer": "lwf", "lwf_warmup_epochs": 1}), ctx)
    host.start_task(1)
    assert host.epoch_batches(["new"]) == ["new"] and host.regularizer.warming_up
    host.epoch_batches(["new"])
    assert host.regularizer.epoch == 2 and not host.regularizer.warming_up
