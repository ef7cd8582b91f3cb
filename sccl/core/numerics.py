"""Which float32 rounding this machine's torch build does: a short fingerprint of torch's own kernels.

Float32 results depend on the CPU's vector instructions (AVX2 vs AVX-512 kernels sum in other orders), and a
one-ulp difference flips spikes: a short run then moves by a few points. Numbers recorded on one machine (the
float32 golden test's) can therefore be compared exactly only on a machine with the same fingerprint. The
computation uses torch alone (none of this project's code), so a change of our code never changes the
fingerprint: it cannot hide a regression. The fingerprint also hashes the kernels torch dispatches to
(``torch.backends.cpu.get_cpu_capability()``, e.g. ``ATEN_CPU_CAPABILITY=avx2``), which a short computation may
not reveal.

It is information, never a mask: the README check compares numbers within seed bands on every machine
(:mod:`sccl.report.readme_check`), and the float64 golden test (``tests/test_golden64.py``) checks a whole tiny run on
every CPU.
"""

from __future__ import annotations

import hashlib

import torch


def fingerprint() -> str:
    """12 hex digits identifying the float32 results of the kernels a run uses (matmul, sparse bags, exp, log-
    softmax, reductions, Adamax) on this machine, one thread, and the kernels' CPU capability."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(12345)
        x = (torch.rand(32 * 60, 700, generator=g) < 0.05).float()
        w1 = torch.randn(700, 200, generator=g) * 0.01
        w2 = torch.randn(200, 100, generator=g) * 0.07
        w1.requires_grad_(True)
        idx = x.nonzero()
        bags = torch.nn.functional.embedding_bag(idx[:, 1], w1, torch.searchsorted(idx[:, 0].contiguous(),
                                                 torch.arange(x.shape[0])), mode="sum")
        h = torch.sigmoid(torch.mm(x, w1) - bags * 0.5)
        z = torch.mm(h, w2).view(32, 60, 100).amax(1)
        loss = torch.nn.functional.log_softmax(z, 1)[:, 0].mean().neg() + torch.exp(-h).mean()
        loss.backward()
        opt = torch.optim.Adamax([w1], lr=1e-3)
        opt.step()
        digest = hashlib.sha256(capability().encode())
        for t in (h, z, loss, w1.detach()):
            digest.update(t.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()[:12]
    finally:
        torch.set_num_threads(threads)


def capability() -> str:
    """The CPU kernels torch dispatches to here (DEFAULT, AVX2, AVX512, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def describe() -> str:
    return f"float32 numerics {fingerprint()} (torch {torch.__version__}, {capability()})"
