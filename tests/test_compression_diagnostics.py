"""What a time compression did to the stored spike latents, counted by hand."""

import pytest
import torch

from sccl.replay.memory import ReplayMemory


def latents() -> torch.Tensor:
    """One sample, 2 units, 20 steps (S = 2: windows of 10). Unit 0: 3 spikes in window 0, 1 in window 1;
    unit 1: none."""
    z = torch.zeros(1, 20, 2)
    z[0, [1, 4, 7, 12], 0] = 1
    return z


@pytest.mark.parametrize("mode, lost", [("or", 0.5), ("sum", 0.0)])
def test_or_keeps_one_spike_per_window_and_sum_keeps_the_count(mode, lost):
    memory = ReplayMemory("spikes", 20, 2, mode, units=2)
    memory.add(latents(), [0], compressed=False)
    d = memory.compression_diagnostics()
    assert d["spikes"] == 4
    assert d["lost_fraction"] == pytest.approx(lost)  # OR: 2 windows with spikes keep 2 of 4
    assert d["spikes_per_unit_window"] == pytest.approx(4 / (2 * 2))  # 4 spikes over 2 units x 2 windows
    assert d["spikes_per_active_window"] == pytest.approx(4 / 2)


def test_no_diagnostics_without_full_resolution_spikes():
    assert ReplayMemory("currents", 20, 2, units=2).compression_diagnostics() is None
    given_compressed = ReplayMemory("spikes", 20, 2, units=2)
    given_compressed.add(torch.ones(1, 2, 2), [0], compressed=True)
    assert given_compressed.compression_diagnostics() is None
    uncompressed = ReplayMemory("spikes", 20, 20, units=2)
    uncompressed.add(latents(), [0], compressed=False)
    assert uncompressed.compression_diagnostics()["lost_fraction"] == 0.0
