"""Benchmark: time compression of latents (sccl.replay.memory) against the original's element-wise loop.

    python benchmarks/bench_replay.py                           # 31 rounds, 1 thread, S in {50, 20, 10}, "or"
    python benchmarks/bench_replay.py --modes or,sum --rounds 25 --baseline-rounds 2

Per 64-sample batch of depth-1 latents (T = 100 steps, H = 200 binary units, ~8 % spiking), for each stored-step
count S (window w = 100 // S):

* compress: the original's ``generate_latent_subsample`` loop (Python triple loop over sample, unit and window,
  one ``torch.sum`` per element and a host-side ``if``, into a float32 (64, S, 200) tensor) against
  ``ReplayMemory.add`` (vectorised window sum + ``!= 0`` + bit packing into a fresh memory, labels included) and
  the bare vectorised :func:`sccl.replay.memory.compress`;
* uncompress: the original's run-time un-compression (one (64, 200) tensor per step: ``stored[:, t // w]`` at
  ``t mod w == 0``, zeros otherwise, here stacked into (64, 100, 200)) from its float32 store, against
  ``ReplayMemory.get`` (unpack bits + :func:`sccl.replay.memory.uncompress`) and the bare :func:`uncompress`.

Rounds are interleaved (every variant once per round, rotating start); the slow loop baseline runs only in the
first ``--baseline-rounds`` rounds (1 batch each). Reported: medians in ms and the speed-up (baseline / new).
Before timing, every variant must produce the same tensors as the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sccl.replay.memory import ReplayMemory, compress, uncompress  # noqa: E402


B, T, H = 64, 100, 200


# ---------------------------------------------------------------------------------------------- the original


def loop_compress(z: torch.Tensor, S: int, mode: str) -> torch.Tensor:
    """The original's element-wise compression: one torch.sum per (sample, unit, window)."""
    w = z.shape[1] // S
    out = torch.zeros(z.shape[0], S, z.shape[2])
    for b in range(z.shape[0]):
        for h in range(z.shape[2]):
            for k in range(S):
                s = torch.sum(z[b, k * w:(k + 1) * w, h])
                if s != 0:
                    out[b, k, h] = 1 if mode == "or" else s
    return out


def step_uncompress(stored: torch.Tensor, nb_steps: int, mode: str) -> torch.Tensor:
    """The original's un-compression inside the forward, one step at a time (stacked here)."""
    w = nb_steps // stored.shape[1]
    zero = torch.zeros(stored.shape[0], stored.shape[2])
    steps = []
    for t in range(nb_steps):
        k, r = t // w, t % w
        if mode == "or":
            steps.append(stored[:, k] if r == 0 else zero)
        else:
            steps.append((stored[:, k] > r).float())
    return torch.stack(steps, 1)


# ---------------------------------------------------------------------------------------------- timing


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--baseline-rounds", type=int, default=1, help="rounds that also run the slow loop baseline")
    ap.add_argument("--steps", default="50,20,10", help="stored steps S, comma-separated (each must divide 100)")
    ap.add_argument("--modes", default="or", help="'or', 'sum' or 'or,sum'")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.08, help="spike probability per unit and step")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    z = (torch.rand(B, T, H, generator=g) < args.rate).float()
    y = torch.randint(0, 20, (B,), generator=g)
    configs = [(S, m) for m in args.modes.split(",") for S in (int(s) for s in args.steps.split(","))]

    # setup and correctness
    variants = {}
    info = {}
    first_loop = {}
    for S, mode in configs:
        if args.baseline_rounds > 0:  # this run is also the loop baseline's first timed round
            t0 = time.perf_counter()
            ref_c = loop_compress(z, S, mode)
            first_loop[(S, mode, "orig compress")] = time.perf_counter() - t0
        else:
            ref_c = compress(z, S, mode)
        ref_u = step_uncompress(ref_c, T, mode)
        assert torch.equal(compress(z, S, mode), ref_c)
        assert torch.equal(uncompress(ref_c, T, mode), ref_u)
        mem = ReplayMemory("spikes", T, S, mode, units=H)
        mem.add(z, y)
        assert torch.equal(mem.get(range(B))[0], ref_u)
        info[(S, mode)] = (mem.memory_bytes_stored, ref_c.nbytes, mem.bits_per_value)
        v = {
            "orig compress": (lambda S=S, mode=mode: loop_compress(z, S, mode), True),
            "add (compress+pack)": (lambda S=S, mode=mode: ReplayMemory("spikes", T, S, mode, units=H).add(z, y), False),
            "compress": (lambda S=S, mode=mode: compress(z, S, mode), False),
            "orig uncompress": (lambda c=ref_c, mode=mode: step_uncompress(c, T, mode), False),
            "get (unpack+uncompress)": (lambda m=mem: m.get(range(B)), False),
            "uncompress": (lambda c=ref_c, mode=mode: uncompress(c, T, mode), False),
        }
        for name, (fn, slow) in v.items():
            variants[(S, mode, name)] = (fn, slow)

    times = {k: [first_loop[k]] if k in first_loop else [] for k in variants}
    keys = list(variants)
    for _ in range(2):  # warm-up of the fast variants
        for k in keys:
            if not variants[k][1]:
                variants[k][0]()
    for rnd in range(args.rounds):
        order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
        for k in order:
            fn, slow = variants[k]
            if slow and rnd + 1 >= args.baseline_rounds:  # round 0 of the baseline ran during the setup
                continue
            times[k].append(timed(fn))

    def med(k):
        return statistics.median(times[k]) * 1e3 if times[k] else float("nan")

    print(f"replay compression, batch {B} x T {T} x H {H} (depth 1, {args.rate:.0%} spikes), {args.threads} thread(s), "
          f"{args.rounds} rounds (loop baseline: {min(args.baseline_rounds, args.rounds)}), medians in ms")
    head = (f"{'S':>3} {'w':>3} {'mode':>4} | {'orig loop':>10} {'add+pack':>9} {'compress':>9} {'speed-up':>9} | "
            f"{'orig steps':>10} {'get+unpk':>9} {'uncompr':>8} {'speed-up':>9} | {'bytes f32':>9} {'stored':>7}")
    print(head)
    print("-" * len(head))
    for S, mode in configs:
        oc, ad, co = med((S, mode, "orig compress")), med((S, mode, "add (compress+pack)")), med((S, mode, "compress"))
        ou, ge, un = (med((S, mode, "orig uncompress")), med((S, mode, "get (unpack+uncompress)")),
                      med((S, mode, "uncompress")))
        stored, f32, _ = info[(S, mode)]
        print(f"{S:>3} {T // S:>3} {mode:>4} | {oc:>10.1f} {ad:>9.3f} {co:>9.3f} {oc / ad:>8.0f}x | "
              f"{ou:>10.3f} {ge:>9.3f} {un:>8.3f} {ou / ge:>8.1f}x | {f32:>9,} {stored:>7,}")
    print("speed-ups: orig loop / add+pack (compress), orig steps / get+unpack (uncompress); "
          "bytes: the original's float32 store vs this memory's payload")


if __name__ == "__main__":
    main()
