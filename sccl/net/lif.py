"""One recurrent current-based LIF layer over a whole sequence, with a hand-written BPTT backward.

Time-major tensors: ``I`` (T, B, H) is the layer's feed-forward input current at every step, ``V`` (H, H) the
recurrent matrix (rows = presynaptic). With all states zero at t = 0, for t = 0..T-1 (original-spec.md §2.2):

    h(t)     = I[t] + s(t-1) @ V                      (s(-1) = 0)
    s(t)     = Heaviside(mem(t) - 1)                  (x > 0 -> 1)
    syn(t+1) = alpha * syn(t) + h(t)
    mem(t+1) = (beta * mem(t) + syn(t)) * (1 - s(t))  (reset factor detached; uses the OLD syn)

The output is the spike train ``O[t] = s(t)``. The forward performs these operations in the same order and with
the same roundings as the original step-by-step code, so float32 spikes are bit-identical to it.

Backward (surrogate ds/dx = 1 / (100 |x| + 1)^2 at x = mem - 1), with adjoints m = dL/dmem(t+1) and
dI[t] = dL/dh(t) = dL/dsyn(t+1), looping t = T-1 .. 1:

    o      = gO[t] + dI[t+1] @ V^T          (dL/ds(t): the direct gradient plus the recurrence)
    k      = (1 - s(t)) * m
    dI[t-1] = alpha * dI[t] + k             (dL/dsyn(t))
    m      = o * surrogate(mem(t) - 1) + beta * k

with dI[T-1] = 0 and m = 0 at the start, and afterwards ``dV = O[:-1]^T @ dI[1:]`` as one matmul.
Everything is plain PyTorch (device-agnostic); the per-step work is one ``addmm`` plus a few elementwise ops
writing into preallocated buffers.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


THRESHOLD = 1.0
SURROGATE_SCALE = 100.0

# Reused (T, B, H) scratch buffers for the membrane/surrogate record between a forward and its backward.
# Freshly allocated multi-MB tensors cost page faults on every training step on CPU; a buffer goes back here
# only after the backward that owned it has finished, so it is never shared by two live graphs.
_POOL: dict = {}
_POOL_MAX = 2


def _acquire(like: torch.Tensor) -> torch.Tensor:
    free = _POOL.get((tuple(like.shape), like.dtype, like.device))
    return free.pop() if free else torch.empty_like(like, memory_format=torch.contiguous_format)


def _release(t: torch.Tensor) -> None:
    free = _POOL.setdefault((tuple(t.shape), t.dtype, t.device), [])
    if len(free) < _POOL_MAX:
        free.append(t)


def lif_loop(I: torch.Tensor, V: torch.Tensor, alpha: float, beta: float, keep_mem: bool = False, M=None):
    """Run the layer forward without autograd. Returns ``(O, M)``: spikes (T, B, H) and, when ``keep_mem``,
    the membrane before each step's update ``M[t] = mem(t)`` (else ``None``); ``M`` may be given to write into."""
    T, B, H = I.shape
    O = torch.empty_like(I)
    if T == 0:
        return O, (torch.empty_like(I) if keep_mem else None)
    with torch.no_grad():
        Os = O.unbind(0)
        Is = I.unbind(0)
        if keep_mem:
            if M is None:
                M = torch.empty_like(I)
            Ms = M.unbind(0)
        else:
            M = None
            bufs = (I.new_empty(B, H), I.new_empty(B, H))
            Ms = [bufs[t & 1] for t in range(T)]
        mem = Ms[0]
        mem.zero_()
        syn = I.new_zeros(B, H)
        h = I.new_empty(B, H)
        # 0-dim tensors instead of Python floats: same values and roundings, no per-call scalar conversion
        thr = I.new_full((), THRESHOLD)
        a_t, b_t = I.new_full((), alpha), I.new_full((), beta)
        o_prev = None
        for t in range(T):
            o = Os[t]
            torch.gt(mem, thr, out=o)
            if t == T - 1:
                break
            nxt = Ms[t + 1]
            torch.mul(mem, b_t, out=nxt)
            nxt.add_(syn)
            nxt.addcmul_(nxt, o, value=-1.0)  # * (1 - s): exact, s is 0 or 1
            syn.mul_(a_t)
            if o_prev is None:
                syn.add_(Is[0])  # s(-1) = 0, so h(0) = I[0]
            else:
                torch.addmm(Is[t], o_prev, V, out=h)
                syn.add_(h)
            mem = nxt
            o_prev = o
    return O, M


class LIFFunction(torch.autograd.Function):
    """``O = LIFFunction.apply(I, V, alpha, beta)``; see the module docstring for the maths."""

    @staticmethod
    def forward(ctx, I, V, alpha, beta):
        I = I.contiguous()
        O, M = lif_loop(I, V, alpha, beta, keep_mem=True, M=_acquire(I))
        # the backward needs the membrane only through the surrogate: turn M into it in place (no new buffer)
        M.sub_(THRESHOLD).abs_().mul_(SURROGATE_SCALE).add_(1.0).pow_(-2)
        ctx.save_for_backward(O, V)
        ctx.sg = M  # not a saved tensor: it returns to the pool after the (single) backward
        ctx.alpha, ctx.beta = float(alpha), float(beta)
        return O

    @staticmethod
    @once_differentiable
    def backward(ctx, gO):
        O, V = ctx.saved_tensors
        SG = ctx.sg
        if SG is None:
            raise RuntimeError("backward through an LIF layer can run only once per forward (no retain_graph)")
        ctx.sg = None
        alpha, beta = ctx.alpha, ctx.beta
        need_I, need_V = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        T, B, H = O.shape
        if not (need_I or need_V) or T == 0:
            _release(SG)
            return None, None, None, None
        gO = gO.contiguous()
        dI = torch.empty_like(O)
        dI[T - 1].zero_()
        if T > 1:
            Vt = V.t()
            m = O.new_zeros(B, H)
            k = O.new_empty(B, H)
            o_buf = O.new_empty(B, H)
            Os, SGs, gOs, dIs = O.unbind(0), SG.unbind(0), gO.unbind(0), dI.unbind(0)
            for t in range(T - 1, 0, -1):
                if t == T - 1:
                    o = gOs[t]
                else:
                    o = torch.addmm(gOs[t], dIs[t + 1], Vt, out=o_buf)
                torch.addcmul(m, m, Os[t], value=-1.0, out=k)  # k = (1 - s) * m, exact
                torch.add(k, dIs[t], alpha=alpha, out=dIs[t - 1])
                torch.mul(o, SGs[t], out=m)
                m.add_(k, alpha=beta)
        _release(SG)
        dV = None
        if need_V:
            if T > 1:
                dV = torch.mm(O[:-1].reshape(-1, H).t(), dI[1:].reshape(-1, H))
            else:
                dV = torch.zeros_like(V)
        return (dI if need_I else None), dV, None, None


def lif_layer(I: torch.Tensor, V: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Spikes (T, B, H) of one LIF layer driven by ``I`` (T, B, H); differentiable in ``I`` and ``V`` when
    autograd needs it, otherwise a cheaper forward that keeps no membrane record."""
    if torch.is_grad_enabled() and (I.requires_grad or V.requires_grad):
        return LIFFunction.apply(I, V, alpha, beta)
    O, _ = lif_loop(I.contiguous(), V, alpha, beta, keep_mem=False)
    return O


def lif_states(I: torch.Tensor, V: torch.Tensor, alpha: float, beta: float):
    """Spikes and membrane record ``(O, M)`` with ``M[t] = mem(t)`` (before step t's update); no autograd."""
    return lif_loop(I.detach().contiguous(), V.detach(), alpha, beta, keep_mem=True)
