"""Benchmark: sccl.net.model.RecurrentSNN against a plain step-by-step implementation of the original algorithm.

    python benchmarks/bench_model.py                       # 10 interleaved rounds after 2 warm-up rounds, 1 thread
    python benchmarks/bench_model.py --rounds 15 --device auto --threads 1 --batch-size 64

Measured per round, every variant once (round-robin, with a rotating start so noise hits all alike):

* train step: input preparation + forward + max over time + log_softmax + NLL + zero_grad + backward + Adamax
  (lr 2e-4, betas (0.9, 0.999)) step + loss.item();
* inference batch: input preparation + no_grad forward + argmax.

The baseline does what the original ``run_snn`` does: ``to_dense()`` of an un-coalesced sparse COO batch, a dense
einsum input projection, one Python time loop over interleaved layers with autograd, the spike as a custom
autograd Function (fast-sigmoid surrogate), the readout recurrence, the zero-weighted regularisers of the original
loss. ``to_dense`` is also timed on its own so its share can be subtracted. The project model gets a
``SparseInput`` built once per batch (as the training code will use it). Synthetic SHD-like data: drifting
formant-like bands, ~240k non-zeros per 64 x 100 x 700 batch, counts up to ~5, step 0 empty.

Before timing, both implementations run on the same batch and weights and must agree (float32 tolerance).
The default weight scale is 1.0 (not the original's 0.2) so that every layer spikes and the check is not vacuous;
the timing does not depend on it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sccl.core.device import resolve_device, set_threads  # noqa: E402
from sccl.net.model import RecurrentSNN, SparseInput  # noqa: E402


NB_INPUTS, NB_STEPS, MAX_TIME = 700, 100, 1.4


# ----------------------------------------------------------------------------------------------
# synthetic SHD-like data, binned like the original (np.digitize onto linspace(0, 1.4, 100))


def shd_like_batch(batch_size: int, seed: int = 0):
    """(batch_pos, step, unit) of every spike (duplicates not merged) and labels."""
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, MAX_TIME, NB_STEPS)
    bs, ss, us = [], [], []
    for b in range(batch_size):
        n = int(rng.integers(2200, 6800))
        start = rng.uniform(0.0, 0.25)
        dur = rng.uniform(0.6, 1.1)
        t = np.sort(rng.uniform(start, start + dur, n))
        nb_bands = int(rng.integers(3, 6))
        band = rng.integers(0, nb_bands, n)
        c0 = rng.uniform(60, 640, nb_bands)
        c1 = np.clip(c0 + rng.normal(0, 80, nb_bands), 20, 680)
        width = rng.uniform(12, 32, nb_bands)
        frac = (t - start) / dur
        centre = c0[band] + (c1[band] - c0[band]) * frac
        u = np.rint(centre + width[band] * rng.standard_normal(n)).astype(np.int64)
        s = np.digitize(t, edges)
        keep = (s < NB_STEPS) & (u >= 0) & (u < NB_INPUTS)
        bs.append(np.full(int(keep.sum()), b))
        ss.append(s[keep])
        us.append(u[keep])
    y = rng.integers(0, 20, batch_size)
    return np.concatenate(bs), np.concatenate(ss), np.concatenate(us), y


# ----------------------------------------------------------------------------------------------
# the baseline: the original algorithm, step by step


class SurrGradSpike(torch.autograd.Function):
    scale = 100.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        out = torch.zeros_like(x)
        out[x > 0] = 1.0
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output.clone() / (SurrGradSpike.scale * torch.abs(x) + 1.0) ** 2


spike_fn = SurrGradSpike.apply


def baseline_run(inputs, p, alpha, beta):
    """The original ``run_snn``: returns (out_rec (B, T+1, C), layer-3 spike record (B, T, H3))."""
    w1, w2, w3, v1, v2, v3, w_out = p
    B, T, _ = inputs.shape
    dev, dt = inputs.device, inputs.dtype
    h1_from_input = torch.einsum("abc,cd->abd", (inputs, w1))
    syn1 = torch.zeros((B, w1.shape[1]), device=dev, dtype=dt)
    mem1 = torch.zeros((B, w1.shape[1]), device=dev, dtype=dt)
    out1 = torch.zeros((B, w1.shape[1]), device=dev, dtype=dt)
    syn2 = torch.zeros((B, w2.shape[1]), device=dev, dtype=dt)
    mem2 = torch.zeros((B, w2.shape[1]), device=dev, dtype=dt)
    out2 = torch.zeros((B, w2.shape[1]), device=dev, dtype=dt)
    syn3 = torch.zeros((B, w3.shape[1]), device=dev, dtype=dt)
    mem3 = torch.zeros((B, w3.shape[1]), device=dev, dtype=dt)
    out3 = torch.zeros((B, w3.shape[1]), device=dev, dtype=dt)
    spk_rec = []
    for t in range(T):
        h1 = h1_from_input[:, t] + torch.einsum("ab,bc->ac", (out1, v1))
        out1 = spike_fn(mem1 - 1.0)
        rst = out1.detach()
        new_syn = alpha * syn1 + h1
        new_mem = (beta * mem1 + syn1) * (1.0 - rst)
        mem1, syn1 = new_mem, new_syn

        h2 = torch.einsum("ab,bc->ac", (out1, w2)) + torch.einsum("ab,bc->ac", (out2, v2))
        out2 = spike_fn(mem2 - 1.0)
        rst = out2.detach()
        new_syn = alpha * syn2 + h2
        new_mem = (beta * mem2 + syn2) * (1.0 - rst)
        mem2, syn2 = new_mem, new_syn

        h3 = torch.einsum("ab,bc->ac", (out2, w3)) + torch.einsum("ab,bc->ac", (out3, v3))
        out3 = spike_fn(mem3 - 1.0)
        rst = out3.detach()
        new_syn = alpha * syn3 + h3
        new_mem = (beta * mem3 + syn3) * (1.0 - rst)
        mem3, syn3 = new_mem, new_syn
        spk_rec.append(out3)
    spk_rec = torch.stack(spk_rec, dim=1)
    h2 = torch.einsum("abc,cd->abd", (spk_rec, w_out))
    flt = torch.zeros((B, w_out.shape[1]), device=dev, dtype=dt)
    out = torch.zeros((B, w_out.shape[1]), device=dev, dtype=dt)
    out_rec = [out]
    for t in range(T):
        new_flt = alpha * flt + h2[:, t]
        new_out = beta * out + flt
        flt, out = new_flt, new_out
        out_rec.append(out)
    return torch.stack(out_rec, dim=1), spk_rec


class Baseline:
    def __init__(self, net: RecurrentSNN, lr: float):
        self.alpha, self.beta = net.alpha, net.beta
        self.params = [p.detach().clone().requires_grad_(True) for p in
                       (net.w1, net.w2, net.w3, net.v1, net.v2, net.v3, net.w_out)]
        self.opt = torch.optim.Adamax(self.params, lr=lr, betas=(0.9, 0.999))

    def train_step(self, x_coo, y):
        x = x_coo.to_dense()
        out_rec, spks = baseline_run(x, self.params, self.alpha, self.beta)
        m, _ = torch.max(out_rec, 1)
        log_p_y = F.log_softmax(m, dim=1)
        reg_loss = 0.0 * torch.sum(spks) + 0.0 * torch.mean(torch.sum(torch.sum(spks, dim=0), dim=0) ** 2)
        loss = F.nll_loss(log_p_y, y) + reg_loss
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    @torch.no_grad()
    def infer(self, x_coo):
        out_rec, _ = baseline_run(x_coo.to_dense(), self.params, self.alpha, self.beta)
        return torch.max(out_rec, 1).values.argmax(1)


class Project:
    def __init__(self, net: RecurrentSNN, lr: float):
        self.net = net
        self.opt = torch.optim.Adamax(net.parameters(), lr=lr, betas=(0.9, 0.999))

    def train_step(self, x, y):
        logits = self.net(x)
        loss = F.nll_loss(F.log_softmax(logits, dim=1), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    @torch.no_grad()
    def infer(self, x):
        return self.net(x).argmax(1)


# ----------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up rounds (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op CPU threads (default 1)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--weight-scale", type=float, default=1.0,
                    help="init scale (default 1.0 so that every layer spikes; the original's is 0.2)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    B = args.batch_size
    bpos, step, unit, y_np = shd_like_batch(B, args.seed)
    idx = torch.from_numpy(np.stack([bpos, step, unit]))
    x_coo = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (B, NB_STEPS, NB_INPUTS),
                                    check_invariants=False).to(device)  # un-coalesced, like the original's batches
    y = torch.from_numpy(y_np).to(device)
    t0 = time.perf_counter()
    x_sp = SparseInput.from_coo(bpos, step, unit, None, batch_size=B, nb_steps=NB_STEPS, device=device)
    build_ms = (time.perf_counter() - t0) * 1e3
    dense = x_sp.to_dense()
    print(f"device {device}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"batch {B} x {NB_STEPS} x {NB_INPUTS}: {len(bpos)} spikes, {x_sp.nnz} non-zeros "
          f"({x_sp.nnz / dense.numel():.1%} dense), max count {int(dense.max())}, "
          f"step-0 entries {int(dense[:, 0].sum())}; SparseInput built in {build_ms:.1f} ms")

    gen = torch.Generator().manual_seed(args.seed + 1)
    net0 = RecurrentSNN(weight_scale=args.weight_scale, generator=gen).to(device)
    lr = 2e-4

    # first call of the project model in a fresh process (a throwaway copy, so the weights stay untouched)
    scratch = Project(copy.deepcopy(net0), lr)
    t0 = time.perf_counter()
    scratch.train_step(x_sp, y)
    sync()
    first_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    scratch.infer(x_sp)
    sync()
    first_infer = time.perf_counter() - t0
    del scratch

    base = Baseline(net0, lr)
    proj = Project(net0, lr)

    # the two implementations must compute the same thing
    with torch.no_grad():
        ref_trace, ref_spk = baseline_run(x_coo.to_dense(), base.params, base.alpha, base.beta)
        ref_logits = ref_trace.max(1).values
        logits = proj.net(x_sp)
        rec = proj.net.record(x_sp)
    max_diff = float((logits - ref_logits).abs().max())
    scale = float(ref_logits.abs().max())
    spike_mismatch = int((rec["spikes3"].transpose(0, 1) != ref_spk).sum())
    rates = [float(rec[f"spikes{i}"].mean()) for i in (1, 2, 3)]
    same_pred = bool(torch.equal(logits.argmax(1), ref_logits.argmax(1)))
    ok = max_diff <= 1e-4 * max(scale, 1.0) and spike_mismatch == 0
    print(f"check: max |logits - baseline| = {max_diff:.2e} (logits up to {scale:.1f}), "
          f"layer-3 spike mismatches {spike_mismatch}, same argmax {same_pred}, "
          f"spike rates {rates[0]:.3f}/{rates[1]:.3f}/{rates[2]:.3f} -> {'OK' if ok else 'MISMATCH'}")
    if not ok:
        print("the implementations disagree; timings would not be comparable", file=sys.stderr)
        return 1

    variants = {
        "baseline train": lambda: base.train_step(x_coo, y),
        "project train": lambda: proj.train_step(x_sp, y),
        "baseline infer": lambda: base.infer(x_coo).cpu(),
        "project infer": lambda: proj.infer(x_sp).cpu(),
        "to_dense (in baseline)": lambda: x_coo.to_dense(),
    }
    names = list(variants)
    times = {n: [] for n in names}
    for r in range(args.warmup + args.rounds):
        for k in range(len(names)):
            name = names[(k + r) % len(names)]
            sync()
            t0 = time.perf_counter()
            variants[name]()
            sync()
            if r >= args.warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)

    med = {n: statistics.median(v) for n, v in times.items()}
    mins = {n: min(v) for n, v in times.items()}
    print(f"\n{args.rounds} interleaved rounds after {args.warmup} warm-up rounds (ms)")
    print(f"{'variant':<24}{'median':>10}{'min':>10}")
    for n in names:
        print(f"{n:<24}{med[n]:>10.1f}{mins[n]:>10.1f}")
    td = med["to_dense (in baseline)"]
    for kind in ("train", "infer"):
        b, p = med[f"baseline {kind}"], med[f"project {kind}"]
        paired = statistics.median(x / y for x, y in zip(times[f"baseline {kind}"], times[f"project {kind}"]))
        print(f"speed-up {kind:<6} baseline/project: medians {b / p:.2f}x, mins "
              f"{mins[f'baseline {kind}'] / mins[f'project {kind}']:.2f}x, per-round median {paired:.2f}x"
              f"  (baseline without its to_dense: {(b - td) / p:.2f}x)")
    print(f"project first call (fresh process): train step {first_train * 1e3:.0f} ms, inference {first_infer * 1e3:.0f} ms")
    if device.type == "cpu" and args.threads == 1 and B == 64:
        tr = med["baseline train"] / med["project train"]
        inf = med["baseline infer"] / med["project infer"]
        verdict = "PASS" if tr >= 3.0 and inf >= 2.8 and first_train < 1.0 else "FAIL"
        print(f"targets (1-thread CPU): train >= 3x ({tr:.2f}x), inference >= 2.8x ({inf:.2f}x), "
              f"first call < 1 s ({first_train:.2f} s): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
