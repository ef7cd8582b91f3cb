"""The learning state in bytes (summary.json "learning_state"), by hand on the 700-200-100-50-20 network: replay
memory apart from regulariser state, trained parameters and their Adamax state."""

from types import SimpleNamespace

import torch

from sccl.cl.footprint import OPTIMIZER_STATE_TENSORS, learning_state_of
from sccl.cl.runs import RunConfig
from sccl.cl.strategies import get_strategy
from sccl.net.model import RecurrentSNN


ALL = 218_500  # 700*200 + 200*200 + 200*100 + 100*100 + 100*50 + 50*50 + 50*20 float32 parameters
DEPTH2 = 8_500  # w3 (100*50), v3 (50*50), w_out (50*20): what latent replay at depth 2 trains


def strategy(name: str, depth=None, **cfg):
    """A strategy on the full-size network, with only what its byte accounting reads in its context."""
    net = RecurrentSNN(generator=torch.Generator().manual_seed(0))
    cls = get_strategy(name)
    config = RunConfig.of(scenario="sample_incremental", strategy=name, held_out=3, latent_depth=depth, **cfg)
    ctx = SimpleNamespace(net=net, trainable=tuple(cls.trainable(config, net)), depth=depth,
                          scenario=SimpleNamespace(memory_salt=0, tasks=[]), log=lambda line: None)
    return cls(config, ctx)


def fake_memory(nbytes: int):
    return SimpleNamespace(memory_bytes_stored=nbytes)


def test_naive_holds_every_parameter_and_its_adamax_state():
    assert OPTIMIZER_STATE_TENSORS == 2  # Adamax: exp_avg and exp_inf
    assert learning_state_of(strategy("naive")) == {
        "replay_memory_bytes": 0, "parameter_bytes": 4 * ALL, "optimizer_bytes": 8 * ALL, "regularizer_bytes": 0,
        "total_bytes": 12 * ALL}
    assert 4 * ALL == 874_000 and 8 * ALL == 1_748_000


def test_a_replay_memory_is_replay_and_not_regulariser_state():
    s = strategy("rehearsal", replay_batches=1, compression="sum")
    s.memory = fake_memory(51_200)
    assert s.replay_memory_bytes == s.memory_bytes_stored == 51_200
    assert learning_state_of(s) == {"replay_memory_bytes": 51_200, "parameter_bytes": 874_000,
                                    "optimizer_bytes": 1_748_000, "regularizer_bytes": 0, "total_bytes": 2_673_200}


def test_a_regulariser_on_latent_replay_is_counted_apart_from_the_replay_memory():
    s = strategy("latent_replay", depth=2, replay_batches=1, options={"regularizer": "ewc"})
    assert s.ctx.trainable == ("w3", "v3", "w_out")
    s.memory = fake_memory(6_400)
    ewc = s.regularizer
    ewc.consolidate({n: torch.zeros_like(p) for n, p in ewc.trained_parameters().items()})
    # EWC keeps a Fisher and an anchor per trained scalar: 2 x 8,500 x 4 B
    assert (s.replay_memory_bytes, s.memory_bytes_stored) == (6_400, 6_400 + 68_000)
    assert learning_state_of(s) == {"replay_memory_bytes": 6_400, "parameter_bytes": 4 * DEPTH2,
                                    "optimizer_bytes": 8 * DEPTH2, "regularizer_bytes": 68_000,
                                    "total_bytes": 6_400 + 12 * DEPTH2 + 68_000}


def test_a_regulariser_alone_is_all_regulariser_state():
    s = strategy("ewc")
    s.consolidate({n: torch.zeros_like(p) for n, p in s.trained_parameters().items()})
    state = learning_state_of(s)
    assert state["replay_memory_bytes"] == 0 and state["regularizer_bytes"] == 2 * 874_000
    assert state["total_bytes"] == 874_000 + 1_748_000 + 1_748_000
