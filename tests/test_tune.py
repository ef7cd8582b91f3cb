"""sccl.cli.tune: settings chosen on validation data only, over several seeds, recorded where the defaults table reads."""

import json
import sys
from pathlib import Path

import pytest

from sccl.cli.tune import main, parse_grid, resolve_method
from sccl.cli.tune_plan import HELD_OUT, PLANS
from sccl.cli.tune_select import Dim, choose, valid_score, write_tuned
from sccl.core import defaults
from sccl.core.errors import ConfigError


ROOT = Path(__file__).resolve().parents[1]


def lam(*values) -> list[Dim]:
    return [Dim("ewc", "--ewc-lambda", "ewc_lambda", list(values), [str(v) for v in values])]


def fake_summary(valid_acc: float, test_acc: float) -> dict:
    """A run record as the engine writes it on a split with validation sets (the keys the chooser could misuse)."""
    return {"stamp": "fake", "metrics": {"acc": test_acc, "all_after": test_acc},
            "accuracy_matrix": [[test_acc, 0.0], [test_acc, test_acc]], "final": {"all_acc": test_acc},
            "valid_metrics": {"acc": valid_acc, "all_after": valid_acc},
            "valid_accuracy_matrix": [[valid_acc, 0.0], [valid_acc, valid_acc]]}


def scores_of(records: dict) -> dict:
    """{value: {seed: summary}} -> the chooser's input, read as sccl.cli.tune reads the runs."""
    return {(v,): {s: valid_score(summary) for s, summary in by_seed.items()} for v, by_seed in records.items()}


def test_the_best_mean_validation_score_is_chosen_with_every_candidates_scores():
    records = {1.0: {3: fake_summary(0.50, 0.9), 4: fake_summary(0.60, 0.9)},
               10.0: {3: fake_summary(0.70, 0.1), 4: fake_summary(0.64, 0.1)},
               100.0: {3: fake_summary(0.40, 0.5), 4: fake_summary(0.44, 0.5)}}
    table, chosen, warnings = choose(lam(1.0, 10.0, 100.0), scores_of(records), [3, 4])
    assert chosen["values"] == {"ewc_lambda": 10.0} and chosen["mean"] == pytest.approx(0.67)
    assert chosen["std"] == pytest.approx(0.0424264, abs=1e-6)  # sample std over the seeds
    assert [row["scores"] for row in table] == [{"3": 0.5, "4": 0.6}, {"3": 0.7, "4": 0.64}, {"3": 0.4, "4": 0.44}]
    assert warnings == []  # an inner value


def test_the_test_set_never_enters_the_choice():
    clean = {v: {s: fake_summary(acc, 0.5) for s in (3, 4)} for v, acc in ((1.0, 0.6), (10.0, 0.5))}
    poisoned = {v: {s: fake_summary(acc, 1.0 if v == 10.0 else 0.0) for s in (3, 4)}  # the test set prefers 10
                for v, acc in ((1.0, 0.6), (10.0, 0.5))}
    assert choose(lam(1.0, 10.0), scores_of(poisoned), [3, 4])[1]["values"] == {"ewc_lambda": 1.0}
    assert choose(lam(1.0, 10.0), scores_of(clean), [3, 4])[1]["values"] == {"ewc_lambda": 1.0}
    test_only = fake_summary(0.5, 0.5)
    del test_only["valid_metrics"]
    with pytest.raises(ConfigError, match="no validation"):  # no fallback to the test metrics
        valid_score(test_only)


def test_ties_go_to_the_smaller_value_and_the_grids_edge_is_flagged():
    tied = {(v,): {3: 0.5, 4: 0.7} for v in (100.0, 1.0, 10.0)}
    _, chosen, warnings = choose(lam(100.0, 1.0, 10.0), tied, [3, 4])
    assert chosen["values"] == {"ewc_lambda": 1.0}
    assert warnings == ["ewc.ewc-lambda: chosen value 1 is at the edge of the grid (1 .. 100): widen it"]
    _, chosen, warnings = choose(lam(1.0, 10.0, 100.0), {(1.0,): {3: 0.1, 4: 0.1}, (10.0,): {3: 0.2, 4: 0.2},
                                                          (100.0,): {3: 0.3, 4: 0.3}}, [3, 4])
    assert chosen["values"] == {"ewc_lambda": 100.0} and "edge of the grid" in warnings[0]
    words = [Dim("projection", "--subspace", "subspace", ["svd", "hebbian"], ["svd", "hebbian"])]
    _, chosen, warnings = choose(words, {("hebbian",): {3: 0.5, 4: 0.5}, ("svd",): {3: 0.5, 4: 0.5}}, [3, 4])
    assert chosen["values"] == {"subspace": "svd"} and warnings == []  # text values: the first listed, no edge


def test_nothing_is_chosen_while_a_seed_is_missing():
    table, chosen, _ = choose(lam(1.0, 10.0), {(1.0,): {3: 0.9, 4: 0.9}, (10.0,): {3: 0.1}}, [3, 4])
    assert chosen is None and table[1]["scores"] == {"3": 0.1, "4": None} and table[1]["mean"] is None


def test_grids_and_methods_are_checked_by_the_strategies_own_rules():
    assert resolve_method("latent_replay+ewc") == ("latent_replay", "ewc")
    assert parse_grid("ewc", "ewc", ["ewc.ewc-lambda=1e-2,10"])[0].values == [0.01, 10.0]
    for method, grid, message in [("ewc", ["ewc.nope=1"], "no flag --nope"),
                                  ("ewc", ["ewc.ewc-lambda=1,abc"], "'abc' is not a valid float"),
                                  ("ewc", ["ewc.ewc-lambda=1,1"], "listed twice"),
                                  ("ewc", [], "nothing to tune")]:
        with pytest.raises(ConfigError, match=message):
            parse_grid(method, "ewc", grid)
    for method, message in [("nope", "unknown method"), ("naive+ewc", "cannot host")]:
        with pytest.raises(ConfigError, match=message):
            resolve_method(method)


def test_bad_values_and_splits_without_validation_are_refused_before_anything_runs(embedded_tiny, tmp_path):
    base = ["--method", "ewc", "--scenario", "class_incremental", "--data-dir", str(embedded_tiny.path.parent),
            "--out-dir", str(tmp_path / "tuning"), "--defaults-file", str(tmp_path / "tuned.json")]
    with pytest.raises(ConfigError, match="must be a number >= 0"):  # OnlineEWC.validate
        main(base + ["--grid", "ewc.ewc-lambda=-1,1"])
    for split in ("paper", "official"):
        with pytest.raises(ConfigError, match=f"--split {split} has no validation sets"):
            main(base + ["--grid", "ewc.ewc-lambda=1,10", "--split", split])
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        main(base + ["--grid", "ewc.ewc-lambda=1,10", "--seeds", "3"])
    assert not (tmp_path / "tuning").exists() and not (tmp_path / "tuned.json").exists()


def test_dry_run_of_the_quick_plan_lists_every_method_and_writes_nothing(embedded_tiny, tmp_path, capsys):
    main(["--plan", "quick", "--dry-run", "--data-dir", str(embedded_tiny.path.parent),
          "--out-dir", str(tmp_path / "tuning"), "--defaults-file", str(tmp_path / "tuned.json")])
    out = capsys.readouterr().out
    for entry in PLANS["quick"]["entries"]:
        assert entry.method.split("+")[-1] in out
    assert "--regularizer si --si-c 0.01" in out and "--split paper_valid" in out and "[tune] dry run" in out
    assert not (tmp_path / "tuning").exists() and not (tmp_path / "tuned.json").exists()


def test_the_quick_plan_matches_reproduces_quick_configuration():
    sys.path.insert(0, str(ROOT))
    from reproduce import CONFIGS

    quick, plan = CONFIGS["quick"], PLANS["quick"]
    assert plan["pretrain"] == {"epochs": quick["pretrain_epochs"], "lr": quick["pretrain_lr"],
                                "batch_size": quick["pretrain_batch_size"]}
    assert HELD_OUT == {s: quick[s]["ids"] for s in HELD_OUT}
    assert not set(plan["seeds"].split(",")) & set(quick["seeds"].split(","))
    for entry in plan["entries"]:
        assert entry.batch_size in (None, quick[entry.scenario]["batch_size"])


def test_a_tiny_tuning_writes_its_record_and_the_defaults_table_reads_the_choice(embedded_tiny, tmp_path, capsys):
    out, table = tmp_path / "tuning", tmp_path / "tuned.json"
    write_tuned(table, [{"method": "ewc", "chosen": {"ewc_lambda": 5.0}}], tmp_path)  # an earlier tuning: kept
    argv = ["--method", "lwf", "--scenario", "class_incremental", "--grid", "lwf.lwf-alpha=0.1,10", "--seeds", "3,4",
            "--epochs", "1", "--batch-size", "8", "--pretrain-epochs", "1", "--pretrain-batch-size", "16",
            "--data-dir", str(embedded_tiny.path.parent), "--out-dir", str(out), "--defaults-file", str(table),
            "--jobs", "1"]
    main(argv)
    record = json.loads(table.read_text())
    run = record["runs"][-1]
    assert run["method"] == "lwf" and run["split"] == "paper_valid" and run["seeds"] == [3, 4]
    assert run["grid"] == {"lwf_alpha": [0.1, 10.0]} and run["held_out"] == [7]
    assert run["selection_metric"].startswith("valid_metrics.acc")
    assert run["pretrain"] == {"epochs": 1, "lr": 1e-3, "batch_size": 16, "split": "paper_valid"}
    assert [c["values"]["lwf_alpha"] for c in run["candidates"]] == [0.1, 10.0]
    assert all(set(c["scores"]) == {"3", "4"} and c["mean"] is not None for c in run["candidates"])
    best = max(run["candidates"], key=lambda c: (c["mean"], -c["values"]["lwf_alpha"]))
    assert run["chosen"] == best["values"] and "edge of the grid" in run["warnings"][0]
    assert run["data"]["sha256"] and run["command"].startswith("python -m sccl.cli.tune --method lwf") and run["date"]
    assert record["defaults"] == {"ewc": {"ewc_lambda": 5.0}, "lwf": run["chosen"]}
    assert [r["method"] for r in record["runs"]] == ["ewc", "lwf"]
    try:
        defaults.reload_tuned(table)
        assert defaults.tuned("lwf", "lwf_alpha", None) == run["chosen"]["lwf_alpha"]
        assert defaults.tuned("latent_replay+lwf", "lwf_alpha", "fallback") == "fallback"
    finally:
        defaults.reload_tuned()
    capsys.readouterr()
    main(argv)  # resumable: every run is found finished; the record of the same tuning is replaced, not added
    assert "4 runs: 4 already done, 0 to run" in capsys.readouterr().out
    assert [r["method"] for r in json.loads(table.read_text())["runs"]] == ["ewc", "lwf"]
