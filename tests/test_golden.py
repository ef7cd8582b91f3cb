"""The entry-point scripts give the golden numbers recorded before the engine refactor (tests/golden/), in float32,
on a machine with the recorded numerics fingerprint (elsewhere skipped: tests/test_golden64.py checks every CPU)."""

import math
from pathlib import Path

import pytest

from sccl.core.numerics import capability, describe, fingerprint
from tests.golden.make_golden import load_golden, make_world, record_runs


COMPARED = ("loss", "old_acc", "new_acc", "all_acc", "memory_bits", "memory_bytes")


def golden_runs() -> list[dict]:
    """The runs recorded on a machine with this one's float32 numerics (skip, saying why, where none was)."""
    records = load_golden()
    if fingerprint() not in records:
        known = "; ".join(r["numerics"] for r in records.values())
        pytest.skip(f"no float32 golden numbers for this CPU's {describe()} (recorded for: {known}); "
                    "tests/test_golden64.py checks this CPU in float64, and python tests/golden/make_golden.py "
                    "records float32 numbers from a trusted commit")
    return records[fingerprint()]["runs"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    golden_runs()
    data, runs = make_world(tmp_path_factory.mktemp("golden"))
    return record_runs(data, runs)


def _same(a, b) -> bool:
    """Equal numbers; NaN (old files) and null (strict JSON) both mean "undefined"."""
    if a is None or b is None or a == "nan" or b == "nan":
        return {str(a).lower(), str(b).lower()} <= {"none", "nan"}
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    fa, fb = float(a), float(b)
    return fa == fb or (math.isnan(fa) and math.isnan(fb))


def test_every_golden_run_gives_the_same_numbers(results):
    golden = golden_runs()
    assert [(g["script"], g["argv"]) for g in golden] == [(r["script"], r["argv"]) for r in results]
    for g, r in zip(golden, results):
        name = f"{g['script']} {' '.join(g['argv'])}"
        # the progressive runs had no epoch-0 rows; every golden row must be there with the same numbers
        now = {(row.get("task", "1"), row["epoch"]): row for row in r["epochs"]}
        for row in g["epochs"]:
            key = (row.get("task", "1"), row["epoch"])
            assert key in now, f"{name}: no row for task/epoch {key}"
            for column in COMPARED:
                assert _same(row[column], now[key][column]), f"{name} {key} {column}: {row[column]} != {now[key][column]}"
        for key, value in g["summary"].items():
            assert key in r["summary"], f"{name}: summary lost {key}"
            assert _same(value, r["summary"][key]), f"{name}: {key} {value} != {r['summary'][key]}"


def test_the_golden_file_covers_every_strategy_in_every_old_scenario():
    for record in load_golden().values():
        _covers_every_strategy(record["runs"])


def test_a_fingerprint_is_the_same_twice_and_depends_only_on_torch():
    assert fingerprint() == fingerprint()
    assert len(fingerprint()) == 12


def test_the_fingerprint_hashes_the_cpu_capability(monkeypatch):
    """Kernels chosen by capability (ATEN_CPU_CAPABILITY=avx2 on an AVX-512 CPU) may round the fingerprint's short
    computation alike and a run's differently: the capability's name is hashed too."""
    from sccl.core import numerics

    here = fingerprint()
    monkeypatch.setattr(numerics, "capability", lambda: "AVX2" if capability() != "AVX2" else "AVX512")
    assert fingerprint() != here


def _covers_every_strategy(golden):
    scripts = {Path(g["script"]).parent.name + "/" + Path(g["script"]).stem for g in golden}
    for folder in ("sample_incremental", "class_incremental"):
        for strategy in ("naive", "rehearsal", "latent_replay", "latent_replay_subsampled"):
            assert f"{folder}/{strategy}" in scripts
    assert "class_incremental_multiclasses/progressive" in scripts
