"""The README's tuning block: one row per tuning record, read from the tuned-defaults file, checked by the README
check like every other block."""

import json

from sccl.report.readme_check import compare_blocks
from sccl.report.tuning import tuning_table


RECORD = {"method": "ewc", "scenario": "class_incremental", "split": "paper_valid", "seeds": [3, 4],
          "grid": {"ewc_lambda": [0.1, 1.0, 10.0]}, "chosen": {"ewc_lambda": 1.0}, "chosen_mean": 0.6858,
          "chosen_std": 0.0654, "data": {"sha256": "1eda3301c3e59509a323"}, "date": "2026-12-06T20:09:51+00:00",
          "candidates": [{"values": {"ewc_lambda": 0.1}, "mean": 0.5, "std": 0.01},
                         {"values": {"ewc_lambda": 1.0}, "mean": 0.6858, "std": 0.0654},
                         {"values": {"ewc_lambda": 10.0}, "mean": 0.6471, "std": 0.0592}]}


def test_a_record_becomes_a_row_with_its_choice_score_and_runner_up(tmp_path):
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"defaults": {"ewc": {"ewc_lambda": 1.0}}, "runs": [RECORD]}))
    table = tuning_table(path)
    row = ("| ewc | class_incremental | paper_valid, 3,4 | 2 | ewc_lambda 0.1, 1, 10 | ewc_lambda 1 | 68.6 ± 6.5 | "
           "ewc_lambda 10: 64.7 ± 5.9 | 1eda3301c3e5, 2026-12-06 |")
    assert row in table.splitlines()


def test_no_file_or_no_record_gives_no_table(tmp_path):
    assert tuning_table(tmp_path / "missing.json") is None
    (tmp_path / "empty.json").write_text(json.dumps({"defaults": {}, "runs": []}))
    assert tuning_table(tmp_path / "empty.json") is None


def test_the_readme_check_fails_when_a_tuned_choice_changes(tmp_path):
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"runs": [RECORD]}))
    old = tuning_table(path)
    assert compare_blocks("tuning", old, old).ok
    path.write_text(json.dumps({"runs": [{**RECORD, "chosen": {"ewc_lambda": 10.0}}]}))
    assert not compare_blocks("tuning", old, tuning_table(path)).ok
