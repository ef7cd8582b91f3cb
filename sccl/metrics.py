"""Continual-learning metrics: the one definition, used by the runner, the sweeps and the report.

Every run measures the accuracy matrix R (T+1 rows for tasks 0..T, task 0 being the pretraining):
R[i][j] = top-1 accuracy on task j's test samples after training on task i (j > i: a task not learned yet,
still measured). Row 0 is the pretrained model, before anything of task 1 (such as a new readout column).

At step t (after task t; the last step T by default):

* ACC_t = mean over j <= t of R[t][j]: every task learned so far counts once, whatever its size.
* BWT_t = mean over j < t of (R[t][j] - R[j][j]): negative when old tasks were forgotten.
* Forgetting_t = mean over j < t of (max over j <= m < t of R[m][j] - R[t][j]): the best accuracy task j had
  after it was learned and before step t, minus its accuracy now (steps before j was learned do not count).
* At t = 0 nothing is old: BWT_0 and Forgetting_0 are undefined (NaN, shown as "–"; ``null`` in JSON).

Pooled accuracies (sample-weighted over the test samples of a group of tasks), as the per-epoch rows show them:

* old = the tasks before t, new = task t, all = every task of the scenario (including tasks not learned yet:
  in the two-task scenarios, old + new).
* "before" = the model before task t (row t-1), "after" = after it (row t). For two tasks forgetting =
  old before - old after.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy_matrix", "average_accuracy", "backward_transfer", "forgetting", "pooled", "old_new_all",
           "run_metrics"]


def accuracy_matrix(matrix) -> np.ndarray:
    """R as a float array, checked: 2-D, non-empty, at least as many columns as rows (a column per task)."""
    R = np.asarray(matrix, dtype=float)
    if R.ndim != 2 or R.shape[0] == 0 or R.shape[1] < R.shape[0]:
        raise ValueError(f"an accuracy matrix has one row per step and one column per task; got shape {R.shape}")
    return R


def _step(R: np.ndarray, t: int | None) -> int:
    t = R.shape[0] - 1 if t is None else int(t)
    if not 0 <= t < R.shape[0]:
        raise ValueError(f"step {t} is outside the {R.shape[0]} rows of the accuracy matrix")
    return t


def average_accuracy(matrix, t: int | None = None) -> float:
    """ACC_t = mean_{j <= t} R[t][j]."""
    R = accuracy_matrix(matrix)
    t = _step(R, t)
    return float(np.mean(R[t, : t + 1]))


def backward_transfer(matrix, t: int | None = None) -> float:
    """BWT_t = mean_{j < t} (R[t][j] - R[j][j]); NaN at t = 0."""
    R = accuracy_matrix(matrix)
    t = _step(R, t)
    if t == 0:
        return float("nan")
    return float(np.mean([R[t, j] - R[j, j] for j in range(t)]))


def forgetting(matrix, t: int | None = None) -> float:
    """Forgetting_t = mean_{j < t} (max_{j <= m < t} R[m][j] - R[t][j]); NaN at t = 0."""
    R = accuracy_matrix(matrix)
    t = _step(R, t)
    if t == 0:
        return float("nan")
    return float(np.mean([R[j:t, j].max() - R[t, j] for j in range(t)]))


def pooled(correct, counts, tasks) -> float:
    """Sample-weighted accuracy over ``tasks`` from per-task correct and sample counts (NaN when empty)."""
    tasks = list(tasks)
    n = int(np.sum(np.asarray(counts)[tasks])) if tasks else 0
    if n == 0:
        return float("nan")
    return int(np.sum(np.asarray(correct)[tasks])) / n


def old_new_all(correct, counts, t: int) -> dict[str, float]:
    """Pooled old (tasks < t), new (task t) and all (every task) accuracy of one evaluation."""
    return {"old_acc": pooled(correct, counts, range(t)), "new_acc": pooled(correct, counts, [t]),
            "all_acc": pooled(correct, counts, range(len(counts)))}


def correct_counts(matrix, counts) -> np.ndarray:
    """Per-entry correct-sample counts recovered from R (rounded to 6 decimals in files) and the test sizes."""
    return np.rint(accuracy_matrix(matrix) * np.asarray(counts, dtype=float)[None, :]).astype(np.int64)


def run_metrics(matrix, counts) -> dict[str, float]:
    """Everything a run's summary and the report show, at the last step T: ACC, BWT, forgetting, and the pooled
    old / new / all accuracy before (row T-1) and after (row T) the last task."""
    R = accuracy_matrix(matrix)
    T = R.shape[0] - 1
    correct = correct_counts(R, counts)
    after = old_new_all(correct[T], counts, T)
    before = old_new_all(correct[T - 1], counts, T) if T > 0 else {k: float("nan") for k in after}
    return {"acc": average_accuracy(R), "bwt": backward_transfer(R), "forgetting": forgetting(R),
            "old_before": before["old_acc"], "old_after": after["old_acc"], "new_after": after["new_acc"],
            "all_after": after["all_acc"]}
