"""Binning speed at SHD size: vectorised sccl.data.hdf5.bin_spikes vs a per-sample loop (the original's way:
digitize each sample and accumulate its counts), and the cache reuse, measured in the same run.

    python benchmarks/bench_binning.py [--samples 10420] [--spikes 8000]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sccl.data.hdf5 import MAX_TIME, NB_STEPS, NB_UNITS, SHDData, bin_spikes, load_binned, write_shd


def synthetic(n: int, spikes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    times, units = np.empty(n, object), np.empty(n, object)
    for i in range(n):
        k = int(rng.integers(spikes // 2, spikes * 3 // 2))
        times[i] = np.sort(rng.uniform(0, 1.3, k)).astype(np.float16)
        units[i] = rng.integers(250, 700, k).astype(np.uint16)
    return times, units


def loop_baseline(times, units):
    edges = np.linspace(0, MAX_TIME, NB_STEPS)
    out = []
    for t, u in zip(times, units):
        dense = np.zeros((NB_STEPS, NB_UNITS), np.uint8)
        s = np.digitize(t, edges)
        keep = s < NB_STEPS
        np.add.at(dense, (s[keep], u[keep]), 1)
        out.append(dense)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=10420)
    p.add_argument("--spikes", type=int, default=8000, help="mean spikes per sample")
    p.add_argument("--baseline-samples", type=int, default=500, help="loop baseline runs on this many, extrapolated")
    args = p.parse_args()
    times, units = synthetic(args.samples, args.spikes)
    total = sum(len(t) for t in times)
    print(f"{args.samples} samples, {total / args.samples:.0f} spikes/sample on average ({total / 1e6:.1f} M spikes)")
    t0 = time.perf_counter()
    binned = bin_spikes(times, units)
    t_vec = time.perf_counter() - t0
    nb = args.baseline_samples
    t0 = time.perf_counter()
    loop_baseline(times[:nb], units[:nb])
    t_loop = (time.perf_counter() - t0) * args.samples / nb
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "shd_merged.h5"
        write_shd(path, SHDData(times, units, np.zeros(args.samples, int), np.zeros(args.samples, int)))
        t0 = time.perf_counter()
        load_binned(path)  # read + validate + bin + write the cache
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached = load_binned(path)
        t_cache = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(d).glob("*.npz"))
    assert np.array_equal(cached.units, binned.units)
    print(f"vectorised bin_spikes:            {t_vec:7.2f} s  ({binned.steps.size / 1e6:.1f} M non-zero cells)")
    print(f"per-sample loop (extrapolated):   {t_loop:7.2f} s  -> vectorised is {t_loop / t_vec:.1f}x faster")
    print(f"first load (read, validate, bin, cache): {t_first:.2f} s;  cached load: {t_cache:.2f} s;  "
          f"cache {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
