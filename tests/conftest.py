"""Shared fixtures: tiny SHD-layout files written by the tests themselves; and the fast/slow markers."""

import warnings

import numpy as np
import pytest

from sccl.data.hdf5 import SHDData, write_shd


def random_shd(n: int, seed: int = 0, speakers=None, labels=None, max_time: float = 1.3) -> SHDData:
    """n samples of random spikes; every speaker/label combination cycles unless given."""
    rng = np.random.default_rng(seed)
    times, units = np.empty(n, object), np.empty(n, object)
    for i in range(n):
        k = int(rng.integers(5, 60))
        times[i] = np.sort(rng.uniform(0, max_time, k)).astype(np.float16)
        units[i] = rng.integers(0, 700, k).astype(np.uint16)
    labels = np.arange(n) % 20 if labels is None else np.asarray(labels)
    speakers = (np.arange(n) // 20) % 12 if speakers is None else np.asarray(speakers)
    meta = {"gender": np.array([b"female", b"male"] * 6), "age": np.arange(20, 32, dtype=np.uint16),
            "body_height": np.linspace(1.6, 1.9, 12)}
    return SHDData(times, units, labels, speakers, meta=meta)


@pytest.fixture
def shd_pair(tmp_path):
    """(train_path, test_path, train_data, test_data) of a tiny official-like pair."""
    train = random_shd(240, seed=1)
    test = random_shd(60, seed=2, speakers=np.r_[np.full(40, 4), np.arange(20) % 12])
    write_shd(tmp_path / "shd_train.h5", train)
    write_shd(tmp_path / "shd_test.h5", test)
    return tmp_path / "shd_train.h5", tmp_path / "shd_test.h5", train, test


@pytest.fixture(scope="session")
def embedded_tiny(tmp_path_factory):
    """The tiny embedded dataset, generated and loaded once per session; tests only read it (their runs go to
    their own folders)."""
    from sccl.data.merge import ensure_merged
    from sccl.data.offline import generate_dataset
    from sccl.learn.training import load_dataset

    root = tmp_path_factory.mktemp("embedded_tiny")
    generate_dataset(root, size="tiny", seed=0)
    return load_dataset(ensure_merged(root, quiet=True))


# ---------------------------------------------------------------------------------------------------------------
# Markers: every test is either `fast` (python -m pytest -m fast: the inner loop, under a minute on 2 cores) or
# `slow` (-m slow: the end-to-end runs). A plain `python -m pytest` runs both. A test (or module, via pytestmark)
# that sets one of them keeps it; any other test is slow when it is named below, fast otherwise. Chosen from a full
# run's --durations=0 on the 2-core dev machine (seconds in the comments: setup + call of that run); a module-scoped
# fixture is paid by the first test that uses it, so an expensive one is named in SLOW_FIXTURES instead of its tests.
# The session's embedded_tiny dataset (~5 s to generate) is left to the fast tests: many quick error-message tests
# need it.

#: test files (every test in them), or file::test_function (every parametrization of it)
SLOW = {
    "test_reproduce.py",  # 51: reproduce.py's whole smoke run in a subprocess
    "test_launch.py",  # 58: submitit end to end 23, two jobs at once 22, the rest each a CLI in a subprocess 1.5-4.9
    "test_audio.py::test_builtin_cochlea_matches_lauscher_on_a_vowel",  # 25: the lauscher calibration
    "test_audio_speech.py::test_lauscher_reproduces_its_golden_entry",  # 37: the lauscher calibration
    "test_audio_speech.py::test_corpus_maker_still_makes_the_golden_corpus",  # 5.6: speech synthesis of the corpus
    "test_golden64.py::test_float32_rounding_alone_fails_the_comparison",  # 6.1: a float32 golden run
    "test_hostile.py::test_sigkill_while_generating_then_the_rerun_regenerates",  # 1.0: kill tests
    "test_hostile.py::test_a_failing_sbatch_is_one_error_line_and_leaves_no_submission_files",  # 1.6: subprocess
    "test_merge.py::test_interrupted_merge_script_leaves_no_file",  # 10: kills the merge script
    "test_pretraining.py",  # 19: pretrainings (testsuite script 8.3, resume 3.0, same seed 2.6), CLIs in subprocesses
    "test_any_layout.py::test_report_of_a_ten_class_run_names_ten_classes",  # 5.3: pretraining + run + report
    "test_any_layout.py::test_a_sweep_without_the_data_expands_named_ids_and_refuses_all_in_one_line",  # 4.7
    "test_any_layout.py::test_every_scenario_on_ten_classes_six_speakers",  # 5.6 (4): pretraining + run each
    "test_any_layout.py::test_thirty_five_classes_through_the_command_lines",  # 1.3: the CLIs end to end
    "test_ssc_layout.py::test_a_sweep_passes_max_time_to_the_pretraining_it_starts",  # 1.8: a sweep in a subprocess
    "test_regularizers.py::test_each_runs_through_the_engine_over_ten_new_classes",  # 10 (3) + 0.5 pretraining
    "test_projection.py::test_each_variant_runs_through_the_engine",  # 3.5 (3) + 0.6 pretraining
    "test_tune.py::test_a_tiny_tuning_writes_its_record_and_the_defaults_table_reads_the_choice",  # 8.9: a tuning
    "test_strategy_plugin.py::test_one_new_file_is_a_registered_strategy_with_flags_and_hooks",  # 1.7: subprocess
    "test_sweep_validation.py::test_a_bad_value_from_the_command_line_prints_no_other_parser_s_usage",  # 2: subprocess
    "test_audio_converter.py::test_spikes_do_not_depend_on_the_other_files_or_the_workers",  # 0.9: converts twice
    "test_audio_converter.py::test_the_numpy_engine_writes_the_same_files",  # 0.8: converts with both engines
}

#: file::fixture of module-scoped fixtures that pretrain or generate: every test that uses one is slow
SLOW_FIXTURES = {
    "test_engine.py::world",  # 8.4: the tiny dataset and 4 pretrainings (its tests: 110 s in all)
    "test_hostile.py::world",  # 6.5: the tiny dataset and a pretraining (its tests: 60 s; kill tests up to 10)
    "test_combinations.py::world",  # ~1.3 pretraining (its setup 6.3 with embedded_tiny); runs 0.6-1.9
    "test_offline.py::tiny",  # 5.5: generates the tiny dataset; its tests 5.4 and 5.0 more
    "test_ssc_layout.py::ssc_runs",  # 5.8: a pretraining and two runs on SSC
    "test_golden.py::results",  # 21: every golden run
    "test_golden64.py::fresh",  # 18: the float64 golden runs
}


def _slow_keys(item) -> set[str]:
    file = item.path.name
    keys = {file, f"{file}::{getattr(item, 'originalname', item.name)}", f"{file}::{item.name}"}
    return keys | {f"{file}::{f}" for f in getattr(item, "fixturenames", ())}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    used = set()
    for item in items:
        have = {m.name for m in item.iter_markers() if m.name in ("fast", "slow")}
        if len(have) == 2:
            raise pytest.UsageError(f"{item.nodeid} is marked both fast and slow")
        if have:
            continue
        hits = _slow_keys(item) & (SLOW | SLOW_FIXTURES)
        used |= hits
        item.add_marker(pytest.mark.slow if hits else pytest.mark.fast)
    # a renamed test or fixture would silently turn fast: check the names when whole files were collected
    if not any("::" in a for a in config.args):
        files = {item.path.name for item in items}
        stale = sorted(k for k in SLOW | SLOW_FIXTURES if k.split("::")[0] in files and k not in used)
        if stale:
            warnings.warn(pytest.PytestWarning(f"tests/conftest.py names no collected test or fixture: {stale}"))
