"""Result files: strict JSON (no NaN or Infinity tokens), atomic writes."""

import json

import pytest

from sccl.core.results import read_json, write_json


def test_json_output_is_strict_and_undefined_numbers_are_null(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"acc": 0.5, "bwt": float("nan"), "lr": float("inf"), "rows": [float("-inf"), 1]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard token {token}"))
    assert strict == {"acc": 0.5, "bwt": None, "lr": None, "rows": [None, 1]}
    assert read_json(path) == strict
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left
