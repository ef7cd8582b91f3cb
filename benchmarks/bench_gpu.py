"""GPU benchmark: CUDA against CPU (exactness), then training speed at SHD size and packed runs per GPU.

    python benchmarks/bench_gpu.py                    # needs a CUDA device; about two minutes on one GPU
    python benchmarks/bench_gpu.py --batch-sizes 64,256,1024 --packed 1,2,4,8 --epoch-samples 8156

1. Exactness (TF32 off): the same weights and batch on CPU and CUDA give identical layer-3 spikes, logits within
   float32 tolerance and the seven gradients within float32 tolerance (relative to their scale).
2. Speed: a training step (forward, NLL, backward, Adamax) and a whole epoch of SHD's 8,156 training samples, for
   each batch size; printed as ms per step, s per epoch and samples/s. Anchor to beat: a comparable JAX recurrent
   SNN trains one SHD epoch in about 0.19 s on an A100 (about 37k samples/s).
3. Packing: N processes training at batch 64 at once on the one GPU (what ``--device cuda --jobs N`` does);
   printed as the summed samples/s against one process alone, and whether every packed run ends with the same
   weights (SHA-256) as a run alone.

CUDA graphs were not tried: no GPU has been available to measure whether launches dominate here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_model import NB_STEPS, shd_like_batch  # noqa: E402

from sccl.net.model import RecurrentSNN, SparseInput  # noqa: E402


SHD_TRAIN_SAMPLES = 8156


def sparse_batch(batch_size: int, seed: int, device):
    b, s, u, y = shd_like_batch(batch_size, seed)
    x = SparseInput.from_coo(b, s, u, None, batch_size=batch_size, nb_steps=NB_STEPS, device=device)
    return x, torch.as_tensor(y, device=device)


def train_step(net, opt, x, y) -> float:
    loss = F.nll_loss(F.log_softmax(net(x), dim=1), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def check_exactness(seed: int = 0) -> dict:
    """CPU vs CUDA on one batch with weights large enough for every layer to spike."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(seed)
    cpu = RecurrentSNN(weight_scale=1.0)
    gpu = RecurrentSNN(weight_scale=1.0).cuda()
    gpu.load_state_dict(cpu.state_dict())
    b, s, u, y = shd_like_batch(16, seed)
    out = {}
    for name, net, dev in (("cpu", cpu, "cpu"), ("cuda", gpu, "cuda")):
        x = SparseInput.from_coo(b, s, u, None, batch_size=16, nb_steps=NB_STEPS, device=dev)
        spikes3 = net.record(x)["spikes3"].cpu()
        logits = net(x)
        F.nll_loss(F.log_softmax(logits, dim=1), torch.as_tensor(y, device=dev)).backward()
        out[name] = (spikes3, logits.detach().cpu(), {n: p.grad.cpu() for n, p in net.named_parameters()})
    (s_c, l_c, g_c), (s_g, l_g, g_g) = out["cpu"], out["cuda"]
    grad_err = max(float((g_c[n] - g_g[n]).abs().max() / (g_c[n].abs().max() + 1e-12)) for n in g_c)
    result = {"layer3_spikes_identical": bool(torch.equal(s_c, s_g)), "layer3_spikes": int(s_c.sum()),
              "logits_max_abs_diff": float((l_c - l_g).abs().max()), "gradients_max_rel_diff": grad_err}
    result["pass"] = (result["layer3_spikes_identical"] and result["layer3_spikes"] > 0
                      and result["logits_max_abs_diff"] < 1e-4 and grad_err < 1e-3)
    return result


def weights_digest(net) -> str:
    """SHA-256 of the trained weights: packed runs must end where a run alone ends."""
    h = hashlib.sha256()
    for name, p in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def time_training(batch_size: int, steps: int, epoch_samples: int) -> dict:
    torch.manual_seed(0)
    net = RecurrentSNN().cuda()
    opt = torch.optim.Adamax(net.parameters(), lr=2e-4, betas=(0.9, 0.999))
    batches = [sparse_batch(batch_size, i, "cuda") for i in range(4)]
    for x, y in batches:  # warm-up
        train_step(net, opt, x, y)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        train_step(net, opt, x, y)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / steps
    n_batches = -(-epoch_samples // batch_size)
    return {"batch_size": batch_size, "ms_per_step": 1000 * step_s, "s_per_epoch": step_s * n_batches,
            "samples_per_s": batch_size / step_s, "weights": weights_digest(net)}


def packed_worker(steps: int) -> None:
    """One of N processes sharing the GPU: train ``steps`` steps at batch 64 and print samples/s as JSON."""
    r = time_training(64, steps, SHD_TRAIN_SAMPLES)
    print(json.dumps(r))


def time_packed(n: int, steps: int) -> tuple[float, set[str]]:
    """(summed samples/s, the distinct final-weight digests) of n processes training at once."""
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(steps)], stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return float(np.sum([r["samples_per_s"] for r in results])), {r["weights"] for r in results}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", default="64,256,1024")
    p.add_argument("--packed", default="1,2,4,8", help="numbers of processes sharing the GPU")
    p.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    p.add_argument("--epoch-samples", type=int, default=SHD_TRAIN_SAMPLES)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device: this benchmark needs a GPU (the CPU benchmark is benchmarks/bench_model.py)",
              file=sys.stderr)
        return 2
    if args.worker is not None:
        packed_worker(args.worker)
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    exact = check_exactness()
    print("exactness (TF32 off): " + ", ".join(f"{k} {v}" for k, v in exact.items()))
    print(f"\n{'batch':>6}{'ms/step':>10}{'s/epoch':>10}{'samples/s':>12}")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        r = time_training(bs, args.steps, args.epoch_samples)
        print(f"{bs:>6}{r['ms_per_step']:>10.2f}{r['s_per_epoch']:>10.3f}{r['samples_per_s']:>12.0f}")
    print("\nanchor: a JAX recurrent SNN, one SHD epoch in about 0.19 s on an A100 (about 37k samples/s)")
    print(f"\n{'processes':>10}{'samples/s (sum)':>17}{'vs one':>8}  final weights as a run alone")
    one, alone = None, None
    same = True
    for n in (int(k) for k in args.packed.split(",")):
        rate, digests = time_packed(n, args.steps)
        one, alone = one or rate, alone or digests
        same &= digests == alone
        print(f"{n:>10}{rate:>17.0f}{rate / one:>7.2f}x  {'identical' if digests == alone else 'DIFFERENT'}")
    return 0 if exact["pass"] and same else 1


if __name__ == "__main__":
    sys.exit(main())
