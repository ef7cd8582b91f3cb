"""Record the float64 golden numbers: a tiny end-to-end run, computed in float64, that any CPU must reproduce.

    python tests/golden/make_golden64.py          # rewrites tests/golden/golden64.json

Float32 results depend on the CPU's kernels (:mod:`sccl.core.numerics`), so the float32 golden file (``make_golden.py``)
is compared only on machines with the fingerprint it was recorded on. In float64 the kernels' summation orders
move a value by ~1e-16 relative instead of ~1e-7, and that stays far below the test's tolerance, provided the run
is short: training this network amplifies any difference about 30-fold per optimiser step (Adamax divides each
gradient by its own size, the surrogate gradient is steep near the threshold), so after ~10 steps even float64
runs of two CPUs part (a spike flips). Hence the world is built for few steps per run: one pretraining step (batch
128), then tasks of ~16 samples at batch 16 (one new-data step per task, plus the replay batches).

The mechanism: :func:`float64` sets torch's default dtype, so :class:`sccl.net.model.RecurrentSNN` draws float64
weights, and everything downstream follows the weights' dtype (inputs, kernels, optimiser state). Nothing in the
package reads it; float32 runs are unchanged. HLOP's Hebbian subspace (``projection --subspace hebbian``) keeps
float32 rows (``sccl/learn/subspace.py``) and is therefore not in :data:`RUNS`.

The world: the tiny embedded dataset, the speakers scenario with speakers 0-9 pretrained and 10, 11 arriving one
at a time (two tasks: SI, EWC, LwF and projection use what they consolidated after the first), and one run of every
registered strategy (:data:`RUNS`; the test checks it against the registry). Recorded per epoch, at full
precision: the mean training loss and the sum of squares of the trained weights (by wrapping ``train_epoch``: the
run files round to 6 decimals); per run: the accuracy rows, the accuracy matrix and the memory sizes.

Rerun this script whenever a change of numbers is intended (a strategy reworked), and say so in the commit.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOLDEN64 = Path(__file__).with_name("golden64.json")

PRETRAIN = ["--first-speakers", "0-9", "--epochs", "1", "--batch-size", "128", "--lr", "1e-3"]
COMMON = ["--scenario", "speakers", "--first-speakers", "0-9", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3"]
#: (strategy, its own flags): every registered strategy once, and the variants that take other code paths (joint
#: retrains every past sample: at batch 16 its ~12 steps per task would part on other CPUs, so batch 128)
RUNS = [
    ("naive", []),
    ("joint", ["--batch-size", "128", "--keep-last"]),
    ("rehearsal", ["--rehearsal-batches", "1", "--rehearsal-subsample", "10"]),
    ("latent_replay", ["--latent-depth", "0", "--latent-batches", "1"]),
    ("latent_replay", ["--latent-depth", "1", "--latent-batches", "1", "--latent-subsample", "10"]),
    ("latent_replay", ["--latent-depth", "2", "--latent-batches", "1", "--regularizer", "ewc"]),
    ("latent_replay_fewer_steps", ["--latent-depth", "2", "--latent-batches", "1", "--latent-subsample", "10"]),
    ("ewc", []),
    ("si", []),
    ("lwf", []),
    ("projection", []),
]
EPOCH_COLUMNS = ("task", "epoch", "old_acc", "new_acc", "all_acc", "memory_bits", "memory_bytes")
#: relative tolerances (tests/test_golden64.py): measured across AVX-512, ATEN_CPU_CAPABILITY=avx2,
#: MKL_ENABLE_INSTRUCTIONS=AVX2 with ATEN_CPU_CAPABILITY=default, and MKL_ENABLE_INSTRUCTIONS=SSE4_2, the losses
#: differed by at most 4e-16 and the weights' sums of squares by at most 5e-8; float32 rounding alone moves a loss
#: by ~1e-7. Accuracies, memory sizes, tasks and epochs must be equal.
LOSS_RTOL, WEIGHT_RTOL = 1e-9, 1e-5
SUMMARY_KEYS = ("accuracy_matrix", "memory_bits_analytic", "memory_bytes_stored")


@contextlib.contextmanager
def float64():
    """torch's default dtype float64 for the block (then as before)."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@contextlib.contextmanager
def epoch_numbers(out: list):
    """Append (loss, sum of squares of the trained weights) at full precision after every training epoch of the
    pretraining and of the engine."""
    from sccl.cl import engine
    from sccl.learn import pretraining

    originals = {m: m.train_epoch for m in (engine, pretraining)}

    def wrap(train_epoch):
        def recorded(net, optimizer, *args, **kwargs):
            loss, acc = train_epoch(net, optimizer, *args, **kwargs)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            out.append([float(loss), float(sum(p.detach().double().square().sum() for p in params))])
            return loss, acc
        return recorded

    for module, original in originals.items():
        module.train_epoch = wrap(original)
    try:
        yield
    finally:
        for module, original in originals.items():
            module.train_epoch = original


def record(root: Path, runs_to_do: list | None = None, in_float64: bool = True) -> dict:
    """Make the world under ``root`` and run the pretraining and ``runs_to_do`` (default :data:`RUNS`) in float64
    (``in_float64=False``: in torch's default dtype, to show the test sees the difference):
    {"pretraining": [[loss, weights], ...], "runs": [...]}."""
    from sccl.cli import pretrain as pretrain_cli
    from sccl.cli.continual import main_any
    from sccl.core.results import read_csv, read_json
    from sccl.data.merge import ensure_merged
    from sccl.data.offline import generate_dataset

    data, runs = root / "data", root / "runs"
    generate_dataset(data, size="tiny", seed=0)
    ensure_merged(data, quiet=True)
    where = ["--data-dir", str(data), "--out-dir", str(runs), "--quiet"]
    result = {"pretraining": [], "runs": []}
    with float64() if in_float64 else contextlib.nullcontext():
        with epoch_numbers(result["pretraining"]):
            pretrain_cli.main(PRETRAIN + where)
        for strategy, flags in RUNS if runs_to_do is None else runs_to_do:
            numbers: list = []
            with epoch_numbers(numbers):
                folder = Path(main_any(COMMON + ["--strategy", strategy] + flags + where))
            summary = read_json(folder / "summary.json")
            rows = [{k: row[k] for k in EPOCH_COLUMNS} for row in read_csv(folder / "epochs.csv")]
            result["runs"].append({"strategy": strategy, "flags": flags, "epochs": numbers, "rows": rows,
                                   "summary": {k: summary[k] for k in SUMMARY_KEYS}})
    return result


def compare(golden: dict, now: dict) -> list[str]:
    """Every difference of ``now`` from ``golden`` beyond the tolerances, one line each (empty: the same)."""
    out = []

    def numbers(where: str, old: list, new: list) -> None:
        if len(old) != len(new):
            out.append(f"{where}: {len(old)} epochs recorded, {len(new)} now")
        for e, ((lo, wo), (ln, wn)) in enumerate(zip(old, new), start=1):
            for what, a, b, tol in (("loss", lo, ln, LOSS_RTOL), ("weights' sum of squares", wo, wn, WEIGHT_RTOL)):
                if not abs(a - b) <= tol * max(abs(a), abs(b)):
                    out.append(f"{where}, epoch {e}: {what} {a!r} recorded, {b!r} now (relative tolerance {tol:g})")

    numbers("pretraining", golden["pretraining"], now["pretraining"])
    if len(golden["runs"]) != len(now["runs"]):
        out.append(f"{len(golden['runs'])} runs recorded, {len(now['runs'])} now")
    for g, r in zip(golden["runs"], now["runs"]):
        name = " ".join([g["strategy"], *g["flags"]])
        if (g["strategy"], g["flags"]) != (r["strategy"], r["flags"]):
            out.append(f"{name}: recorded, but the run now is {' '.join([r['strategy'], *r['flags']])}")
            continue
        numbers(name, g["epochs"], r["epochs"])
        for kind in ("rows", "summary"):
            if g[kind] != r[kind]:
                out.append(f"{name}: {kind} differ (compared exactly): {g[kind]} recorded, {r[kind]} now")
    return out


def load() -> dict:
    return json.loads(GOLDEN64.read_text())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = record(Path(tmp))
    GOLDEN64.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {GOLDEN64}: pretraining and {len(result['runs'])} runs in float64")


if __name__ == "__main__":
    main()
