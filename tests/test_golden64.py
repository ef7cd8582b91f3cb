"""Every CPU gives the float64 golden numbers of a tiny end-to-end run (tests/golden/golden64.json).

Unlike the float32 golden test, this one runs on every machine: in float64 the CPU's kernels change a short run
by ~1e-16, far inside the tolerances (tests/golden/make_golden64.py says how they were measured), while any
change of what is computed moves it by more. Regenerate with ``python tests/golden/make_golden64.py`` when a
change of numbers is intended.
"""

import copy

import pytest
import torch

from sccl.cl.strategies import REGISTRY
from tests.golden.make_golden64 import LOSS_RTOL, RUNS, WEIGHT_RTOL, compare, load, record


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return record(tmp_path_factory.mktemp("golden64"))


def test_this_cpu_gives_the_float64_golden_numbers(fresh):
    differences = compare(load(), fresh)
    assert not differences, "\n".join(differences[:20])
    assert torch.get_default_dtype() == torch.float32  # the float64 runs left the default as it was


def test_the_golden_runs_cover_every_registered_strategy():
    missing = set(REGISTRY) - {strategy for strategy, _ in RUNS}
    assert not missing, f"add a run of {sorted(missing)} to RUNS in tests/golden/make_golden64.py and rerun it"


def _planted(golden: dict, change) -> dict:
    out = copy.deepcopy(golden)
    change(out)
    return out


def test_a_planted_change_of_any_recorded_number_fails(fresh):
    """Each change, alone, is found: a loss moved by 10x the tolerance, the weights by 10x theirs, one accuracy by
    one test sample, a memory size by one byte, a run dropped."""
    golden = load()
    assert compare(golden, fresh) == []

    def loss(g):
        g["runs"][8]["epochs"][1][0] *= 1 + 10 * LOSS_RTOL

    def weights(g):
        g["pretraining"][0][1] *= 1 + 10 * WEIGHT_RTOL

    def accuracy(g):
        g["runs"][2]["summary"]["accuracy_matrix"][1][1] += 1 / 16

    def memory(g):
        g["runs"][3]["summary"]["memory_bytes_stored"] += 1

    def dropped(g):
        del g["runs"][-1]

    for change, expected in ((loss, "si, epoch 2: loss"), (weights, "pretraining, epoch 1: weights"),
                             (accuracy, "rehearsal --rehearsal-batches 1 --rehearsal-subsample 10: summary differ"),
                             (memory, "latent_replay --latent-depth 0 --latent-batches 1: summary differ"),
                             (dropped, "10 runs recorded, 11 now")):
        differences = compare(_planted(golden, change), fresh)
        assert len(differences) == 1 and differences[0].startswith(expected), (change.__name__, differences)


def test_float32_rounding_alone_fails_the_comparison(tmp_path):
    """The same pretraining in float32 differs from the float64 record by more than the loss tolerance: a change
    of the computation as small as one rounding is seen."""
    golden = load()
    now = record(tmp_path, runs_to_do=[], in_float64=False)
    differences = compare({"pretraining": golden["pretraining"], "runs": []}, now)
    assert any("pretraining, epoch 1: loss" in d for d in differences), differences
