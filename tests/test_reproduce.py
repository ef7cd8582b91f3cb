"""reproduce.py end to end at the smallest sizes: data, pretraining, every protocol, report and figures."""

import subprocess
import sys
from pathlib import Path

from sccl.core.results import read_csv


ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["fig5a_accuracy_vs_epoch", "fig5b_accuracy_vs_depth", "accuracy_vs_memory", "fig6_progressive",
           "raster_compression"]


def test_smoke_run_writes_summary_report_and_every_figure(tmp_path):
    cmd = [sys.executable, str(ROOT / "reproduce.py"), "--smoke", "--data-dir", str(tmp_path / "no_shd_here"),
           "--offline-dir", str(tmp_path / "offline"), "--results-dir", str(tmp_path / "results"), "--jobs", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "synthetic SHD-format data, not SHD" in r.stdout
    results = tmp_path / "results"
    rows = read_csv(results / "summary.csv")
    scenarios = {row["scenario"] for row in rows}
    assert scenarios == {"sample_incremental", "class_incremental", "progressive", "speakers"}
    assert {row["strategy"] for row in rows if row["scenario"] == "sample_incremental"} == {
        "naive", "rehearsal", "latent_replay"}
    assert any(row["compression"] == "or" for row in rows if row["scenario"] == "sample_incremental")
    report = (results / "REPORT.md").read_text()
    assert "synthetic SHD-format data, not SHD" in report and "Configuration: smoke" in report
    for name in FIGURES:
        for ext in ("png", "pdf"):
            f = results / "figures" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    assert (results / "figures" / "fig5a_accuracy_vs_epoch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rerunning skips everything that is finished
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0 and "to run" in r2.stdout
    assert all(" 0 to run" in line for line in r2.stdout.splitlines() if " to run" in line)
