"""The results report: summary.csv, REPORT.md tables, figures, metric formulas, skipped figures.

A tiny world (synthetic SHD-format data, a few short runs of every protocol) is built once per module."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from sccl import report
from sccl.continual import CLConfig, run_continual
from sccl.merge import ensure_merged
from sccl.offline import generate_dataset
from sccl.pretraining import PretrainConfig, pretrain
from sccl.progressive import ProgressiveConfig, run_progressive
from sccl.results import read_csv, read_json
from sccl.training import load_dataset

PROTOCOL_DIRS = {"sample_incremental": "sample_incremental", "class_incremental": "class_incremental",
                 "progressive": "class_incremental_multiclasses"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_world")
    generate_dataset(root / "data", size="tiny")
    ds = load_dataset(ensure_merged(root / "data", quiet=True))
    results = root / "results"
    runs = results / "runs"
    common = dict(epochs=2, quiet=True, threads=1)

    pre = pretrain(PretrainConfig("speaker", 3, epochs=1, batch_size=16, quiet=True), ds, runs)
    speaker = dict(scenario="speaker", held_out=3, batch_size=16, **common)
    run_continual(CLConfig(strategy="naive", **speaker), ds, runs)
    run_continual(CLConfig(strategy="rehearsal", replay_batches=1, **speaker), ds, runs)
    run_continual(CLConfig(strategy="latent_replay", latent_depth=1, replay_batches=2, **speaker), ds, runs)
    for seed in (0, 1):  # two seeds of one config (seed 1 starts from the seed-0 model)
        run_continual(CLConfig(strategy="latent_replay_subsampled", latent_depth=1, replay_batches=2, stored_steps=10,
                               lr=1e-3, seed=seed, pretrained=str(pre), **speaker), ds, runs)

    pretrain(PretrainConfig("class", 7, epochs=1, batch_size=16, quiet=True), ds, runs)
    klass = dict(scenario="class", held_out=7, batch_size=8, **common)
    run_continual(CLConfig(strategy="naive", **klass), ds, runs)
    run_continual(CLConfig(strategy="latent_replay_subsampled", latent_depth=2, replay_batches=1, stored_steps=10,
                           **klass), ds, runs)

    pretrain(PretrainConfig("classes", None, epochs=1, batch_size=16, quiet=True), ds, runs)
    run_progressive(ProgressiveConfig(latent_depth=2, latent_batches=1, epochs=1, batch_size=4, quiet=True), ds, runs)

    out = report.build_report(results, title_note="tiny world for the report tests")
    return {"results": results, "runs": runs, "out": out}


def _summaries(runs: Path) -> dict:
    found = {}
    for protocol, sub in PROTOCOL_DIRS.items():
        for path in sorted((runs / sub).glob("*/summary.json")):
            found[(protocol, path.parent.name)] = read_json(path)
    return found


def test_summary_csv_one_row_per_run_with_the_runs_numbers(world):
    rows = read_csv(world["results"] / "summary.csv")
    summaries = _summaries(world["runs"])
    assert len(rows) == len(summaries) == world["out"]["runs"] == 8
    assert list(rows[0]) == report.SUMMARY_COLUMNS
    assert {(r["protocol"], r["run"]) for r in rows} == set(summaries)
    for r in rows:
        s = summaries[(r["protocol"], r["run"])]
        assert r["data"] == report.SYNTHETIC_LABEL
        assert int(r["seed"]) == s["config"]["seed"]
        assert int(r["memory_bits"]) == s["memory_bits_analytic"]
        assert int(r["memory_bytes"]) == s["memory_bytes_stored"]
        assert float(r["memory_kb"]) == pytest.approx(s["memory_bytes_stored"] / 1000)
        assert float(r["seconds"]) == s["wall_seconds"]
        if r["protocol"] == "progressive":
            R = s["accuracy_matrix"]
            assert r["id"] == ""
            assert float(r["all_after"]) == s["final_accuracy_all_classes"]
            assert float(r["average_accuracy"]) == pytest.approx(s["average_accuracy"][-1], abs=1e-6)
            assert float(r["forgetting"]) == pytest.approx(s["forgetting"][-1], abs=1e-6)
            assert float(r["old_before"]) == R[0][0] and float(r["old_after"]) == R[-1][0]
        else:
            c = s["config"]
            assert r["strategy"] == c["strategy"] and int(r["id"]) == c["held_out"]
            assert float(r["old_before"]) == s["before"]["old_acc"]
            assert float(r["old_after"]) == s["final"]["old_acc"]
            assert float(r["new_after"]) == s["final"]["new_acc"]
            assert float(r["all_after"]) == s["final"]["all_acc"]
            assert float(r["forgetting"]) == s["forgetting"]
            assert float(r["backward_transfer"]) == pytest.approx(s["final"]["old_acc"] - s["before"]["old_acc"],
                                                                abs=1e-6)
            assert float(r["average_accuracy"]) == pytest.approx((s["final"]["old_acc"] + s["final"]["new_acc"]) / 2,
                                                               abs=1e-6)
            assert int(r["replay_samples"]) == s["samples"]["replay"]
            if c["strategy"] == "latent_replay_subsampled":
                assert (int(r["depth"]), int(r["stored_steps"]), r["compression"]) == (c["latent_depth"], 10, "or")
            if c["strategy"] == "naive":
                assert r["depth"] == "" and r["compression"] == "none" and float(r["memory_kb"]) == 0


def test_report_has_the_tables_and_the_synthetic_label(world):
    text = (world["results"] / "REPORT.md").read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# ") and report.SYNTHETIC_LABEL in lines[0]
    assert lines[2] == "tiny world for the report tests"
    for heading in [l for l in lines if l.startswith("## ")]:
        assert report.SYNTHETIC_LABEL in heading, heading
    captions = [l for l in lines if l.startswith("**Table ")]
    assert len(captions) >= 7
    for caption in captions:
        assert report.SYNTHETIC_LABEL in caption, caption
    for needle in ("Sample-incremental (new speaker)", "Class-incremental (new class)",
                   "Compressed vs uncompressed latent replay", "Accuracy matrix R[i][j]",
                   "Continual-learning metrics per strategy", "memory KB", "memory ratio", "10.0×",
                   "BWT_T = mean_{j < T}", "| compressed LR | 1 | 2 | 32 | 10 (or) | 2 × 1 |"):
        assert needle in text, needle
    assert report.METRIC_DEFINITIONS in text
    assert "skipped" not in text  # every figure had its data
    for name in report.FIGURES:
        assert f"figures/{name}.png" in text


def test_mean_and_std_over_two_seeds_in_the_report(world):
    summaries = [s for (p, _), s in _summaries(world["runs"]).items()
                 if p == "sample_incremental" and s["config"]["strategy"] == "latent_replay_subsampled"]
    assert sorted(s["config"]["seed"] for s in summaries) == [0, 1]
    values = [s["final"]["all_acc"] for s in summaries]
    mean, std = np.mean(values), np.std(values, ddof=1)
    expected = f"{100 * mean:.2f} ± {100 * std:.2f}"
    row = next(l for l in (world["results"] / "REPORT.md").read_text().splitlines()
               if l.startswith("| compressed LR | 1 | 2 | 32 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[9] == expected  # the "all after" column
    # the memory of both seeds is the same: 2 batches x 16 latents x 200 units x 10 steps x 1 bit = 8,000 B
    assert cells[11] == "8.000"


def test_every_figure_is_a_non_empty_png_and_pdf(world):
    out = world["out"]
    assert out["skipped"] == {}
    fig_dir = world["results"] / "figures"
    for name in report.FIGURES:
        png, pdf = fig_dir / f"{name}.png", fig_dir / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000, name
        assert png in out["figures"] and pdf in out["figures"]
    assert not list(fig_dir.glob("*.tmp*"))
    assert set(out["files"]) == {out["summary_csv"], out["report"], *out["figures"]}


def test_raster_figure_at_depth_0_and_3(world, tmp_path):
    pre = world["runs"] / "pretrain" / "paper" / "speaker3_seed0"
    for depth, S in ((0, 20), (3, 5)):
        written = report.raster_figure(pre, tmp_path / f"raster_d{depth}", depth=depth, stored_steps=S, sample=5)
        assert [p.suffix for p in written] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in written)


def test_metric_formulas_on_a_hand_made_matrix():
    R = [[0.90, 0.00, 0.10],
         [0.95, 0.80, 0.00],
         [0.60, 0.50, 0.90]]
    m = report.matrix_metrics(R)
    assert m["average_accuracy"] == pytest.approx((0.60 + 0.50 + 0.90) / 3)
    assert m["backward_transfer"] == pytest.approx(((0.60 - 0.90) + (0.50 - 0.80)) / 2)
    assert m["forgetting"] == pytest.approx(((0.95 - 0.60) + (0.80 - 0.50)) / 2)  # best after learning - last
    m1 = report.matrix_metrics(R, 1)
    assert (m1["average_accuracy"], m1["backward_transfer"], m1["forgetting"]) == pytest.approx(
        ((0.95 + 0.80) / 2, 0.05, -0.05))
    m0 = report.matrix_metrics(R, 0)
    assert m0["average_accuracy"] == 0.90 and math.isnan(m0["backward_transfer"]) and math.isnan(m0["forgetting"])
    t = report.two_task_metrics(old_before=0.9, old_after=0.7, new_after=0.5)
    assert t == pytest.approx({"average_accuracy": 0.6, "forgetting": 0.2, "backward_transfer": -0.2})
    with pytest.raises(ValueError):
        report.matrix_metrics(R, 3)


def test_seed_mean_std_averages_ids_first():
    def rec(seed, id_, v):
        return {"row": {"seed": seed, "id": id_, "all_after": v}}

    recs = [rec(0, 1, 0.2), rec(0, 2, 0.4), rec(1, 1, 0.5), rec(1, 2, float("nan"))]
    mean, std, n = report.seed_mean_std(recs, "all_after")
    assert (mean, std, n) == pytest.approx((0.4, math.sqrt(0.02), 2))
    mean, std, n = report.seed_mean_std(recs[:2], "all_after")
    assert mean == pytest.approx(0.3) and math.isnan(std) and n == 1


def test_missing_data_skips_figures_with_a_note(world, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(world["runs"] / "sample_incremental", runs / "sample_incremental")
    out = report.build_report(tmp_path / "res", runs_dir=runs)
    text = out["report"].read_text()
    assert set(out["skipped"]) == {"fig6_progressive", "raster_compression"}
    assert "Fig. 6: progressive accuracy after each new class**: skipped — no progressive runs" in text
    assert "No finished progressive runs." in text and "No finished class-incremental runs." in text
    assert (tmp_path / "res" / "figures" / "fig5a_accuracy_vs_epoch.png").is_file()
    assert not (tmp_path / "res" / "figures" / "fig6_progressive.png").exists()
    assert len(read_csv(out["summary_csv"])) == 5


def test_cli_on_an_empty_runs_folder(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert report.main(["--results-dir", str(tmp_path), "--title-note", "nothing yet"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "nothing yet" in text and report.SYNTHETIC_LABEL not in text.split("## Metrics")[0]
    assert all("skipped" in l for l in text.splitlines() if l.startswith("**Fig") or l.startswith("**Spike")
               or l.startswith("**Final"))
    assert (tmp_path / "summary.csv").read_text().strip() == ",".join(report.SUMMARY_COLUMNS)
    assert report.main(["--results-dir", str(tmp_path / "nowhere")]) == 2
