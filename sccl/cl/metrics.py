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

Over the whole sequence:

* AIA = mean over t = 0..T of ACC_t, the average incremental accuracy (Rebuffi et al., 2017). Step 0, the
  pretrained model, counts as a step: it is where every run of a scenario starts, and without it a two-task run's
  AIA would be its ACC.
* FWT = mean over j >= 1 of (R[j-1][j] - b_j), forward transfer (GEM's definition, Lopez-Paz & Ranzato, 2017):
  how much learning tasks 0..j-1 helps task j before it is trained, against b_j, task j's test accuracy of a
  randomly initialised network of the same architecture (seeded like a pretraining with the run's seed; one
  prediction pass on the raw test sets, kept in summary.json as ``random_init_accuracy``). Defined only where
  the tasks bring no new classes (sample_incremental, speakers): before its task, a new class has never been a
  training target, so its accuracy there is 0 by construction (or nearly) and FWT would measure nothing else.
  Elsewhere FWT is undefined, like BWT_0.

Bytes (summary.json ``learning_state``): what a run must hold to go on learning, beside the replay memory alone.
learning state = replay memory (the stored samples or latents) + trained parameters + optimiser state (the
engine's Adamax keeps two tensors of each trained parameter's size, exp_avg and exp_inf; its scalar step counts
are left out) + regulariser state (what the strategy keeps across tasks that is not a replay memory: EWC's
Fisher and anchor, LwF's model copy, projection bases). Frozen layers are not counted: they are the pretrained
model every method shares. Example: naive fine-tuning of the 700-200-100-50-20 network trains all 218,500
float32 parameters, 874,000 B, and its Adamax state is 1,748,000 B: 2,622,000 B in all.

Pooled accuracies (sample-weighted over the test samples of a group of tasks), as the per-epoch rows show them:

* old = the tasks before t, new = task t, all = every task of the scenario (including tasks not learned yet:
  in the two-task scenarios, old + new).
* "before" = the model before task t (row t-1), "after" = after it (row t). For two tasks forgetting =
  old before - old after.
"""

from __future__ import annotations

import numpy as np


__all__ = ["accuracy_matrix", "average_accuracy", "backward_transfer", "forgetting", "average_incremental_accuracy",
           "forward_transfer", "learning_state", "pooled", "old_new_all", "run_metrics"]


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


def average_incremental_accuracy(matrix) -> float:
    """AIA = mean_{t = 0..T} ACC_t (the pretrained model's step included)."""
    R = accuracy_matrix(matrix)
    return float(np.mean([average_accuracy(R, t) for t in range(R.shape[0])]))


def forward_transfer(matrix, baseline) -> float:
    """FWT = mean_{j >= 1} (R[j-1][j] - b_j) with ``baseline`` b (one accuracy per task); NaN without a baseline
    (tasks that bring new classes) or without a task after the pretraining."""
    R = accuracy_matrix(matrix)
    if baseline is None or R.shape[0] < 2:
        return float("nan")
    b = np.asarray(baseline, dtype=float)
    if b.shape != (R.shape[1],):
        raise ValueError(f"a forward-transfer baseline has one accuracy per task ({R.shape[1]}); got shape {b.shape}")
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, R.shape[0])]))


def learning_state(parameter_bytes: int, replay_memory_bytes: int, memory_bytes_stored: int,
                   optimizer_tensors: int = 2) -> dict[str, int]:
    """The learning state in bytes: replay memory, trained parameters, optimiser state (``optimizer_tensors``
    tensors of each trained parameter's size; Adamax: 2), regulariser state (what the strategy keeps that is not
    its replay memory: ``memory_bytes_stored - replay_memory_bytes``) and their total."""
    parts = {"replay_memory_bytes": int(replay_memory_bytes), "parameter_bytes": int(parameter_bytes),
             "optimizer_bytes": int(optimizer_tensors) * int(parameter_bytes),
             "regularizer_bytes": int(memory_bytes_stored) - int(replay_memory_bytes)}
    if min(parts.values()) < 0:
        raise ValueError(f"negative byte counts in a learning state: {parts}")
    return {**parts, "total_bytes": sum(parts.values())}


def pooled(correct, counts, tasks) -> float:
    """Sample-weighted accuracy over ``tasks`` from per-task correct and sample counts (NaN when empty)."""
    tasks = list(tasks)
    n = int(np.sum(np.asarray(counts)[tasks])) if tasks else 0
    if n == 0:
        return float("nan")
    return int(np.sum(np.asarray(correct)[tasks])) / n


ACCURACY_COLUMNS = ("old_acc", "new_acc", "all_acc")  # the keys of old_new_all, in its order


def old_new_all(correct, counts, t: int) -> dict[str, float]:
    """Pooled old (tasks < t), new (task t) and all (every task) accuracy of one evaluation."""
    old, new, every = ACCURACY_COLUMNS
    return {old: pooled(correct, counts, range(t)), new: pooled(correct, counts, [t]),
            every: pooled(correct, counts, range(len(counts)))}


def correct_counts(matrix, counts) -> np.ndarray:
    """Per-entry correct-sample counts recovered from R (rounded to 6 decimals in files) and the test sizes."""
    return np.rint(accuracy_matrix(matrix) * np.asarray(counts, dtype=float)[None, :]).astype(np.int64)


def run_metrics(matrix, counts, baseline=None) -> dict[str, float]:
    """Everything a run's summary and the report show, at the last step T: ACC, BWT, forgetting, and the pooled
    old / new / all accuracy before (row T-1) and after (row T) the last task; over the sequence, AIA and FWT
    (against ``baseline``, the random-init accuracy per task; NaN without one)."""
    R = accuracy_matrix(matrix)
    T = R.shape[0] - 1
    correct = correct_counts(R, counts)
    after = old_new_all(correct[T], counts, T)
    before = old_new_all(correct[T - 1], counts, T) if T > 0 else {k: float("nan") for k in after}
    return {"acc": average_accuracy(R), "bwt": backward_transfer(R), "forgetting": forgetting(R),
            "old_before": before["old_acc"], "old_after": after["old_acc"], "new_after": after["new_acc"],
            "all_after": after["all_acc"], "aia": average_incremental_accuracy(R),
            "fwt": forward_transfer(R, baseline)}
