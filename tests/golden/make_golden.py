"""Record the golden results: the entry-point scripts' numbers for fixed seeds on the tiny embedded dataset.

    python tests/golden/make_golden.py            # records this machine's numbers in tests/golden/golden.json

The runs are the scripts' own command lines (the same before and after any refactor), run in-process.
``tests/test_golden.py`` runs them again and requires the same numbers. The first golden.json was recorded
with the code before the continual-learning engine refactor (commit 18e783e); regenerate it only when a change
of numbers is intended, and say so in the commit.

Float32 results depend on the CPU's kernels (:mod:`sccl.core.numerics`), so the file holds one record per numerics
fingerprint; the test compares against the record of its machine's fingerprint. The first record (AVX2 machines,
fingerprint unknown when it was made) was lost when the file became per-fingerprint; the AVX-512 record was made
with the code of commit b7e020e, whose numbers had been checked equal to the pre-refactor ones on that machine;
its key became the fingerprint that also hashes the CPU capability (issue 19: 4916c53ec26f -> the key it has now,
the same machine and numbers). Every CPU is checked by the float64 golden test (``make_golden64.py``).
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")

PRETRAIN = [["--speaker", "3"], ["--removed-class", "7"], ["--classes", "0-9"]]
# (script, argv): short runs of every strategy in every scenario the code had before the engine refactor
RUNS = [
    ("sample_incremental/naive.py", ["--speaker", "3", "--batch-size", "16"]),
    ("sample_incremental/rehearsal.py", ["--speaker", "3", "--batch-size", "16", "--rehearsal-batches", "2", "--rehearsal-subsample", "10"]),
    ("sample_incremental/latent_replay.py", ["--speaker", "3", "--batch-size", "16", "--latent-depth", "2", "--latent-batches", "2"]),
    ("sample_incremental/latent_replay.py", ["--speaker", "3", "--batch-size", "16", "--latent-depth", "0", "--latent-batches", "1",
                                             "--schedule", "mixed"]),
    ("sample_incremental/latent_replay_subsampled.py", ["--speaker", "3", "--batch-size", "16", "--latent-depth", "1", "--latent-batches",
                                                        "2", "--latent-subsample", "10"]),
    ("sample_incremental/latent_replay_subsampled.py", ["--speaker", "3", "--batch-size", "16", "--latent-depth", "3", "--latent-batches",
                                                        "2", "--latent-subsample", "20", "--compression", "sum"]),
    ("class_incremental/naive.py", ["--removed-class", "7", "--batch-size", "8"]),
    ("class_incremental/rehearsal.py", ["--removed-class", "7", "--batch-size", "8", "--rehearsal-batches", "1"]),
    ("class_incremental/latent_replay.py", ["--removed-class", "7", "--batch-size", "8", "--latent-depth", "2",
                                            "--latent-batches", "1", "--lr", "0.001"]),
    ("class_incremental/latent_replay_subsampled.py", ["--removed-class", "7", "--batch-size", "8", "--latent-depth",
                                                       "1", "--latent-batches", "1", "--latent-subsample", "10"]),
    ("class_incremental/latent_replay.py", ["--removed-class", "7", "--batch-size", "8", "--latent-depth", "3",
                                            "--latent-batches", "1", "--class-mixed", "--keep-readout"]),
    ("class_incremental_multiclasses/progressive.py", ["--latent-depth", "2", "--latent-batches", "1",
                                                       "--batch-size", "4", "--lr", "0.001"]),
    ("class_incremental_multiclasses/progressive.py", ["--latent-depth", "1", "--latent-batches", "1",
                                                       "--latent-subsample", "10", "--batch-size", "4"]),
]
EPOCHS = "2"
# numbers compared (seconds and paths are not results)
EPOCH_COLUMNS = ("epoch", "loss", "old_acc", "new_acc", "all_acc", "memory_bits", "memory_bytes")


def run_script(script: str, argv: list[str]) -> None:
    saved = sys.argv
    sys.argv = [str(ROOT / script)] + argv
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"{script} {' '.join(argv)} exited with {exc.code}") from None
    finally:
        sys.argv = saved


def make_world(root: Path) -> tuple[Path, Path]:
    """Tiny embedded dataset + the three pretrained models (2 epochs, batch 16)."""
    from sccl.data.merge import ensure_merged
    from sccl.data.offline import generate_dataset

    data, runs = root / "data", root / "runs"
    generate_dataset(data, size="tiny", seed=0)
    ensure_merged(data, quiet=True)
    for held in PRETRAIN:
        run_script("statedicts/pretrain.py", held + ["--epochs", "2", "--batch-size", "16", "--data-dir", str(data),
                                                     "--out-dir", str(runs), "--quiet"])
    return data, runs


def record_runs(data: Path, runs: Path) -> list[dict]:
    """Run every golden command and return its numbers, in RUNS order."""
    from sccl.core.results import read_csv, read_json

    out = []
    for script, argv in RUNS:
        before = set(runs.rglob("summary.json"))
        run_script(script, argv + ["--epochs", EPOCHS, "--data-dir", str(data), "--out-dir", str(runs), "--quiet"])
        new = sorted(set(runs.rglob("summary.json")) - before)
        if len(new) != 1:
            raise RuntimeError(f"{script} {argv}: expected one new finished run, found {len(new)}")
        folder = new[0].parent
        rows = [{k: r[k] for k in EPOCH_COLUMNS if k in r} | _step_of(r) for r in read_csv(folder / "epochs.csv")]
        summary = read_json(folder / "summary.json")
        out.append({"script": script, "argv": argv, "epochs": rows, "summary": _summary_numbers(summary)})
    return out


def _step_of(row: dict) -> dict:
    """The progressive scripts' rows name the step (task) and call the old-task accuracy previous_acc."""
    extra = {}
    if "step" in row:
        extra["task"] = row["step"]
    if "previous_acc" in row:
        extra["old_acc"] = row["previous_acc"]
    if "task" in row:
        extra["task"] = row["task"]
    return extra


def _summary_numbers(s: dict) -> dict:
    keep = {}
    for key in ("final", "replay_memory_accuracy", "memory_bits_analytic", "memory_bytes_stored",
                "per_class_accuracy", "accuracy_matrix"):
        if key in s:
            keep[key] = s[key]
    return keep


def load_golden() -> dict:
    """{numerics fingerprint: {"numerics": description, "runs": [...]}}."""
    return json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}


def main() -> None:
    import tempfile

    from sccl.core.numerics import describe, fingerprint

    with tempfile.TemporaryDirectory() as tmp:
        data, runs = make_world(Path(tmp))
        golden = record_runs(data, runs)
    records = load_golden()
    records[fingerprint()] = {"numerics": describe(), "runs": golden}
    GOLDEN.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}: {len(golden)} runs for {describe()}")


if __name__ == "__main__":
    main()
