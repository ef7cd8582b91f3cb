"""The results report on hand-made run folders (the engine's schema): summary.csv, seed aggregation, damaged
folders, REPORT.md, figures, README blocks."""

import json
import math

import numpy as np
import pytest

from sccl.cl import metrics
from sccl.core.results import read_csv, write_csv
from sccl.report import build as report
from sccl.report.records import SUMMARY_COLUMNS, epoch_rows_of, load_runs, load_runs_in, seed_mean_std


EPOCH_COLUMNS = ["strategy", "scenario", "held_out", "depth", "replay_batches", "stored_steps", "compression", "seed",
                 "task", "epoch", "loss", "old_acc", "new_acc", "all_acc", "memory_bits", "memory_bytes", "seconds"]


def make_run(runs, scenario, strategy, R, counts, seed=0, held_out=None, depth=None, batches=0, stored=None,
             memory_bytes=0, synthetic=True, epochs=2, parameter_bytes=4000):
    """A finished run folder as sccl.cl.engine writes it: summary.json, epochs.csv, accuracy_matrix.csv (the
    memory is a replay memory when there are replay batches, else regulariser state; ``parameter_bytes`` None:
    a run written before the learning state was kept)."""
    R = np.asarray(R, dtype=float)
    T = len(R) - 1
    config = {"scenario": scenario, "strategy": strategy, "held_out": held_out, "split": "paper", "epochs": epochs,
              "lr": 2e-4, "seed": seed, "device": "cpu", "batch_size": 16, "latent_depth": depth,
              "replay_batches": batches, "stored_steps": stored, "compression": "or", "schedule": "original",
              "float16_currents": False, "keep_last": False, "reinit_readout": True, "class_mixed": False,
              "first_speakers": None, "pretrained": None}
    name = f"{strategy}-{held_out}-d{depth}-n{batches}-S{stored}-seed{seed}"
    folder = runs / scenario / name
    folder.mkdir(parents=True)
    m = metrics.run_metrics(R, counts)
    summary = {
        "stamp": name, "config": config, "data": {"path": "x.h5", "sha256": "0", "synthetic": synthetic},
        "pretrained": "pre", "pretrained_config": {}, "accuracy_matrix": R.tolist(),
        "tasks": [{"name": f"task {j}", "new_classes": [], "train": 32, "test": int(n)} for j, n in enumerate(counts)],
        "metrics": {k: (None if math.isnan(v) else round(v, 6)) for k, v in m.items()},
        "final": {"old_acc": m["old_after"], "new_acc": m["new_after"], "all_acc": m["all_after"]},
        "replay_memory_accuracy": 0.9 if batches else None, "memory_bits_analytic": 8 * memory_bytes,
        "memory_bytes_stored": memory_bytes,
        "memory": (f"{16 * batches} x depth-{depth} spikes (200 units), {stored or 100}/100 steps" if batches
                   else "none"),
        "memory_per_task": [], "seconds_per_epoch": 0.5,
        **({} if parameter_bytes is None else {"learning_state": metrics.learning_state(
            parameter_bytes, memory_bytes if batches else 0, memory_bytes)}),
        "per_class_accuracy": {}, "frozen_parameters": [],
        "wall_seconds": 3.0 + seed,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    fixed = {"strategy": strategy, "scenario": scenario, "held_out": "" if held_out is None else held_out,
             "depth": "" if depth is None else depth, "replay_batches": batches,
             "stored_steps": "" if strategy == "naive" else (stored or 100),
             "compression": "or" if stored else "none", "seed": seed}
    correct = metrics.correct_counts(R, counts)
    rows = []
    for t in range(1, T + 1):
        for e in range(epochs + 1):
            acc = metrics.old_new_all(correct[t - 1] if e == 0 else correct[t], counts, t)
            rows.append({**fixed, "task": t, "epoch": e, "loss": 1.0, **acc, "memory_bits": 8 * memory_bytes,
                         "memory_bytes": memory_bytes, "seconds": 0.5})
    write_csv(folder / "epochs.csv", rows, EPOCH_COLUMNS)
    write_csv(folder / "accuracy_matrix.csv",
              [{"after_task": i, **{f"task_{j}": v for j, v in enumerate(r)}} for i, r in enumerate(R.tolist())])
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    made = []
    for seed in (0, 1):  # compressed latent replay: 2 seeds x 2 held-out speakers
        for sp in (2, 3):
            a = 0.05 * seed + 0.02 * sp
            made.append(make_run(runs, "sample_incremental", "latent_replay", [[0.9, 0.1], [0.7 + a, 0.5 + a]],
                                 [40, 10], seed, sp, depth=1, batches=2, stored=10, memory_bytes=8000))
    for sp in (2, 3):
        made.append(make_run(runs, "sample_incremental", "latent_replay", [[0.9, 0.1], [0.8, 0.6]], [40, 10], 0, sp,
                             depth=1, batches=2, memory_bytes=80000))
    made.append(make_run(runs, "sample_incremental", "naive", [[0.9, 0.1], [0.3, 0.9]], [40, 10], 0, 2))
    made.append(make_run(runs, "progressive", "latent_replay",
                         [[0.9, 0.0, 0.0], [0.8, 0.7, 0.0], [0.6, 0.5, 0.9]], [100, 10, 10], 0, depth=2, batches=1,
                         memory_bytes=500, epochs=1))
    bad = runs / "class_incremental" / "damaged"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text("{not json")
    nokeys = runs / "progressive" / "nokeys"
    nokeys.mkdir(parents=True)
    (nokeys / "summary.json").write_text(json.dumps({"config": {"scenario": "progressive"}}))
    pre = runs / "pretrain" / "paper"
    for seed, test_acc in ((0, 0.8), (1, 0.9)):
        folder = pre / f"speaker2_seed{seed}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({
            "settings": {"scenario": "sample_incremental", "held_out": 2, "split": "paper", "epochs": 2, "seed": seed},
            "data": {"path": str(root / "missing.h5"), "sha256": "0", "synthetic": True}}))
        write_csv(folder / "epochs.csv", [{"epoch": e, "loss": 1, "train_acc": 0.5 + e / 10, "test_acc": test_acc - 0.1
                                           * (2 - e), "seconds": 1.0} for e in (1, 2)])
        (folder / "model.pt").write_bytes(b"")
        (folder / "split.npz").write_bytes(b"")
    results = root / "results"
    out = report.build_report(results, runs, title_note="hand-made runs")
    return {"root": root, "runs": runs, "results": results, "out": out, "made": made}


def test_summary_csv_has_one_row_per_run_with_its_metrics(world):
    rows = read_csv(world["results"] / "summary.csv")
    assert list(rows[0]) == SUMMARY_COLUMNS
    assert len(rows) == len(world["made"]) == world["out"]["runs"] == 8
    by_run = {r["run"]: r for r in rows}
    for folder in world["made"]:
        s = json.loads((folder / "summary.json").read_text())
        r = by_run[folder.name]
        assert r["scenario"] == s["config"]["scenario"] and r["strategy"] == s["config"]["strategy"]
        for k, v in s["metrics"].items():
            assert (r[k] == "") if v is None else float(r[k]) == v, k
        assert int(r["memory_bytes"]) == s["memory_bytes_stored"]
        assert float(r["memory_kb"]) == s["memory_bytes_stored"] / 1000
        state = s["learning_state"]  # parameters 4,000 B, Adamax 8,000 B, and the memory: replay or regulariser
        assert (int(r["parameter_bytes"]), int(r["optimizer_bytes"])) == (4000, 8000)
        assert int(r["replay_memory_bytes"]) + int(r["regularizer_bytes"]) == s["memory_bytes_stored"]
        assert int(r["learning_state_bytes"]) == state["total_bytes"] == 12000 + s["memory_bytes_stored"]
        assert float(r["seconds"]) == s["wall_seconds"] and r["data"] == report.SYNTHETIC_LABEL
    compressed = by_run["latent_replay-2-d1-n2-S10-seed0"]
    assert (compressed["depth"], compressed["stored_steps"], compressed["compression"]) == ("1", "10", "or")
    assert compressed["replay_samples"] == "32" and compressed["held_out"] == "2"
    naive = by_run["naive-2-dNone-n0-SNone-seed0"]
    assert naive["depth"] == "" and naive["stored_steps"] == "" and naive["compression"] == "none"
    assert by_run["latent_replay-None-d2-n1-SNone-seed0"]["held_out"] == ""


def test_one_scenario_folder_and_its_epoch_rows(world):
    records, notes = load_runs_in(world["runs"] / "progressive")
    assert len(records) == 1 and len(notes) == 1 and "nokeys" in notes[0]
    rows = epoch_rows_of(records[0])
    assert [(r["task"], r["epoch"]) for r in rows] == [("1", "0"), ("1", "1"), ("2", "0"), ("2", "1")]
    assert records[0]["acc_steps"] == pytest.approx([0.9, 0.75, (0.6 + 0.5 + 0.9) / 3])


def test_damaged_folders_are_skipped_with_a_note(world):
    records, notes = load_runs(world["runs"])
    assert len(records) == 8 and len(notes) == 2
    assert any("damaged" in n and "JSONDecodeError" in n for n in notes)
    assert any("nokeys" in n and "KeyError" in n for n in notes)
    text = (world["results"] / "REPORT.md").read_text()
    assert "## Notes" in text and "damaged" in text


def test_mean_and_std_over_seeds_average_ids_first(world):
    records, _ = load_runs(world["runs"])
    group = [r for r in records if r["variant"] == "compressed_latent_replay"]
    per_seed = [np.mean([r["row"]["all_after"] for r in group if r["row"]["seed"] == s]) for s in (0, 1)]
    mean, std, n = seed_mean_std(group, "all_after")
    assert (mean, std, n) == pytest.approx((np.mean(per_seed), np.std(per_seed, ddof=1), 2))
    row = next(line for line in (world["results"] / "REPORT.md").read_text().splitlines()
               if line.startswith("| compressed LR | 1 | 2 | 32 | 10 (or) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[6] == "2 × 2"
    assert cells[10] == f"{100 * mean:.2f} ± {100 * std:.2f}"  # all after
    assert cells[14] == "8.000"  # memory KB


def test_seed_mean_std_by_hand():
    def rec(seed, id_, v):
        return {"row": {"seed": seed, "held_out": id_, "all_after": v}}

    recs = [rec(0, 1, 0.2), rec(0, 2, 0.4), rec(1, 1, 0.5), rec(1, 2, float("nan"))]
    assert seed_mean_std(recs, "all_after") == pytest.approx((0.4, math.sqrt(0.02), 2))
    mean, std, n = seed_mean_std(recs[:2], "all_after")
    assert mean == pytest.approx(0.3) and math.isnan(std) and n == 1


def test_report_mentions_synthetic_data_and_every_table(world):
    text = (world["results"] / "REPORT.md").read_text()
    lines = text.splitlines()
    assert report.SYNTHETIC_LABEL in lines[0] and lines[2] == "hand-made runs"
    assert all(report.SYNTHETIC_LABEL in line for line in lines if line.startswith("## "))
    assert all(report.SYNTHETIC_LABEL in line for line in lines if line.startswith("**Table "))
    assert "BWT_t = mean over j < t of (R[t][j] - R[j][j])" in text  # from sccl.cl.metrics' docstring
    for needle in ("Sample-incremental (new speaker)", "Progressive class-incremental", "accuracy matrix R[i][j]",
                   "Compressed vs uncompressed latent replay", "10.0×", "| LR d2 n1 |",
                   "Pretrained models for sample_incremental", "No finished runs of: class_incremental, speakers."):
        assert needle in text, needle
    assert "| after task 2 | 60.0 | 50.0 | 90.0 |" in text


def test_figures_are_written_or_skipped_with_a_reason(world):
    out = world["out"]
    for name in report.FIGURES:
        png = world["results"] / "figures" / f"{name}.png"
        if name in out["skipped"]:
            assert out["skipped"][name] and not png.exists()
        else:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in out["figures"]
    # the pretrained models' data file is missing; these made-up runs recorded no footprint
    assert set(out["skipped"]) == {"raster_compression", "methods_accuracy_vs_whole_learner"}
    assert "missing" in out["skipped"]["raster_compression"]
    assert set(out["files"]) == {out["summary_csv"], out["report"], *out["figures"]}


README = """# Project

Intro text.

<!-- results:sample_incremental -->
old table
<!-- /results:sample_incremental -->

Between.

<!-- results:compression -->
<!-- /results:compression -->
<!-- results:class_incremental -->
stale
<!-- /results:class_incremental -->
<!-- results:not_a_block -->
kept as it is
<!-- /results:not_a_block -->
<!-- results:pretraining -->
<!-- /results:pretraining -->
End.
"""


# the other blocks, in a second file: the blocks may be spread over several files (--docs FILE FILE)
OTHER = """# Results

<!-- results:progressive -->
<!-- /results:progressive -->
<!-- results:speakers -->
<!-- /results:speakers -->
<!-- results:methods -->
<!-- /results:methods -->
<!-- results:footprint -->
<!-- /results:footprint -->
<!-- results:tuning -->
<!-- /results:tuning -->
"""


def test_readme_blocks_are_replaced_and_checked(world, tmp_path, capsys):
    readme, other = tmp_path / "README.md", tmp_path / "RESULTS.md"
    readme.write_text(README)
    other.write_text(OTHER)
    args = ["--results-dir", str(world["results"]), "--runs-dir", str(world["runs"]), "--docs", str(readme), str(other)]
    assert report.main(args + ["--check"]) == 1
    printed = capsys.readouterr().out
    assert readme.read_text() == README and other.read_text() == OTHER  # --check writes nothing
    for name in ("sample_incremental", "compression", "class_incremental", "pretraining"):
        assert f"{readme}: block '{name}' differs from the runs" in printed
    assert "not_a_block" not in printed
    assert report.main(args) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\nIntro text.\n\n<!-- results:sample_incremental -->\n")
    assert "\nBetween.\n" in text and text.endswith("<!-- /results:pretraining -->\nEnd.\n")
    assert "old table" not in text and "stale" not in text and "kept as it is" in text
    assert "_No finished class_incremental runs._" in text and "| compressed LR | 1 | 2 | 10 (or) |" in text
    assert "85.00 ± 7.07" in text  # pretrained test accuracy over two seeds
    assert "seconds" not in text and "s / epoch" not in text  # only the methods block has timings
    assert "| method | n |" in other.read_text() and "s / epoch" in other.read_text()
    assert report.main(args + ["--check"]) == 0
    # --readme is the same flag under its old name
    assert report.main(args[:4] + ["--readme", str(readme), str(other), "--check"]) == 0
    records, _ = load_runs(world["runs"])
    assert report.update_readme(readme, report.readme_blocks(records, []), check=True) == ["pretraining"]


def test_a_block_in_none_of_the_files_fails_and_is_named(world, tmp_path, capsys):
    """A block that moved to a file the command was not given is a failure, never a block left unchecked."""
    readme = tmp_path / "README.md"
    readme.write_text(README)
    args = ["--results-dir", str(world["results"]), "--runs-dir", str(world["runs"]), "--docs", str(readme)]
    assert report.main(args) == 1  # the blocks it has are written, the missing ones named
    printed = capsys.readouterr().out
    for name in ("progressive", "speakers", "methods", "tuning"):
        assert f"block '{name}' is in none of {readme}: add a line <!-- results:{name} -->" in printed
    assert "| compressed LR | 1 | 2 | 10 (or) |" in readme.read_text()
    assert report.main(args + ["--check"]) == 1
    printed = capsys.readouterr().out
    assert "block 'sample_incremental': identical" in printed and "block 'methods' is in none of" in printed


def test_bare_docs_flag_takes_the_projects_block_files(world, tmp_path, monkeypatch, capsys):
    assert report.BLOCK_FILES == ("docs/RESULTS.md",)
    (tmp_path / "docs").mkdir()
    results = tmp_path / "docs" / "RESULTS.md"
    results.write_text("".join(f"<!-- results:{n} -->\n<!-- /results:{n} -->\n" for n in report.README_BLOCKS))
    monkeypatch.chdir(tmp_path)
    args = ["--results-dir", str(world["results"]), "--runs-dir", str(world["runs"])]
    assert report.main(args + ["--docs"]) == 0
    assert "docs/RESULTS.md: updated pretraining" in capsys.readouterr().out
    assert report.main(args + ["--readme", "--check"]) == 0
    (tmp_path / "README.md").write_text("# no blocks here\n")
    assert report.main(args + ["--readme", "README.md", "--check"]) == 2  # the old CI line: loud, not silently empty
    assert "README.md has no <!-- results:NAME --> marker" in capsys.readouterr().err


def test_readme_without_markers_and_empty_runs(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    plain = tmp_path / "README.md"
    plain.write_text("# nothing marked\n")
    assert report.main(["--results-dir", str(tmp_path), "--readme", str(plain), "--check"]) == 2
    assert "no <!-- results:NAME --> marker" in capsys.readouterr().err
    assert report.main(["--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "summary.csv").read_text().strip() == ",".join(SUMMARY_COLUMNS)
    assert report.SYNTHETIC_LABEL not in (tmp_path / "REPORT.md").read_text().split("## Metrics")[0]
    assert report.main(["--results-dir", str(tmp_path / "nowhere")]) == 2


def test_every_method_is_one_row_named_by_what_makes_it_differ(tmp_path):
    from sccl.report.methods import methods_tables

    runs = tmp_path / "runs"
    R = [[0.9, 0.1], [0.7, 0.5]]
    specs = [("ewc", {"ewc_lambda": 100.0}, 800), ("ewc", {"ewc_lambda": 1000.0}, 800), ("joint", {}, 5000),
             ("latent_replay", {"regularizer": "projection", "subspace": "hebbian"}, 900), ("projection", {}, 0)]
    for strategy, options, kb in specs:
        for seed in (0, 1):
            folder = make_run(runs, "class_incremental", strategy, R, [40, 10], seed, 7,
                              depth=2 if strategy == "latent_replay" else None,
                              batches=1 if strategy == "latent_replay" else 0, memory_bytes=kb)
            summary = json.loads((folder / "summary.json").read_text())
            summary["config"]["options"] = options
            folder.rename(folder.with_name(folder.name + "-" + "-".join(f"{k}{v}" for k, v in options.items())))
            (folder.parent / (folder.name + "-" + "-".join(f"{k}{v}" for k, v in options.items())) / "summary.json"
             ).write_text(json.dumps(summary))
    records, _ = load_runs(runs)
    text = methods_tables(records, lambda recs: "synthetic")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert len(rows) == 5  # the two EWC strengths are two methods
    names = [r.split(" | ")[0][2:] for r in rows]
    assert names == ["joint", "EWC", "EWC", "LR d2 n1 + projection (HLOP)", "projection"]
    ewc = [r for r in rows if r.startswith("| EWC")]
    assert "ewc_lambda=100.0" in ewc[0] and "ewc_lambda=1000.0" in ewc[1]
    # n (seeds x classes), old, new, all (pooled over 40 + 10 samples), ACC (mean of R[1]), AIA (mean of ACC_0 =
    # 0.9 and ACC_1 = 0.6), BWT, FWT (undefined: a class scenario), forgetting
    assert all("| 2 × 1 | 70.0 ± 0.0 | 50.0 ± 0.0 | 66.0 ± 0.0 | 60.0 ± 0.0 | – | – | 75.0 ± 0.0 | -20.0 ± 0.0 | – | "
               "20.0 ± 0.0 |" in r for r in rows)  # no naive run: no paired difference with it
    assert "| AIA | BWT (pp) | FWT (pp) |" in text
    assert "| memory (B) | learning state (B) | whole learner (B) | s / epoch |" in text
    # joint keeps 5,000 B; learning state = 5,000 + 4,000 B of parameters + 8,000 B of Adamax state
    assert "| 5,000 | 17,000 | – | 0.50 s |" in rows[0]  # (these made-up runs recorded no footprint)
    figures, _, skipped = report.make_figures(records, runs, tmp_path / "fig")
    assert {"methods_accuracy_vs_bytes", "methods_accuracy_vs_learning_state"} <= set(figures), skipped


def test_the_compression_table_says_what_the_compression_lost(tmp_path):
    from sccl.report.tables import compression_table

    runs = tmp_path / "runs"
    for seed, lost in [(0, 0.4), (1, 0.6)]:
        make_run(runs, "class_incremental", "latent_replay", [[0.9, 0.1], [0.8, 0.5]], [40, 10], seed, 7, depth=2,
                 batches=1, memory_bytes=1000)
        folder = make_run(runs, "class_incremental", "latent_replay", [[0.9, 0.1], [0.5, 0.5]], [40, 10], seed, 7,
                          depth=2, batches=1, stored=10, memory_bytes=100)
        summary = json.loads((folder / "summary.json").read_text())
        summary["diagnostics"] = {"compression": {"lost_fraction": lost, "spikes_per_active_window": 2.5 + seed}}
        (folder / "summary.json").write_text(json.dumps(summary))
    records, _ = load_runs(runs)
    assert [r["row"]["compression_lost"] for r in records if r["row"]["stored_steps"] == 10] == [0.4, 0.6]
    row = [line for line in compression_table(report.aggregate(records), "synthetic").splitlines()
           if line.startswith("| class_incremental")][0]
    # memory in bytes; lost 40 % and 60 %; 2.5 and 3.5 spikes per active window
    assert "| 1,000 | 100 | 10.0× | 50.0 ± 14.1 | 3.00 ± 0.71 |" in row
    # all after: 37 / 50 uncompressed, 25 / 50 compressed at both seeds: the same paired difference twice (t infinite)
    assert "| 74.00 ± 0.00 | 50.00 ± 0.00 | -24.00 ± 0.00 | yes |" in row


def test_the_compression_table_pairs_seeds_and_tests_the_difference(tmp_path):
    from sccl.report.tables import compression_table

    runs = tmp_path / "runs"
    # all after = (40 * R[1][0] + 10 * 0.5) / 50: uncompressed 0.74 at every seed; compressed 0.50, 0.58, 0.54
    for seed, old in [(0, 0.5), (1, 0.6), (2, 0.55)]:
        make_run(runs, "class_incremental", "latent_replay", [[0.9, 0.1], [0.8, 0.5]], [40, 10], seed, 7, depth=2,
                 batches=1, memory_bytes=1000)
        make_run(runs, "class_incremental", "latent_replay", [[0.9, 0.1], [old, 0.5]], [40, 10], seed, 7, depth=2,
                 batches=1, stored=10, memory_bytes=100)
    records, _ = load_runs(runs)
    text = compression_table(report.aggregate(records), "synthetic")
    assert "paired t-test" in text.split("\n\n")[0]  # the caption says what Δ and its test are
    row = [line for line in text.splitlines() if line.startswith("| class_incremental")][0]
    # differences -0.24, -0.16, -0.20: mean -0.20, std 0.04, t = -0.20 / (0.04 / sqrt 3) = -8.66 > 4.303 (2 df)
    assert "| 3 × 1 / 3 × 1 | 74.00 ± 0.00 | 54.00 ± 4.00 | -20.00 ± 4.00 | yes |" in row
    records = [r for r in records if r["row"]["seed"] != 2]  # -0.24, -0.16: t = -5.0, below 12.706 (1 df)
    row = [line for line in compression_table(report.aggregate(records), "synthetic").splitlines()
           if line.startswith("| class_incremental")][0]
    assert "| -20.00 ± 5.66 | no |" in row


def test_paired_differences_pair_seeds_and_ids():
    from sccl.report.records import paired_differences

    def rec(seed, id_, v):
        return {"row": {"seed": seed, "held_out": id_, "all_after": v}}

    first = [rec(0, 1, 0.5), rec(0, 2, 0.7), rec(1, 1, 0.4), rec(3, 1, 0.9)]
    second = [rec(0, 1, 0.6), rec(0, 2, 0.6), rec(0, 3, 0.1), rec(1, 1, 0.7), rec(2, 1, 0.2)]
    # seed 0: ids 1 and 2 shared ((0.1 - 0.1) / 2 = 0); seed 1: 0.3; seeds 2 and 3 ran in one group only
    assert paired_differences(first, second, "all_after") == pytest.approx([0.0, 0.3])
    assert paired_differences(first, [rec(5, 1, 0.2)], "all_after") == []


def test_paired_t_statistic_by_hand():
    from sccl.report.records import paired_t, paired_t_rejects

    # d = 1, 2, 3, 6: mean 3, sum of squares 14, std sqrt(14 / 3), t = 3 / (std / 2) = 2.7775 < 3.182 (3 df)
    assert paired_t([1, 2, 3, 6]) == pytest.approx(3 / (math.sqrt(14 / 3) / 2))
    assert paired_t_rejects([1, 2, 3, 6]) is False
    assert paired_t([-0.24, -0.16, -0.20]) == pytest.approx(-0.2 / (0.04 / math.sqrt(3)))
    assert paired_t_rejects([-0.24, -0.16, -0.20]) is True  # |t| = 8.66 > 4.303 (2 df)
    assert math.isnan(paired_t([0.1])) and paired_t_rejects([0.1]) is None
    assert paired_t([0, 0]) == 0 and paired_t_rejects([0, 0]) is False
    assert paired_t([1, 1]) == math.inf and paired_t_rejects(iter([1, 1])) is True
    # 36 pairs (35 df, between the table's 30 and 40): a + b and a - b eighteen times each, t = 6 a / (b sqrt(36/35))
    a = 2.035 * math.sqrt(36 / 35) / 6
    d = [a + 1] * 18 + [a - 1] * 18
    assert paired_t(d) == pytest.approx(2.035)
    assert paired_t_rejects(d) is False  # above 40 df's 2.021 but not 30 df's 2.042: the smaller df's value counts


def test_runs_written_before_aia_fwt_and_the_learning_state_leave_blank_cells(tmp_path):
    from sccl.report.methods import methods_tables

    runs = tmp_path / "runs"
    folder = make_run(runs, "sample_incremental", "naive", [[0.9, 0.1], [0.3, 0.9]], [40, 10], 0, 2,
                      parameter_bytes=None)
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("aia", "fwt"):
        del summary["metrics"][key]
    (folder / "summary.json").write_text(json.dumps(summary))
    records, notes = load_runs(runs)
    assert not notes
    row = records[0]["row"]
    assert all(row[k] == "" for k in ("aia", "fwt", "parameter_bytes", "learning_state_bytes"))
    line = [r for r in methods_tables(records, lambda recs: "synthetic").splitlines() if r.startswith("| naive")][0]
    assert "| – | -60.0 | – | 60.0 | 0 | – |" in line  # AIA, BWT, FWT, forgetting, memory, learning state


def test_each_method_is_paired_with_naive_fine_tuning_seed_by_seed(tmp_path):
    """ACC − naive: per seed, the method's ACC minus naive's on the same seed; mean ± std in pp and the paired
    t-test's decision (differences 0.10, 0.20: t = 0.15 / (0.0707 / sqrt 2) = 3.0 < 12.706 at 1 df: no)."""
    from sccl.report.methods import methods_tables

    runs = tmp_path / "runs"
    for strategy, accs in (("naive", (0.5, 0.6)), ("ewc", (0.6, 0.8))):
        for seed, acc in enumerate(accs):
            R = [[0.9, 0.0], [2 * acc - 1.0, 1.0]]  # ACC = mean of the last row = acc
            make_run(runs, "class_incremental", strategy, R, [40, 10], seed, 7, depth=None, batches=0,
                     memory_bytes=0)
    records, _ = load_runs(runs)
    text = methods_tables(records, lambda recs: "synthetic")
    rows = {r.split(" | ")[0][2:]: r for r in text.splitlines() if r.startswith("| ") and not r.startswith("| method")}
    assert "| 70.0 ± 14.1 | +15.0 ± 7.1 | no |" in rows["EWC"]
    assert "| 55.0 ± 7.1 | – | – |" in rows["naive"]


def _with(folder, config: dict | None = None, footprint: dict | None = None, activity: dict | None = None):
    """A made run with extra settings, a footprint and a neurobench.json (what runs record since they are kept)."""
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    summary["config"].update(config or {})
    summary["footprint"] = footprint or {}
    path.write_text(json.dumps(summary))
    if activity is not None:
        (folder / "neurobench.json").write_text(json.dumps(activity))
    return folder


def test_the_footprint_tables_put_precisions_side_by_side_and_say_what_a_budget_chose(tmp_path):
    from sccl.report.footprint import budget_table, precision_table
    from sccl.report.records import aggregate

    runs = tmp_path / "runs"
    R, counts = [[0.9, 0.1], [0.8, 0.6]], [40, 10]
    for seed in (0, 1):
        for precision, whole in (("float32", 900_000), ("int8", 300_000)):
            f = make_run(runs, "class_incremental", "latent_replay", R, counts, seed, 7, depth=2, batches=1, stored=10,
                         memory_bytes=1000)
            f = f.rename(f.with_name(f"{f.name}-{precision}"))
            _with(f, {"precision": precision} if precision != "float32" else None,
                  {"whole_learner_bytes": whole, "whole_learner_bytes_batch1": whole // 3})
        f = make_run(runs, "class_incremental", "latent_replay", R, counts, seed, 7, depth=2, batches=1, stored=25,
                     memory_bytes=2000)
        f = f.rename(f.with_name(f"{f.name}-budget"))
        _with(f, {"options": {"budget_bytes": 524_288}}, {"whole_learner_bytes_batch1": 400_000},
              {"synaptic_operations": {"Dense": 21_850_000, "Effective_MACs": 1_000_000, "Effective_ACs": 500_000},
               "training_step": {"synaptic_operations": {"Dense": 1, "Effective_MACs": 250_000,
                                                         "Effective_ACs": 0}}})
    records, notes = load_runs(runs)
    assert not notes
    groups = aggregate(records)
    rows = [line for line in precision_table(groups, "synthetic").splitlines() if line.startswith("| Class")]
    # float32 first, then int8; the budget run has no partner at another precision and is not in this table
    assert [r.split(" | ")[2] for r in rows] == ["float32", "int8"]
    assert rows[0].endswith("| 900,000 | 300,000 |") and rows[1].endswith("| 300,000 | 100,000 |")
    (row,) = [line for line in budget_table(groups, "synthetic").splitlines() if line.startswith("| Class")]
    cells = row.split(" | ")
    # the budget, what the runs chose (depth 2, 1 batch, S = 25), 2 seeds, the whole learner at batch 1, and the
    # effective operations per sample: 1.5 M for inference, 0.25 M for a training step
    assert cells[1:4] == ["524,288", "compressed LR d2 n1 S25 or", "2 × 1"]  # 2 seeds x 1 held-out class
    assert cells[-3:] == ["400,000", "1.50 M", "0.25 M |"]
    # and neither table leaks into the scenario tables, which keep the plain float32 runs without options
    assert all(g["row"]["precision"] == "float32" and not g["runs"][0]["config"].get("options")
               for g in report.paper_groups(groups))
