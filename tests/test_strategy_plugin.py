"""Adding a strategy is one file in sccl/cl/strategies/: the registry finds it, the command line gets its flags, the
engine calls its hooks (the example of docs/ARCHITECTURE.md)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from sccl.cl.context import RunContext
from sccl.cl.engine import fit_task
from sccl.cl.scenarios import Scenario, Task
from sccl.cl.strategies import REGISTRY
from sccl.cli.continual import build_parser, config_from_args
from sccl.learn.training import Batch
from sccl.net.model import RecurrentSNN


ROOT = Path(__file__).resolve().parents[1]

# the whole new file: an L2 pull towards the weights at the start of each task, and a frozen first readout column
PLUGIN = '''
import torch

from sccl.cl.strategies.base import Flag, Strategy


class Anchored(Strategy):
    name = "anchored"
    description = "Fine-tuning with an L2 pull towards the weights at the start of each task."
    flags = (Flag("--anchor-weight", "anchor_weight", "strength of the pull", type=float, default=0.5),)

    def start_task(self, i):
        self.anchor = {n: p.detach().clone() for n, p in self.ctx.net.named_parameters()}
        self.calls = getattr(self, "calls", []) + [("start", i)]

    def extra_loss(self, batch, logits):
        w = self.cfg.options["anchor_weight"]
        return w * sum(((p - self.anchor[n]) ** 2).sum() for n, p in self.ctx.net.named_parameters())

    def edit_gradients(self):
        self.ctx.net.w_out.grad[:, 0] = 0  # hook between backward and step: column 0 never moves
'''


def test_one_new_file_is_a_registered_strategy_with_flags_and_hooks(tmp_path):
    package = tmp_path / "sccl"
    shutil.copytree(ROOT / "sccl", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "cl" / "strategies" / "anchored.py").write_text(PLUGIN)
    probe = '''
import torch
from sccl.cl.strategies import REGISTRY
from sccl.cli.continual import build_parser, config_from_args
cls = REGISTRY["anchored"]
args = build_parser("anchored", "sample_incremental").parse_args(["--speaker", "3", "--anchor-weight", "2"])
cfg = config_from_args(args, "anchored", "sample_incremental")
print(list(REGISTRY)[:3], "anchored" in REGISTRY, cfg.options)
'''
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['naive', 'rehearsal', 'latent_replay'] True {'anchor_weight': 2.0}"


def test_the_engine_calls_the_hooks_of_a_new_strategy(tmp_path, monkeypatch):
    namespace: dict = {}
    exec(compile(PLUGIN, "anchored.py", "exec"), namespace)
    Anchored = namespace["Anchored"]
    monkeypatch.setitem(REGISTRY, "anchored", Anchored)
    args = build_parser("anchored", "sample_incremental").parse_args(["--speaker", "3"])
    cfg = config_from_args(args, "anchored", "sample_incremental")
    assert cfg.options == {"anchor_weight": 0.5}

    # a hand-made two-task scenario on random inputs: no files at all

    torch.manual_seed(0)
    net = RecurrentSNN()
    x = (torch.rand(8, 100, 700) < 0.2).float() * 3  # dense enough for layer 3 to spike
    y = torch.arange(8) % 20
    batch = Batch(x, y)
    scenario = Scenario("sample_incremental", [Task("old", np.arange(4), np.arange(4)),
                                               Task("new", np.arange(4), np.arange(4))])

    class FixedEvaluator:
        counts = np.array([8, 8])

        def __call__(self):
            pred = net(x).argmax(1).numpy()
            c = int((pred == y.numpy()).sum())
            return np.array([c, c]), pred, y.numpy()

    strategy = Anchored(cfg, RunContext(net, None, torch.device("cpu"), scenario, lambda line: None))
    strategy.start_task(1)
    column0 = net.w_out[:, 0].detach().clone()
    rows = fit_task(net, strategy, 1, [batch], 2, 1e-2, tuple(n for n, _ in net.named_parameters()),
                    FixedEvaluator())
    assert strategy.calls == [("start", 1)]
    assert torch.equal(net.w_out[:, 0], column0)  # edit_gradients ran before every step
    assert any(not torch.equal(p, strategy.anchor[n]) for n, p in net.named_parameters())
    # the extra loss is in the reported loss: the pull is positive after the first step
    assert rows[2]["loss"] > 0 and len(rows) == 3
