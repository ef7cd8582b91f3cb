"""--budget-bytes: latent replay's depth, memory size and compression chosen to fit a learning-state budget."""

import re

import pytest

from sccl.cl.runs import RunConfig
from sccl.cl.scenarios import memory_units
from sccl.cl.strategies import get_strategy
from sccl.core.errors import ConfigError
from sccl.data.shape import DataShape
from sccl.replay.memory import payload_bytes


SHD_SHAPE = DataShape(20, tuple(f"c{i}" for i in range(20)), tuple(range(20)), tuple(range(12)), 700, 12)
LR = get_strategy("latent_replay")


def choose(budget, scenario="class_incremental", **settings):
    cfg = RunConfig.of(scenario, "latent_replay", 7 if scenario == "class_incremental" else None,
                       budget_bytes=budget, **settings)
    notes = LR.resolve_settings(cfg, SHD_SHAPE, 100)
    return cfg, notes


def test_memory_units_per_scenario():
    assert memory_units("class_incremental", SHD_SHAPE) == 19  # every class but the new one
    assert memory_units("sample_incremental", SHD_SHAPE) == 1
    assert memory_units("progressive", SHD_SHAPE) == 19  # 0-9, then 10..18 before the last task (19)
    assert memory_units("progressive", SHD_SHAPE, classes_per_step=4) == 18  # steps 10-13, 14-17, 18-19
    assert memory_units("speakers", SHD_SHAPE) == 6  # speakers 0-5, then 6..10 before the last (11)


def test_payload_bytes_by_hand():
    assert payload_bytes("spikes", "or", 3, 5, 7, 100) == 14  # 105 bits in one flat stream
    assert payload_bytes("spikes", "sum", 3, 5, 10, 100) == 150  # one byte a count
    assert payload_bytes("spikes", "sum", 3, 5, 100, 100) == 188  # uncompressed: binary again, 1,500 bits
    assert payload_bytes("currents", "or", 2, 200, 10, 100) == 16_000


@pytest.mark.parametrize("budget, expected", [
    # class-incremental at the paper's depth 2 and 2 batches of 64 per class: 19 classes x 128 = 2,432 samples
    # of 100 units; w3, v3, w_out (8,500 values) and Adamax state: 12 B each = 102,000 B
    (262_144, (2, 2, 5)),      # 2,432 x 100 x 5 / 8 = 152,000 B fits 160,144; S = 10 (304,000) does not
    (524_288, (2, 2, 10)),     # 304,000 + 102,000 = 406,000; S = 20: 608,000 + 102,000 too much
    (1_048_576, (2, 2, 25)),   # 760,000 + 102,000 = 862,000; S = 50: 1,520,000 + 102,000 too much
    (150_000, (2, 2, 1)),      # S = 1: 30,400 + 102,000; S = 2: 60,800 + 102,000 too much
    (120_000, (2, 1, 1)),      # 2 batches no longer fit at S = 1: 1 batch, 15,200 + 102,000
    (110_000, (3, 2, 5)),      # nothing at depth 2; depth 3: w_out 1,000 x 12 = 12,000, 2,432 x 50 x 5 / 8 = 76,000
])
def test_the_budget_choice_by_hand(budget, expected):
    cfg, notes = choose(budget)
    depth, n, steps = expected
    assert (cfg.options["latent_depth"], cfg.options["replay_batches"]) == (depth, n)
    assert cfg.options["stored_steps"] == (None if steps == 100 else steps)
    used = int(re.search(r"learning state ([\d,]+) B", notes[0]).group(1).replace(",", ""))
    assert used <= budget and len(notes) == 1
    assert cfg.label().startswith(f"latent_replay-class7-d{depth}-n{n}-S{steps}or-budget{budget}")


def test_no_budget_changes_nothing_and_keeps_the_stamp():
    cfg = RunConfig.of("class_incremental", "latent_replay", 7)
    before = cfg.settings()
    assert LR.resolve_settings(cfg, SHD_SHAPE, 100) == [] and cfg.settings() == before
    assert "budget_bytes" not in cfg.options


def test_a_budget_nothing_fits_is_one_clear_error():
    # the least: depth 3, 1 batch (1,216 samples), S = 1: 1,216 x 50 / 8 = 7,600 B + w_out and its state 12,000 B
    with pytest.raises(ConfigError, match="nothing fits; the smallest learning state .* needs 19,600 B"):
        choose(19_599)
    cfg, _ = choose(19_600)
    assert (cfg.options["latent_depth"], cfg.options["replay_batches"], cfg.options["stored_steps"]) == (3, 1, 1)
