"""sccl.cl.metrics on hand-made accuracy matrices: step 0, a 2x2 and an 11x11 case."""

import math

import numpy as np
import pytest

from sccl.cl import metrics


def test_step_zero_has_accuracy_but_no_backward_transfer_or_forgetting():
    R = [[0.8, 0.2]]
    assert metrics.average_accuracy(R) == 0.8
    assert math.isnan(metrics.backward_transfer(R)) and math.isnan(metrics.forgetting(R))
    m = metrics.run_metrics(R, [10, 5])
    assert m["acc"] == 0.8 and math.isnan(m["bwt"]) and math.isnan(m["old_before"])
    assert m["old_after"] != m["old_after"]  # no old task at step 0: NaN
    assert m["new_after"] == 0.8 and m["all_after"] == pytest.approx((8 + 1) / 15)


def test_two_tasks_by_hand():
    # after pretraining: 0.9 on old, 0.2 on the new speaker; after the new task: 0.7 old, 0.95 new
    R = [[0.9, 0.2], [0.7, 0.95]]
    counts = [100, 20]
    m = metrics.run_metrics(R, counts)
    assert m["acc"] == pytest.approx((0.7 + 0.95) / 2)
    assert m["bwt"] == pytest.approx(0.7 - 0.9)
    assert m["forgetting"] == pytest.approx(0.9 - 0.7)
    assert (m["old_before"], m["old_after"], m["new_after"]) == (0.9, 0.7, 0.95)
    assert m["all_after"] == pytest.approx((70 + 19) / 120)


def test_forgetting_takes_the_best_earlier_accuracy_after_the_task_was_learned():
    R = [[0.5, 0.0, 0.0],
         [0.9, 0.8, 0.1],   # task 0 improved after task 1 (positive transfer)
         [0.6, 0.5, 0.7]]
    # task 0: best of R[0..1][0] = 0.9 -> 0.6 (0.3); task 1: best of R[1][1] = 0.8 -> 0.5 (0.3)
    assert metrics.forgetting(R) == pytest.approx(0.3)
    # BWT compares with the accuracy right after learning: (0.6 - 0.5 + 0.5 - 0.8) / 2
    assert metrics.backward_transfer(R) == pytest.approx(-0.1)
    assert metrics.forgetting(R, t=1) == pytest.approx(0.5 - 0.9)  # negative: step 1 improved task 0
    assert metrics.average_accuracy(R, t=1) == pytest.approx(0.85)


def test_eleven_by_eleven_progressive_case():
    # a block of 10 classes, then 10 single classes: every new class learned to 1.0, then forgotten by 0.05 per
    # later step; the first block stays at 0.9 - 0.01 per step
    T = 10
    R = np.zeros((T + 1, T + 1))
    for i in range(T + 1):
        R[i, 0] = 0.9 - 0.01 * i
        for j in range(1, i + 1):
            R[i, j] = 1.0 - 0.05 * (i - j)
    acc = np.mean([0.8] + [1.0 - 0.05 * (T - j) for j in range(1, T + 1)])
    assert metrics.average_accuracy(R) == pytest.approx(acc)
    forget = np.mean([0.9 - 0.8] + [1.0 - (1.0 - 0.05 * (T - j)) for j in range(1, T)])
    assert metrics.forgetting(R) == pytest.approx(forget)
    assert metrics.backward_transfer(R) == pytest.approx(-forget)  # monotone decay: BWT = -forgetting
    counts = np.array([200] + [20] * T)
    m = metrics.run_metrics(R, counts)
    correct_old = 200 * 0.8 + sum(20 * (1.0 - 0.05 * (T - j)) for j in range(1, T))
    assert m["old_after"] == pytest.approx(correct_old / (200 + 20 * (T - 1)))
    assert m["new_after"] == 1.0
    assert m["old_before"] == pytest.approx((200 * 0.81 + sum(20 * (1.0 - 0.05 * (T - 1 - j)) for j in range(1, T)))
                                            / (200 + 20 * (T - 1)))


def test_pooled_is_sample_weighted_and_nan_when_empty():
    assert metrics.pooled([3, 10], [4, 40], [0, 1]) == 13 / 44
    assert math.isnan(metrics.pooled([0], [0], [0]))
    assert metrics.old_new_all([3, 10, 0], [4, 40, 6], 1) == {"old_acc": 0.75, "new_acc": 0.25, "all_acc": 13 / 50}


def test_malformed_matrices_are_refused():
    for bad in ([], [1.0, 2.0], [[0.5], [0.5]]):
        with pytest.raises(ValueError):
            metrics.average_accuracy(bad)
    with pytest.raises(ValueError, match="outside"):
        metrics.forgetting([[0.5, 0.5], [0.5, 0.5]], t=2)


def test_average_incremental_accuracy_includes_the_pretrained_step():
    R = [[0.9, 0.2, 0.1],
         [0.7, 0.8, 0.3],
         [0.6, 0.7, 0.9]]
    # ACC_0 = 0.9, ACC_1 = (0.7 + 0.8) / 2 = 0.75, ACC_2 = (0.6 + 0.7 + 0.9) / 3 = 2.2 / 3
    assert metrics.average_incremental_accuracy(R) == pytest.approx((0.9 + 0.75 + 2.2 / 3) / 3)
    assert metrics.average_incremental_accuracy([[0.8, 0.2]]) == 0.8  # step 0 alone: its ACC
    m = metrics.run_metrics([[0.9, 0.2], [0.7, 0.95]], [100, 20])
    assert m["aia"] == pytest.approx((0.9 + (0.7 + 0.95) / 2) / 2)


def test_forward_transfer_against_a_random_init_baseline_by_hand():
    R = [[0.9, 0.2, 0.1],
         [0.7, 0.8, 0.3],
         [0.6, 0.7, 0.9]]
    b = [0.05, 0.1, 0.15]
    # task 1 before it was learned: 0.2 - 0.1; task 2: 0.3 - 0.15
    assert metrics.forward_transfer(R, b) == pytest.approx(((0.2 - 0.1) + (0.3 - 0.15)) / 2)
    assert metrics.run_metrics(R, [10, 10, 10], b)["fwt"] == pytest.approx(0.125)
    # undefined without a baseline (tasks that bring new classes) and at step 0, like BWT_0
    assert math.isnan(metrics.forward_transfer(R, None)) and math.isnan(metrics.run_metrics(R, [1, 1, 1])["fwt"])
    assert math.isnan(metrics.forward_transfer([[0.8, 0.2]], [0.1, 0.1]))
    with pytest.raises(ValueError, match="one accuracy per task"):
        metrics.forward_transfer(R, [0.1, 0.1])


def test_learning_state_bytes_by_hand():
    # naive fine-tuning of 700-200-100-50-20: every weight trained, 218,500 float32 parameters
    params = 700 * 200 + 200 * 200 + 200 * 100 + 100 * 100 + 100 * 50 + 50 * 50 + 50 * 20
    assert params == 218_500
    assert metrics.learning_state(4 * params, 0, 0) == {
        "replay_memory_bytes": 0, "parameter_bytes": 874_000, "optimizer_bytes": 1_748_000, "regularizer_bytes": 0,
        "total_bytes": 2_622_000}
    # latent replay at depth 2 (w3, v3, w_out: 8,500 parameters) with 6,400 B of latents and 3,000 B of EWC state
    state = metrics.learning_state(4 * (100 * 50 + 50 * 50 + 50 * 20), 6_400, 9_400)
    assert state == {"replay_memory_bytes": 6_400, "parameter_bytes": 34_000, "optimizer_bytes": 68_000,
                     "regularizer_bytes": 3_000, "total_bytes": 111_400}
    with pytest.raises(ValueError, match="negative"):
        metrics.learning_state(4, 10, 5)  # a replay memory larger than everything stored
