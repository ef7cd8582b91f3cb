"""Audio -> spikes throughput of the built-in cochlea: the previous implementation (sccl.audio.cochlea_reference) and
the current one (numba engine when installed, and the numpy engine), measured in the same run on the same
synthetic one-second 48 kHz recordings, each in a fresh process so that its peak memory (max RSS) is its own;
then the whole converter (python -m sccl.audio: read, resample, cochlea, resumable store, HDF5) on a folder.

    python benchmarks/bench_audio.py [--old 3] [--new 30] [--numpy 3] [--files 24] [--workers 1]

Timings depend on the machine and on what else runs on it: the load average is printed with them.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FS = 48000
SECONDS = 1.0


def recording(index: int, fs: int = FS, seconds: float = SECONDS) -> np.ndarray:
    """A spoken-digit-like second: a voiced glide under three moving formants, noise, and silence at both ends."""
    rng = np.random.default_rng(index)
    t = np.arange(int(fs * seconds)) / fs
    f0 = 110 + 60 * rng.random() + 30 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / fs
    glide = 200 * np.sin(2 * np.pi * 1.3 * t)
    formants = [(500 + 300 * rng.random()) * k + k * glide for k in (1, 2, 3)]
    voice = sum(sum(np.sin(k * phase) / (1 + ((k * f0 - f) / 120) ** 2) for f in formants) for k in range(1, 30))
    envelope = np.clip(np.sin(np.pi * (t - 0.15) / 0.7), 0, None) ** 0.5
    return envelope * voice + 0.02 * rng.standard_normal(len(t))


def _measure(which: str, count: int) -> dict:
    """Runs in a fresh process: convert ``count`` recordings with one implementation."""
    if which == "old":
        from sccl.audio.cochlea_reference import cochlea as convert
        run = lambda x, seed: convert(x, FS, seed=seed)  # noqa: E731
    else:
        from sccl.audio.cochlea import cochlea as convert
        run = lambda x, seed: convert(x, FS, seed=seed, engine=which)  # noqa: E731
        run(recording(0, seconds=0.02), 0)  # the numba engine compiles (or loads its cache) once per process
    signals = [recording(i) for i in range(count)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spikes, start, cpu = [], time.perf_counter(), time.process_time()
    for i, x in enumerate(signals):
        spikes.append(len(run(x, i)[0]))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": elapsed, "cpu": cpu, "count": count, "spikes": spikes, "base_mb": base,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(which: str, count: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", which, str(count)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def converter(files: int, workers: int) -> dict:
    """The whole command on a folder of ``files`` recordings, in a child process (peak RSS: its largest process)."""
    from scipy.io import wavfile
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec"
        rec.mkdir()
        for i in range(files):
            x = recording(1000 + i)
            wavfile.write(rec / f"s{i % 4}_{i % 10}_{i}.wav", FS, (0.3 * x / np.abs(x).max() * 32767).astype(np.int16))
        code = ("import resource, sys; from sccl.audio.convert import main; main(sys.argv[1:]); "
                "use = [resource.getrusage(r) for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]; "
                "print('cpu', sum(u.ru_utime + u.ru_stime for u in use)); "
                "print('peak', max(u.ru_maxrss for u in use) / 1024)")
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, "--input", str(rec), "--labels",
                              r"s(?P<speaker>\d)_(?P<label>\d)_\d+\.wav", "--out-dir", str(Path(tmp) / "out"),
                              "--workers", str(workers)], capture_output=True, text=True, check=True, cwd=ROOT)
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "files": files, "peak_mb": float(out.stdout.split("peak")[-1]),
            "cpu": float(re.search(r"cpu ([\d.]+)", out.stdout).group(1)),
            "reported": re.search(r"([\d.]+) s per second of audio", out.stdout).group(1)}


def speedup(old: dict, new: dict) -> str:
    wall = (old["seconds"] / old["count"]) / (new["seconds"] / new["count"])
    cpu = (old["cpu"] / old["count"]) / (new["cpu"] / new["count"])
    return f"{wall:.1f}x (wall) / {cpu:.1f}x (CPU time)"


def line(name: str, r: dict) -> str:
    per = r["seconds"] / r["count"]
    return (f"{name:<34} {r['count']:>3} recordings {1 / per:6.2f} recordings/s {per / SECONDS:6.3f} s per second "
            f"of audio ({r['cpu'] / r['count'] / SECONDS:.3f} CPU-s); peak RSS {r['peak_mb']:4.0f} MiB, "
            f"+{r['peak_mb'] - r['base_mb']:.0f} MiB over the process before converting")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_measure(sys.argv[2], int(sys.argv[3]))))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", type=int, default=3, help="recordings for the previous implementation (~8 s each)")
    p.add_argument("--new", type=int, default=30, help="recordings for the current one (numba engine)")
    p.add_argument("--numpy", type=int, default=3, help="recordings for the current numpy engine (0: skip)")
    p.add_argument("--files", type=int, default=24, help="recordings for the whole converter (0: skip)")
    p.add_argument("--workers", type=int, default=1, help="the converter's --workers")
    args = p.parse_args()
    from sccl.audio.cochlea import compiled_available

    print(f"{SECONDS:.0f}-second {FS} Hz recordings, 700 channels; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    old = measure("old", args.old)
    print(line("previous (cochlea_reference)", old))
    fast = "numba" if compiled_available() else "numpy"
    new = measure(fast, args.new)
    print(line(f"current, {fast} engine", new))
    both = min(old["count"], new["count"])
    same = old["spikes"][:both] == new["spikes"][:both]
    print(f"-> current ({fast}) is {speedup(old, new)} the previous throughput; spike counts of the {both} "
          f"recordings both converted: {'identical' if same else 'DIFFERENT'} ({sum(old['spikes'][:both])} spikes)")
    if args.numpy and fast != "numpy":
        plain = measure("numpy", args.numpy)
        print(line("current, numpy engine (no numba)", plain))
        print(f"-> numpy engine: {speedup(old, plain)} the previous throughput")
    if args.files:
        r = converter(args.files, args.workers)
        per = r["seconds"] / r["files"]
        wall_min, cpu_min = 3000 * per * args.workers / 2 / 60, 3000 * r["cpu"] / r["files"] / 2 / 60
        print(f"whole converter, {args.workers} worker(s): {r['files']} files in {r['seconds']:.1f} s wall, "
              f"{r['cpu']:.1f} CPU-s (start-up included; it reports {r['reported']} s per second of audio); peak RSS "
              f"of its largest process {r['peak_mb']:.0f} MiB. 3000 such files on 2 workers: ~{wall_min:.0f} min at "
              f"this wall rate if they scale, ~{cpu_min:.0f} min from the CPU time (2 free cores)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
