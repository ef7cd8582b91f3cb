"""Memory and time at the Spiking Speech Commands' size: merge, binning and its cache, one training epoch, the
replay memory of a class-incremental sequence in tasks of 5 keywords.

    python benchmarks/bench_ssc_scale.py                      # SSC's sample counts, 8,000 spikes per sample
    python benchmarks/bench_ssc_scale.py --scale 0.1          # a tenth of it (a quick look)

The data are random spikes in SSC's layout (35 keywords; 75,466 / 9,981 / 20,382 train / valid / test samples;
700 channels; up to 1 s), written as the three official files. SSC's mean spike count per sample is not
published; ``--spikes`` sets it (default 8,000, SHD's estimated mean), and times and memory grow with it. Random
spikes rarely share a (step, channel) bin, so the binned data hold about as many entries as spikes: an upper bound
for real speech, whose spikes come in bursts.

Every stage runs in its own process, started from this small one, so its peak resident memory (``ru_maxrss``) is
its own:

    write      the three files (not a toolkit step: the data are made here)
    merge      python heidelberg_unite_datasets.py --dataset ssc (the three files -> ssc_merged.h5)
    bin        the first load: validation, binning, the bins cache written
    cached     a later load, from the cache
    auto       ``--max-time auto``'s pass over the file: validation and its last spike time (spikes read in chunks)
    epoch      one training epoch over the official training file (all 35 keywords), batch 64, one thread;
               the batches built one at a time when used (as pretraining does above SCCL_BATCH_MEMORY_MB)
    replay     the latent-replay memory of the sequence "25 keywords, then 5 and 5" at depth 1: one batch of 64 per
               class, uncompressed (S = 100) and compressed 1:10 (S = 10, OR)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SSC_SAMPLES = {"train": 75466, "valid": 9981, "test": 20382}
NB_CLASSES, NB_UNITS, DURATION = 35, 700, 1.0
STAGES = ("write", "merge", "bin", "cached", "auto", "epoch", "replay")


def write_parts(folder: Path, scale: float, spikes: int, seed: int) -> dict:
    from sccl.data.hdf5 import SHDData, write_shd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = 0
    for part, n in SSC_SAMPLES.items():
        n = max(NB_CLASSES, int(round(n * scale)))
        counts = rng.integers(spikes // 2, spikes * 3 // 2 + 1, n)
        flat_t = rng.uniform(0, DURATION, int(counts.sum())).astype(np.float16)  # sorted within each sample below
        flat_u = rng.integers(0, NB_UNITS, int(counts.sum())).astype(np.uint16)
        cuts = np.cumsum(counts)[:-1]
        times, units = np.empty(n, object), np.empty(n, object)
        for i, (t, u) in enumerate(zip(np.split(flat_t, cuts), np.split(flat_u, cuts))):
            times[i], units[i] = np.sort(t), u
        keys = np.array([f"keyword {c}".encode() for c in range(NB_CLASSES)])
        write_shd(folder / f"ssc_{part}.h5", SHDData(times, units, rng.integers(0, NB_CLASSES, n),
                                                     rng.integers(0, 200, n), keys=keys))
        total += n
    return {"samples": total}


def stage(name: str, data_dir: str, threads: int) -> dict:
    """Run one stage in this process; returns its numbers (wall seconds, peak RSS in MiB, sizes)."""
    import torch

    from sccl.learn.training import load_dataset

    torch.set_num_threads(threads)
    data_dir = Path(data_dir)
    out: dict = {}
    t0 = time.perf_counter()
    if name == "write":
        out.update(write_parts(data_dir, float(os.environ["BENCH_SCALE"]), int(os.environ["BENCH_SPIKES"]),
                               int(os.environ["BENCH_SEED"])))
    elif name == "merge":
        subprocess.run([sys.executable, str(ROOT / "heidelberg_unite_datasets.py"), "--dataset", "ssc", "--force",
                        "--data-dir", str(data_dir)], check=True, capture_output=True)
        out["rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out["merged_mib"] = (data_dir / "ssc_merged.h5").stat().st_size / 2**20
    elif name in ("bin", "cached"):
        ds = load_dataset(data_dir / "ssc_merged.h5", max_time=DURATION)
        out["entries"] = int(len(ds.binned.units))
        caches = list(data_dir.glob("*.bins*"))
        out["cache_mib"] = sum(p.stat().st_size for p in caches) / 2**20
    elif name == "auto":
        from sccl.data.hdf5 import load_shd_tables
        from sccl.learn.training import auto_max_time

        out["max_time"] = auto_max_time(load_shd_tables(data_dir / "ssc_merged.h5").last_spike)
    elif name == "epoch":
        from sccl.data.splits import make_batches
        from sccl.learn.training import raw_batches, train_epoch
        from sccl.net.model import RecurrentSNN

        ds = load_dataset(data_dir / "ssc_merged.h5", max_time=DURATION)
        train = np.flatnonzero(ds.source == 0)
        torch.manual_seed(0)
        net = RecurrentSNN(nb_inputs=NB_UNITS, nb_outputs=NB_CLASSES)
        opt = torch.optim.Adamax(net.parameters(), lr=2e-4)
        index_batches = make_batches(train, 64)
        one = raw_batches(ds, index_batches[:1], "cpu")[0].x
        out["batch_input_mib"] = sum(v.element_size() * v.numel() for v in vars(one).values()
                                     if isinstance(v, torch.Tensor)) / 2**20  # one batch's sparse input
        t1 = time.perf_counter()
        built = raw_batches(ds, index_batches[:50], "cpu")  # the cost of building a batch, alone
        out["build_ms_per_batch"] = (time.perf_counter() - t1) / len(built) * 1000
        out["all_batches_input_gib"] = out["batch_input_mib"] * len(index_batches) / 1024  # holding every batch
        del built
        t1 = time.perf_counter()
        train_epoch(net, opt, (raw_batches(ds, [idx], "cpu")[0] for idx in index_batches))
        out["epoch_s"] = time.perf_counter() - t1
        out["steps"] = len(index_batches)
        out["load_s"] = t1 - t0
    elif name == "replay":
        from sccl.learn.training import raw_batches
        from sccl.net.model import RecurrentSNN
        from sccl.replay.memory import ReplayMemory

        ds = load_dataset(data_dir / "ssc_merged.h5", max_time=DURATION)
        net = RecurrentSNN(nb_inputs=NB_UNITS, nb_outputs=NB_CLASSES)
        train = np.flatnonzero(ds.source == 0)
        for S in (100, 10):
            memory = ReplayMemory("spikes", ds.binned.nb_steps, S, "or")
            for c in range(NB_CLASSES):
                idx = train[ds.labels[train] == c][:64]
                batch = raw_batches(ds, [idx], "cpu")[0]
                with torch.no_grad():
                    memory.add(net.activity_time_major(batch.x, 1).transpose(0, 1), ds.labels[idx])
            out[f"replay_S{S}_bytes"] = memory.memory_bytes_stored
            out[f"replay_S{S}_samples"] = len(memory)
    out["seconds"] = time.perf_counter() - t0
    out.setdefault("rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of SSC's sample counts (default: 1)")
    p.add_argument("--spikes", type=int, default=8000, help="mean spikes per sample (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=None, help="where the files go (default: a temporary folder, removed)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help="comma-separated stages to run, in order (default: all); a later stage needs the files of "
                        "the earlier ones, so name a --work-dir to run them in several calls")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # internal: run one stage, print JSON
    args = p.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if args.stage:
        print(json.dumps(stage(args.stage, args.work_dir, args.threads)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.work_dir or tmp) / "ssc"
        results = {}
        env = {**os.environ, "BENCH_SCALE": str(args.scale), "BENCH_SPIKES": str(args.spikes),
               "BENCH_SEED": str(args.seed)}
        for name in stages:  # this process stays small: a stage's
            r = subprocess.run([sys.executable, __file__, "--stage", name, "--work-dir", str(folder),  # peak is its own
                                "--threads", str(args.threads)], capture_output=True, text=True, env=env)
            if r.returncode:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            results[name] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{name}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results[name].items()})}",
                  flush=True)
    print(json.dumps({"scale": args.scale, "spikes": args.spikes, "threads": args.threads, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
