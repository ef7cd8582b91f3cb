"""A study configuration (reproduce.py's ``CONFIGS``) fitted to the data file it runs on.

The configurations name SHD's ids (speaker 3 and class 7 held out, speakers 0-5 first) and batches of 64. A user's
SHD-layout file may lack those ids or hold too few samples per speaker or class for such batches; its runs would
then fail one by one. :func:`fit_to_data` checks every scenario of the configuration against the file before
anything runs and returns the configuration to use, with one line per change:

* a held-out id the file lacks becomes the middle one of the file's speakers (classes);
* a first speaker group that the file lacks, or that leaves no speaker to arrive, becomes the first half of the
  file's speakers;
* a scenario's batch size, where some run of its grids could not fill it for some seed, becomes the largest
  power of two below it that every run fills: one batch of each new task's training set, and the replay
  memory's batches from every task a later one follows (per class in the class scenarios). If not even a batch
  of 1 fits, a clear error.

On the embedded demo data and on SHD nothing changes (no line is printed).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from sccl.cl.scenarios import from_split
from sccl.core.errors import ConfigError
from sccl.data.shape import first_half, format_ids
from sccl.data.splits import make_split
from sccl.jobs.sweep import parse_int_list
from sccl.learn.training import _read_sample_info


TWO_TASK = {"sample_incremental": ("speaker", "ids"), "class_incremental": ("class", "ids")}
CLASS_SCENARIOS = ("class_incremental", "progressive")


def _ids(text: str) -> list[int]:
    return parse_int_list(text, 0, 10**6, "id")


def _largest_fitting_batch(limit: int, new_sizes: list[int], pools: list[int], replay: int) -> int:
    """``limit`` when one batch of it fits in every new task and ``replay`` batches in every replay pool, else the
    largest power of two below it that fits (0 when none does)."""
    def fits(b: int) -> bool:
        return all(n >= b for n in new_sizes) and all(p >= replay * b for p in pools)

    if fits(limit):
        return limit
    b = 1 << (limit.bit_length() - 1)
    b = b // 2 if b == limit else b
    while b >= 1 and not fits(b):
        b //= 2
    return b


def _scenario_sizes(scenario: str, split_kind: str, labels, speakers, source, seeds, held: list, first_speakers,
                    first_classes=None, classes_per_step: int = 1):
    """(new tasks' training sizes, replay pools' sizes) over every seed and held-out id of one scenario."""
    new_sizes, pools = [], []
    for seed in seeds:
        for h in held:
            split = make_split(scenario, h, labels, speakers, source, kind=split_kind, seed=seed,
                               first_speakers=first_speakers, first_classes=first_classes,
                               classes_per_step=classes_per_step)
            tasks = from_split(split).tasks
            new_sizes += [len(t.train) for t in tasks[1:]]
            for task in tasks[:-1]:  # a memory is drawn from every task a later one follows
                if scenario in CLASS_SCENARIOS:  # per class
                    pools += [int(np.sum(labels[task.train] == c)) for c in np.unique(labels[task.train])]
                else:
                    pools.append(len(task.train))
    return new_sizes, pools


def fit_to_data(conf: dict, labels: np.ndarray, speakers: np.ndarray, source, seeds: list[int],
                replay: dict[str, int], split_kind: str = "paper") -> tuple[dict, list[str]]:
    """(the configuration fitted to the file's labels and speakers, one line per change); ``replay``: per
    scenario, the most replay batches a run stores (its batch size must fill them)."""
    conf = copy.deepcopy(conf)
    notes: list[str] = []
    present = {"speaker": sorted(int(s) for s in np.unique(speakers)),
               "class": sorted(int(c) for c in np.unique(labels))}
    for scenario, (what, key) in TWO_TASK.items():
        sc = conf[scenario]
        wanted = _ids(sc[key])
        if not set(wanted) <= set(present[what]):
            middle = present[what][len(present[what]) // 2]
            notes.append(f"{scenario}: the data has no {what} {format_ids(sorted(set(wanted) - set(present[what])))}"
                         f"; {what} {middle} is held out instead")
            sc[key] = str(middle)
    sp = conf["speakers"]
    first = tuple(_ids(sp["first_speakers"]))
    if not set(first) <= set(present["speaker"]) or not set(present["speaker"]) - set(first):
        fitted = first_half(present["speaker"])
        why = ("are not all among" if not set(first) <= set(present["speaker"]) else "leave none to arrive of")
        notes.append(f"speakers: first speakers {format_ids(first)} {why} the data's speakers "
                     f"{format_ids(present['speaker'])}; {format_ids(fitted)} first instead")
        sp["first_speakers"] = format_ids(fitted)
    for scenario in ("sample_incremental", "class_incremental", "progressive", "speakers"):
        sc = conf[scenario]
        held = [int(i) for i in _ids(sc["ids"])] if scenario in TWO_TASK else [None]
        first_group = tuple(_ids(sp["first_speakers"])) if scenario == "speakers" else None
        try:
            new_sizes, pools = _scenario_sizes(scenario, split_kind, labels, speakers, source, seeds, held,
                                               first_group)
        except ConfigError as e:
            raise ConfigError(f"{scenario}: {e}") from None
        b = _largest_fitting_batch(sc["batch_size"], new_sizes, pools, replay[scenario])
        if b == 0:
            raise ConfigError(f"{scenario}: the data is too small for this study: the smallest new task holds "
                              f"{min(new_sizes)} training samples and the smallest replay pool {min(pools)} for "
                              f"{replay[scenario]} replay batch(es); run fewer --stages or bring more samples")
        if b != sc["batch_size"]:
            notes.append(f"{scenario}: batch size {sc['batch_size']} -> {b} (the smallest new task holds "
                         f"{min(new_sizes)} training samples, the smallest replay pool {min(pools)} for "
                         f"{replay[scenario]} replay batch(es))")
            sc["batch_size"] = b
    return conf, notes


def check_runs_fit(configs, data_file: Path) -> None:
    """One clear error, before a sweep launches anything, when some run's batch size does not fit the data: one
    batch of every new task (unless it keeps the last incomplete batch) and its replay batches from every task a
    later one follows; it names the largest batch size every run of that kind would fill."""
    labels, speakers, source = read_labels_and_speakers(data_file)
    sizes: dict = {}
    for cfg in configs:
        key = (cfg.scenario, cfg.split, cfg.held_out, cfg.seed, cfg.first_speakers, cfg.first_classes,
               cfg.classes_per_step)
        if key not in sizes:
            try:
                sizes[key] = _scenario_sizes(cfg.scenario, cfg.split, labels, speakers, source, [cfg.seed],
                                             [cfg.held_out], cfg.first_speakers, cfg.first_classes,
                                             cfg.classes_per_step)
            except ConfigError:
                continue  # the run itself says why its split cannot be made
        new_sizes, pools = sizes[key]
        new_sizes = [] if cfg.keep_last else new_sizes
        replay = cfg.options.get("replay_batches", 0)
        if _largest_fitting_batch(cfg.batch_size, new_sizes, pools, replay) == cfg.batch_size:
            continue
        fit = _largest_fitting_batch(cfg.batch_size, new_sizes, pools, replay)
        what = (f"the smallest new task holds {min(new_sizes)} training samples" if new_sizes else "")
        if replay:
            what += (", and " if what else "") + (f"the smallest replay pool {min(pools)} for {replay} replay "
                                                  f"batch(es)")
        advice = f"use --batch-size {fit} or smaller" if fit else "bring more samples or use fewer replay batches"
        raise ConfigError(f"{cfg.scenario} run {cfg.label()}: --batch-size {cfg.batch_size} does not fit this data "
                          f"({what}); {advice}")


def read_labels_and_speakers(data_file: Path):
    """(labels, speakers, source) of a merged SHD-layout file, without its spikes."""
    labels, speakers, source, *_ = _read_sample_info(Path(data_file))
    return labels, speakers, source
