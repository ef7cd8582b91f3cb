"""The continual-learning engine on the tiny embedded dataset: every strategy in every scenario, R, identity."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sccl.cl import engine, metrics
from sccl.cl.context import RunContext, cached_batches
from sccl.cl.engine import Evaluator, fit_task, run
from sccl.cl.runs import RunConfig, run_folder
from sccl.cl.scenarios import from_split
from sccl.cl.strategies import REGISTRY, get_strategy
from sccl.cl.strategies.base import Flag
from sccl.cli.continual import build_parser, config_from_args, main_any
from sccl.core.defaults import SCENARIO
from sccl.core.entry import run_cli
from sccl.core.results import read_csv, read_json
from sccl.data.merge import ensure_merged
from sccl.data.offline import generate_dataset
from sccl.data.splits import make_batches
from sccl.learn.pretraining import PretrainConfig, load_pretrained, pretrain
from sccl.learn.quantize import fake_quantize
from sccl.learn.training import load_dataset
from sccl.net.footprint import activation_bytes
from sccl.report.records import gather


ROOT = Path(__file__).resolve().parents[1]
BS = {"sample_incremental": 16, "class_incremental": 8, "progressive": 4, "speakers": 8}
HELD = {"sample_incremental": 3, "class_incremental": 7, "progressive": None, "speakers": None}
PRE = {"sample_incremental": "speaker3", "class_incremental": "class7", "progressive": "classes0-9",
       "speakers": "speakers0-5"}
STRATEGY_SETTINGS = {"naive": {}, "rehearsal": {"replay_batches": 1, "stored_steps": 10, "compression": "sum"},
                     "latent_replay": {"latent_depth": 2, "replay_batches": 1, "stored_steps": 50},
                     "latent_replay_fewer_steps": {"latent_depth": 2, "replay_batches": 1, "stored_steps": 10}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny embedded dataset + a pretrained model per scenario (2 epochs each)."""
    root = tmp_path_factory.mktemp("engine")
    generate_dataset(root / "data", size="tiny", seed=0)
    ds = load_dataset(ensure_merged(root / "data", quiet=True))
    for scenario, held in HELD.items():
        pretrain(PretrainConfig(scenario, held, epochs=2, batch_size=16, quiet=True), ds, root / "runs")
    return ds, root


def pre_dir(root, scenario):
    return root / "runs" / "pretrain" / "paper" / f"{PRE[scenario]}_seed0"


def cfg(scenario, strategy, **kw):
    base = dict(scenario=scenario, strategy=strategy, held_out=HELD[scenario], epochs=1, batch_size=BS[scenario],
                quiet=True, **STRATEGY_SETTINGS.get(strategy, {}))
    base.update(kw)
    return RunConfig.of(**base)


@pytest.mark.parametrize("scenario", list(HELD))
@pytest.mark.parametrize("strategy", list(REGISTRY))
def test_every_strategy_runs_in_every_scenario_and_writes_r(world, tmp_path, scenario, strategy):
    ds, root = world
    c = cfg(scenario, strategy, pretrained=str(pre_dir(root, scenario)))
    keeps = REGISTRY[strategy].keeps(c)  # what the strategy says it keeps: "replay" and / or "state"
    folder = run(c, ds, tmp_path)
    s = read_json(folder / "summary.json")
    n_tasks = len(s["tasks"])
    assert n_tasks == {"sample_incremental": 2, "class_incremental": 2, "progressive": 11, "speakers": 7}[scenario]
    R = np.array(s["accuracy_matrix"])
    assert R.shape == (n_tasks, n_tasks) and ((0 <= R) & (R <= 1)).all()
    matrix_rows = read_csv(folder / "accuracy_matrix.csv")
    assert [float(r[f"task_{n_tasks - 1}"]) for r in matrix_rows] == pytest.approx(R[:, -1].tolist())
    counts = [t["test"] for t in s["tasks"]]
    # FWT's random-init baseline: measured where no task brings new classes, and only there
    b = s["random_init_accuracy"]
    assert (b is None) == (scenario in ("class_incremental", "progressive"))
    assert b is None or (len(b) == n_tasks and s["metrics"]["fwt"] is not None)
    expected = metrics.run_metrics(R, counts, b)
    for k, v in expected.items():
        assert s["metrics"][k] == pytest.approx(v, abs=1e-5, nan_ok=True) or (s["metrics"][k] is None and v != v)
    rows = read_csv(folder / "epochs.csv")
    assert [(int(r["task"]), int(r["epoch"])) for r in rows] == [(i, e) for i in range(1, n_tasks) for e in (0, 1)]
    last = rows[-1]
    assert float(last["old_acc"]) == pytest.approx(s["metrics"]["old_after"], abs=1e-6)
    assert float(last["new_acc"]) == pytest.approx(s["metrics"]["new_after"], abs=1e-6)
    # the memory holds what the strategy stores, and the summary says so in bytes
    assert (s["memory_bytes_stored"] > 0) == bool(keeps)
    assert s["memory_bytes_stored"] == int(last["memory_bytes"])
    # a compressed spike memory says what the compression lost (depth 2, S = 50 or 10, OR: some spikes merge)
    # the learning state: trained parameters (float32) and 2 Adamax tensors each, the memory split in two
    state = s["learning_state"]
    params = dict(load_pretrained(pre_dir(root, scenario))[0].named_parameters())
    trained = sum(p.numel() for n, p in params.items() if n not in s["frozen_parameters"])
    assert (state["parameter_bytes"], state["optimizer_bytes"]) == (4 * trained, 8 * trained)
    assert state["replay_memory_bytes"] + state["regularizer_bytes"] == s["memory_bytes_stored"]
    assert (state["regularizer_bytes"] > 0) == ("state" in keeps)
    assert (state["replay_memory_bytes"] > 0) == ("replay" in keeps)
    assert state["total_bytes"] == 12 * trained + s["memory_bytes_stored"]
    # the whole learner: the learning state, the frozen weights, a step's activations and its batch
    foot, depth = s["footprint"], REGISTRY[strategy].cut_depth(c)
    frozen = sum(p.numel() for n, p in params.items() if n in s["frozen_parameters"])
    assert foot["learning_state_bytes"] == state["total_bytes"] and foot["frozen_parameter_bytes"] == 4 * frozen
    assert foot["activation_bytes"] == activation_bytes((200, 100, 50), 20, depth, BS[scenario], 100)
    assert foot["activation_bytes_batch1"] == activation_bytes((200, 100, 50), 20, depth, 1, 100)
    assert foot["whole_learner_bytes"] == (state["total_bytes"] + 4 * frozen + foot["activation_bytes"]
                                           + foot["batch_bytes"])
    assert foot["whole_learner_bytes_batch1"] < foot["whole_learner_bytes"]
    lost = s["diagnostics"].get("compression")
    columns = REGISTRY[strategy].memory_columns(c, ds.binned.nb_steps)
    assert {k: rows[0][k] for k in columns} == {k: str(v) for k, v in columns.items()}  # as the strategy says
    # spikes OR-ed in windows: what the compression lost is reported (counts are summed: nothing is lost)
    assert (lost is not None) == (columns["compression"] == "or" and REGISTRY[strategy].cut_depth(c) not in (None, 0))
    if lost:
        assert 0 <= lost["lost_fraction"] < 1 and lost["spikes_per_active_window"] >= 1


def test_the_random_init_baseline_is_a_fresh_network_seeded_as_a_pretraining(world):
    from sccl.cl.engine import random_init_accuracy
    from sccl.net.model import RecurrentSNN

    ds, root = world
    net, split, _ = load_pretrained(pre_dir(root, "sample_incremental"))
    scenario = from_split(split)
    state = torch.get_rng_state()
    b = random_init_accuracy(net, ds, scenario, 5, "cpu")
    assert torch.equal(torch.get_rng_state(), state)  # the run's random stream is not touched
    torch.manual_seed(5)  # how pretraining with seed 5 draws its start
    fresh = RecurrentSNN(nb_inputs=net.nb_inputs, nb_outputs=net.nb_outputs)
    evaluate = Evaluator(fresh, ds, scenario, None, "cpu")
    assert b == evaluate.row(evaluate()[0]) and len(b) == 2


def test_fit_task_returns_rows_without_touching_the_disk(world, tmp_path, monkeypatch):
    ds, root = world
    net, split, _ = load_pretrained(pre_dir(root, "sample_incremental"))
    scenario = from_split(split)
    c = cfg("sample_incremental", "latent_replay", replay_batches=1, stored_steps=None)
    strategy = get_strategy("latent_replay")(c, RunContext(net, ds, torch.device("cpu"), scenario, lambda line: None))
    strategy.end_task(0)
    monkeypatch.chdir(tmp_path)
    new = cached_batches(net, ds, make_batches(scenario.tasks[1].train, 16), 2, torch.device("cpu"))
    rows = fit_task(net, strategy, 1, new, 2, 1e-3, net.trainable_for_depth(2), Evaluator(net, ds, scenario, 2, "cpu"))
    assert [r["epoch"] for r in rows] == [0, 1, 2] and all(r["task"] == 1 for r in rows)
    assert rows[0]["loss"] != rows[0]["loss"] and rows[1]["loss"] > 0
    assert rows[-1]["memory_bytes"] == strategy.memory_bytes_stored == 16 * 100 * 100 // 8
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_frozen_parameters_bit_identical_after_training(world, depth):
    ds, root = world
    net, split, _ = load_pretrained(pre_dir(root, "sample_incremental"))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    scenario = from_split(split)
    c = cfg("sample_incremental", "latent_replay", latent_depth=depth, replay_batches=1, stored_steps=20)
    strategy = get_strategy("latent_replay")(c, RunContext(net, ds, torch.device("cpu"), scenario, lambda line: None))
    strategy.end_task(0)
    trainable = net.trainable_for_depth(depth)
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable)
    new = cached_batches(net, ds, make_batches(scenario.tasks[1].train, 16), depth, torch.device("cpu"))
    fit_task(net, strategy, 1, new, 2, 5e-2, trainable, Evaluator(net, ds, scenario, depth, "cpu"))
    changed = {n for n, p in net.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= set(trainable)


def test_progressive_memory_grows_by_one_class_per_step(world, tmp_path):
    ds, root = world
    folder = run(cfg("progressive", "latent_replay", pretrained=str(pre_dir(root, "progressive"))), ds, tmp_path)
    s = read_json(folder / "summary.json")
    per_class = 4 * 100 * 50 // 8  # one batch of 4 samples, 100 units at depth 2, 50 stored steps, 1 bit
    mem = [m["bytes"] for m in s["memory_per_task"]]
    assert mem[0] == 10 * per_class
    assert [b - a for a, b in zip(mem, mem[1:-1])] == [per_class] * 9
    assert mem[-1] == mem[-2]  # nothing is stored after the last task: nothing would replay it
    assert [t["new_classes"] for t in s["tasks"]] == [[]] + [[c] for c in range(10, 20)]


def test_replay_memory_holds_only_old_training_samples(world):
    ds, root = world
    for scenario in ("sample_incremental", "class_incremental"):
        net, split, _ = load_pretrained(pre_dir(root, scenario))
        sc = from_split(split)
        for mixed in (False, True):
            c = cfg(scenario, "latent_replay", latent_depth=1, replay_batches=1, class_mixed=mixed)
            strategy = get_strategy("latent_replay")(c, RunContext(net, ds, "cpu", sc, lambda line: None))
            chosen = np.concatenate(strategy.choose(sc.tasks[0].train))
            assert set(chosen) <= set(split["pretrain_train"])
            if scenario == "class_incremental":
                assert set(np.unique(ds.labels[chosen])) == set(range(20)) - {7} and len(chosen) == 19 * 8


def test_run_identity_covers_data_and_pretrained_weights(world, tmp_path):
    ds, root = world
    c = cfg("sample_incremental", "naive")
    runs = tmp_path / "runs"
    subprocess.run(["cp", "-r", str(root / "runs" / "pretrain"), str(runs / "pretrain")], check=False)
    (runs).mkdir(exist_ok=True)
    subprocess.run(["cp", "-r", str(root / "runs" / "pretrain"), str(runs)], check=True)
    first = run_folder(c, runs, ds.path)
    assert first.name.startswith("naive-speaker3-seed0-")
    model = runs / "pretrain/paper/speaker3_seed0/model.pt"
    state = torch.load(model, weights_only=True)
    state["w_out"][0, 0] += 1e-6
    torch.save(state, model)
    assert run_folder(c, runs, ds.path) != first  # a retrained model is another run
    assert run_folder(RunConfig.of(**{**c.__dict__, "threads": 2}), runs, ds.path) == run_folder(c, runs, ds.path)
    assert run_folder(RunConfig.of(**{**c.__dict__, "lr": 1e-3}), runs, ds.path) != run_folder(c, runs, ds.path)


def test_dataclass_and_command_line_defaults_are_the_same_table():
    """A configuration built in code and one parsed from a bare command line record the same settings, for every
    strategy in every scenario: the scenario's defaults, and each strategy flag's own (scenario) default."""
    for scenario in HELD:
        for strategy, cls in REGISTRY.items():
            argv = {"sample_incremental": ["--speaker", "3"], "class_incremental": ["--removed-class", "7"]}.get(
                scenario, [])
            from_cli = config_from_args(build_parser(strategy, scenario).parse_args(argv), strategy, scenario)
            plain = RunConfig.of(scenario=scenario, strategy=strategy, held_out=from_cli.held_out)
            assert from_cli.settings() == plain.settings()
            for key in ("epochs", "lr", "batch_size"):
                assert getattr(plain, key) == SCENARIO[scenario][key]
            assert (plain.seed, plain.split) == (0, "paper")
            for flag in cls.flags:
                if flag.scenario_default is not None:
                    assert plain.options[flag.dest] == SCENARIO[scenario][flag.scenario_default], (strategy, flag)


def test_a_flag_default_is_never_read_as_a_defaults_table_key():
    """A strategy flag whose default is a string equal to a key of the scenario table keeps that string."""
    flag = Flag("--unit", "unit", "a unit", type=str, default="epochs")
    assert flag.default_in("class_incremental") == "epochs"
    assert Flag("--n", "n", "", scenario_default="epochs").default_in("class_incremental") == 50


@pytest.mark.parametrize("argv, message", [
    (["--latent-batches", "999"], "asked for 999 replay batches but the task's training split holds only"),
    (["--latent-depth", "4"], "--latent-depth must be 0, 1, 2 or 3"),
    (["--latent-subsample", "30"], "--latent-subsample 30 must divide the 100 time steps"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--seed", str(2**64)], "--seed must be between 0 and 2147483647"),
    (["--eval-every", "0"], "--eval-every must be a positive whole number of epochs, got 0"),
])
def test_bad_values_are_clear_errors(world, capsys, argv, message):
    ds, root = world
    base = ["--scenario", "sample_incremental", "--strategy", "latent_replay", "--speaker", "3", "--data-dir",
            str(ds.path.parent), "--out-dir", str(root / "runs"), "--quiet", "--batch-size", "16"]
    assert run_cli(main_any, base + argv) == 2
    assert message in capsys.readouterr().err


def test_speakers_scenario_from_the_generic_command_line(world, tmp_path):
    ds, root = world
    r = subprocess.run([sys.executable, "-m", "sccl.cli.continual", "--scenario", "speakers", "--strategy", "naive",
                        "--epochs", "1", "--batch-size", "8", "--data-dir", str(ds.path.parent),
                        "--pretrained", str(pre_dir(root, "speakers")), "--out-dir", str(tmp_path), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    (folder,) = (tmp_path / "speakers").glob("naive-*")
    s = read_json(folder / "summary.json")
    assert [t["name"] for t in s["tasks"]] == ["speakers 0-5"] + [f"speaker {k}" for k in range(6, 12)]
    assert (tmp_path / "speakers" / "summary.csv").is_file()


def test_same_seed_gives_identical_rows(world, tmp_path):
    ds, root = world
    c = cfg("sample_incremental", "latent_replay", latent_depth=1, replay_batches=2, stored_steps=20, epochs=2,
            pretrained=str(pre_dir(root, "sample_incremental")))
    a, b = run(c, ds, tmp_path / "a"), run(c, ds, tmp_path / "b")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(a / "epochs.csv")) == strip(read_csv(b / "epochs.csv"))
    assert a.name == b.name


def test_eval_every_measures_fewer_epochs_and_changes_no_result(world, tmp_path):
    ds, root = world
    c = dict(epochs=7, pretrained=str(pre_dir(root, "class_incremental")))
    every = run(cfg("class_incremental", "naive", **c), ds, tmp_path / "every")
    sparse = run(cfg("class_incremental", "naive", eval_every=3, **c), ds, tmp_path / "sparse")
    rows_every, rows_sparse = read_csv(every / "epochs.csv"), read_csv(sparse / "epochs.csv")
    measured = [int(r["epoch"]) for r in rows_sparse if r["all_acc"] != ""]
    assert measured == [0, 3, 6, 7]  # epoch 0, every third, and the task's last
    assert all(r["old_acc"] == r["new_acc"] == "" for r in rows_sparse if int(r["epoch"]) not in measured)
    for a, b in zip(rows_every, rows_sparse):  # the same training: every loss, and every measured accuracy
        assert a["loss"] == b["loss"] and (b["all_acc"] == "" or a["all_acc"] == b["all_acc"])
    s_every, s_sparse = read_json(every / "summary.json"), read_json(sparse / "summary.json")
    assert s_every["accuracy_matrix"] == s_sparse["accuracy_matrix"] and s_every["metrics"] == s_sparse["metrics"]
    assert s_sparse["best"]["epoch"] in measured[1:]
    assert s_sparse["config"]["eval_every"] == 3 and "eval_every" not in s_every["config"]  # earlier stamps kept
    assert every.name != sparse.name


def test_a_diverging_run_stops_with_one_line():
    from sccl.core.errors import TrainingDiverged
    from sccl.learn.training import Batch, train_epoch
    from sccl.net.model import RecurrentSNN

    net = RecurrentSNN()
    bad = Batch(torch.full((2, 100, 50), float("nan")), torch.tensor([0, 1]), from_depth=3)
    with pytest.raises(TrainingDiverged, match="the training loss became nan .diverged.; lower --lr and run again"):
        train_epoch(net, torch.optim.Adamax(net.parameters(), lr=1e-3), [bad])


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "inf", "--lr must be a positive number, got inf"),
    ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
    ("--seed", "-5", "--seed must be between 0 and 2147483647, got -5"),
])
def test_pretraining_refuses_bad_numbers_before_writing_anything(world, tmp_path, flag, value, message):
    ds, _ = world
    r = subprocess.run([sys.executable, str(ROOT / "statedicts" / "pretrain.py"), "--speaker", "3", "--epochs", "1",
                        "--data-dir", str(ds.path.parent), "--out-dir", str(tmp_path / "out"), flag, value],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "out").exists()


EVIL = '''
import os, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"w1": Payload()}}, "{path}")
'''


@pytest.mark.parametrize("damage", ["pickle", "truncated", "config"])
def test_damaged_or_hostile_pretraining_files_are_one_line(world, tmp_path, damage):
    ds, root = world
    pre = tmp_path / "pre"
    subprocess.run(["cp", "-r", str(pre_dir(root, "sample_incremental")), str(pre)], check=True)
    marker = tmp_path / "payload_ran"
    if damage == "pickle":
        subprocess.run([sys.executable, "-c", EVIL.format(marker=marker, path=pre / "model.pt")], check=True)
        expected = f"error: {pre / 'model.pt'}: this file is not a plain weights file; refusing to load it"
    elif damage == "truncated":
        (pre / "model.pt").write_bytes((pre / "model.pt").read_bytes()[:300])
        expected = f"error: {pre / 'model.pt'}: damaged or not a weights file"
    else:
        (pre / "config.json").write_text('{"settings": ')
        expected = f"error: {pre / 'config.json'}: cannot read this JSON file"
    r = subprocess.run([sys.executable, "-m", "sccl.cli.continual", "--scenario", "sample_incremental", "--strategy",
                        "naive", "--speaker", "3", "--epochs", "1", "--batch-size", "16", "--data-dir",
                        str(ds.path.parent), "--pretrained", str(pre), "--out-dir", str(tmp_path / "out"), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(expected) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and "weights_only=False" not in r.stderr
    assert not marker.exists()  # the hostile pickle never ran


def test_a_damaged_or_foreign_run_folder_is_skipped_with_a_warning(world, tmp_path, capsys):
    ds, root = world
    foreign = tmp_path / "sample_incremental" / "someone-elses-folder"
    foreign.mkdir(parents=True)
    (foreign / "summary.json").write_text('{"config": {}}')  # no epochs.csv, no metrics
    folder = run(cfg("sample_incremental", "naive", pretrained=str(pre_dir(root, "sample_incremental"))), ds,
                 tmp_path)
    gather(folder.parent)  # the folder's tables (what the command lines rebuild after each run)
    err = capsys.readouterr().err
    assert "warning:" in err and "someone-elses-folder" in err
    rows = read_csv(tmp_path / "sample_incremental" / "summary.csv")
    assert [r["run"] for r in rows] == [folder.name]


def test_a_run_that_cannot_start_writes_nothing(world, tmp_path):
    from sccl.core.errors import ConfigError

    ds, root = world
    c = cfg("sample_incremental", "latent_replay", replay_batches=999,
            pretrained=str(pre_dir(root, "sample_incremental")))
    with pytest.raises(ConfigError, match="asked for 999 replay batches"):
        run(c, ds, tmp_path)
    assert not list((tmp_path / "sample_incremental").glob("latent_replay-*"))  # no run folder: a clean restart
    ok = cfg("sample_incremental", "latent_replay", replay_batches=1, pretrained=c.pretrained)
    assert (run(ok, ds, tmp_path) / "summary.json").is_file()


def test_two_sweeps_on_one_folder_run_every_run_once(world, tmp_path):
    ds, root = world
    out = tmp_path / "runs"
    subprocess.run(["cp", "-r", str(root / "runs" / "pretrain"), str(out / "pretrain")], check=False)
    out.mkdir(exist_ok=True)
    subprocess.run(["cp", "-r", str(root / "runs" / "pretrain"), str(out)], check=True)
    sweep = [sys.executable, "-m", "sccl.cli.cl_sweep", "--scenario", "sample_incremental", "--speakers", "3",
             "--strategies", "naive,latent_replay", "--depths", "1,2", "--latent-batches", "1", "--epochs", "2",
             "--batch-size", "16", "--data-dir", str(ds.path.parent), "--out-dir", str(out)]
    procs = [subprocess.Popen(sweep, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    finished = list((out / "sample_incremental").glob("*/summary.json"))
    assert len(finished) == 3
    for summary in finished:  # each run trained once: one "done" line in its log
        assert (summary.parent / "log.txt").read_text().count("done in") == 1
    rows = read_csv(out / "sample_incremental" / "all_runs.csv")
    assert len(rows) == len({(r["run"], r["task"], r["epoch"]) for r in rows}) == 3 * 3


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_out_dir_that_cannot_be_written_is_one_line(world, tmp_path, where):
    ds, root = world
    target = tmp_path / "a_file" if where == "file" else Path("/proc/sccl-cannot-write-here")
    if where == "file":
        target.write_text("in the way")
    r = subprocess.run([sys.executable, "-m", "sccl.cli.continual", "--scenario", "sample_incremental", "--strategy",
                        "naive", "--speaker", "3", "--epochs", "1", "--data-dir", str(ds.path.parent),
                        "--out-dir", str(target), "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: cannot write into --out-dir {target}: ") and len(r.stderr.splitlines()) == 1


def test_an_int8_run_trains_on_the_8_bit_grid_and_counts_its_bytes_so(world, tmp_path, monkeypatch):
    """--precision int8: every weight of the finished network is on its 8-bit grid (frozen ones rounded once,
    trained ones the forward value of their 16-bit shadow); the footprint counts 2 B a trained value (the shadow),
    2 x 2 B of optimiser state and 1 B a frozen value."""
    ds, root = world
    kept, build = {}, engine.build_summary

    def keep(*args, **kwargs):  # the finished network, as the summary sees it
        kept.update({n: p.detach().clone() for n, p in args[12].named_parameters()})
        return build(*args, **kwargs)

    monkeypatch.setattr(engine, "build_summary", keep)
    c = cfg("class_incremental", "latent_replay", pretrained=str(pre_dir(root, "class_incremental")),
            precision="int8")
    assert c.label().endswith("-int8-seed0") and c.settings()["precision"] == "int8"
    assert "precision" not in cfg("class_incremental", "latent_replay").settings()  # float32: the stamp as before
    folder = run(c, ds, tmp_path)
    for name, w in kept.items():
        assert torch.equal(w, fake_quantize(w, 8)), name
    s = read_json(folder / "summary.json")
    trained = 100 * 50 + 50 * 50 + 50 * 20  # w3, v3, w_out above depth 2
    frozen = 700 * 200 + 200 * 200 + 200 * 100 + 100 * 100
    assert s["learning_state"]["parameter_bytes"] == 2 * trained
    assert s["learning_state"]["optimizer_bytes"] == 4 * trained
    assert s["footprint"]["frozen_parameter_bytes"] == frozen
    activity = read_json(folder / "neurobench.json")
    assert {"footprint", "connection_sparsity", "activation_sparsity", "synaptic_operations"} <= set(activity)
    assert activity["synaptic_operations"]["Dense"] == 218_500 * 100
    assert activity["training_step"]["depth"] == 2


def test_a_budget_run_holds_the_learning_state_it_announced(world, tmp_path, capsys):
    """--budget-bytes 40,000 on the tiny data (19 old classes x 8 samples): depth 2's trained weights and their
    Adamax state alone need 102,000 B, so the run cuts at depth 3 (12,000 B) and compresses 152 samples of 50 units
    to S = 25 (23,750 B); the finished run's learning state is exactly what it announced."""
    ds, root = world
    argv = ["--scenario", "class_incremental", "--strategy", "latent_replay", "--removed-class", "7", "--epochs", "1",
            "--batch-size", "8", "--latent-batches", "1", "--budget-bytes", "40000", "--data-dir", str(ds.path.parent),
            "--pretrained", str(pre_dir(root, "class_incremental")), "--out-dir", str(tmp_path), "--quiet"]
    folder = main_any(argv)
    note = capsys.readouterr().out
    assert "--budget-bytes 40,000: depth 3, 1 replay batch(es) (152 samples by the last task), S = 25 of 100" in note
    s = read_json(folder / "summary.json")
    assert s["learning_state"]["total_bytes"] == 12_000 + 23_750 <= 40_000
    assert s["config"]["latent_depth"] == 3 and s["config"]["stored_steps"] == 25
    assert s["config"]["options"] == {"budget_bytes": 40_000}
