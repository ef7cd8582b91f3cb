"""reproduce.py's configurations fitted to the data file (sccl.jobs.study_fit): ids, first groups, batch sizes."""

import sys
from pathlib import Path

import numpy as np
import pytest

from sccl.core.errors import ConfigError
from sccl.data.provenance import LAYOUT_PREFIX, data_label
from sccl.jobs.study_fit import _scenario_sizes, fit_to_data


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from reproduce import CONFIGS, grid_replay_batches  # noqa: E402


QUICK = CONFIGS["quick"]
REPLAY = grid_replay_batches(QUICK)  # the most replay batches a run of each scenario stores


def corpus(nb_classes: int, speakers, reps: int):
    """labels and speakers of ``reps`` samples per (speaker, class)."""
    pairs = [(s, c) for s in speakers for c in range(nb_classes) for _ in range(reps)]
    return np.array([c for _, c in pairs]), np.array([s for s, _ in pairs])


def test_a_mid_sized_user_corpus_keeps_the_batches_and_moves_only_the_speakers_group():
    labels, speakers = corpus(10, range(6), 30)  # 10 words x 6 speakers x 30 samples
    conf, notes = fit_to_data(QUICK, labels, speakers, None, [0, 1, 2], REPLAY)
    assert [conf[s]["batch_size"] for s in ("sample_incremental", "class_incremental", "progressive", "speakers")] \
        == [64] * 4
    # speakers 0-5 are all six: nobody would arrive, so the first half of the file's speakers comes first
    assert conf["speakers"]["first_speakers"] == "0-2"
    assert notes == ["speakers: first speakers 0-5 leave none to arrive of the data's speakers 0-5; 0-2 first instead"]
    assert QUICK["speakers"]["first_speakers"] == "0-5"  # the configuration itself is untouched


def test_missing_held_out_ids_become_the_middle_of_the_file_s():
    labels, speakers = corpus(5, range(10, 16), 30)  # no speaker 3, no class 7
    conf, notes = fit_to_data(QUICK, labels, speakers, None, [0], REPLAY)
    assert conf["sample_incremental"]["ids"] == "13" and conf["class_incremental"]["ids"] == "2"
    assert "sample_incremental: the data has no speaker 3; speaker 13 is held out instead" in notes
    assert "class_incremental: the data has no class 7; class 2 is held out instead" in notes
    assert conf["speakers"]["first_speakers"] == "10-12"


def test_a_small_corpus_gets_the_largest_batch_every_run_fills():
    labels, speakers = corpus(10, range(6), 4)
    seeds = [0, 1, 2]
    conf, notes = fit_to_data(QUICK, labels, speakers, None, seeds, REPLAY)
    sc = conf["class_incremental"]
    b = sc["batch_size"]
    assert b < 64 and b & (b - 1) == 0  # a power of two below the configured 64
    new_sizes, pools = _scenario_sizes("class_incremental", "paper", labels, speakers, None, seeds, [7], None)
    # by hand: one new-class batch and one replay batch per old class (the grids' most) must fit; twice b must not
    assert min(new_sizes) >= b and min(pools) >= b and (min(new_sizes) < 2 * b or min(pools) < 2 * b)
    assert any(line.startswith(f"class_incremental: batch size 64 -> {b} (the smallest new task holds "
                               f"{min(new_sizes)} training samples") for line in notes)


def test_a_configured_size_that_fits_is_kept_even_if_not_a_power_of_two():
    labels, speakers = corpus(10, range(6), 30)
    conf = {k: {**v, "batch_size": 48} if isinstance(v, dict) else v for k, v in QUICK.items()}
    fitted, notes = fit_to_data(conf, labels, speakers, None, [0], REPLAY)
    assert fitted["class_incremental"]["batch_size"] == 48 and not any("batch size" in n for n in notes)


def test_data_too_small_for_any_batch_is_one_clear_error():
    labels, speakers = corpus(4, range(2), 1)
    with pytest.raises(ConfigError, match="the data is too small for this study"):
        fit_to_data(QUICK, labels, speakers, None, [0], REPLAY)


def test_the_most_replay_batches_of_the_quick_grids():
    """The sample-incremental grids store at most 8 latent batches (rehearsal 4), the class-incremental ones 1 per
    class (fewer-step replay's through its --set too), progressive 1, speakers 2."""
    assert REPLAY == {"sample_incremental": 8, "class_incremental": 1, "progressive": 1, "speakers": 2}


def test_a_description_that_already_says_shd_layout_is_not_prefixed_twice(tmp_path):
    label = data_label({"description": f"{LAYOUT_PREFIX}my digits (recordings from wavs)"}, tmp_path / "x.h5")
    assert label == f"{LAYOUT_PREFIX}my digits (recordings from wavs)"
    assert label.count(LAYOUT_PREFIX) == 1


def test_a_sweep_whose_batch_does_not_fit_the_data_stops_before_anything_runs(tmp_path, capsys):
    from sccl.cli.cl_sweep import main as sweep_main
    from sccl.core.entry import run_cli
    from tests.test_any_layout import write_pair

    write_pair(tmp_path / "data", 10, range(6), reps=3)  # 6 speakers x 3 samples of each new class
    argv = ["--scenario", "class_incremental", "--classes", "7", "--strategies", "naive", "--batch-size", "64",
            "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "runs")]
    assert run_cli(lambda a: sweep_main(a, scenario="class_incremental"), argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: class_incremental run naive-class7-seed0: --batch-size 64 "
                                               "does not fit this data (the smallest new task holds ")
    assert err[0].endswith("or smaller") and not (tmp_path / "runs").exists()
    run_cli(lambda a: sweep_main(a, scenario="class_incremental"), argv + ["--dry-run"])
    out = capsys.readouterr().out
    assert "[dry run] these runs would stop at once: class_incremental run naive-class7-seed0" in out
    assert "would run:" in out and not (tmp_path / "runs").exists()
