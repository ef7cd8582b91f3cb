"""A batch of binned spike counts kept sparse, and the input projection ``x @ W1`` computed from it.

The dense (B, T, 700) batch is ~5 % non-zero, so the layer-1 input currents are computed as a weighted
``embedding_bag`` (one bag per (step, sample), bag index ``t * B + b``: the result is already time-major) and the
weight gradient as ``CSR(X^T) @ dI``. Both are ordinary PyTorch sparse ops and run on CPU and CUDA.
Build a :class:`SparseInput` once per batch and reuse it (construction sorts and deduplicates the entries).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from sccl.core.defaults import SHD


def _as_long(a, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach().to("cpu")
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
            raise ValueError(f"SparseInput: '{name}' must hold integers, found {t.dtype}")
        return t.reshape(-1).to(torch.int64)
    arr = np.asarray(a)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise ValueError(f"SparseInput: '{name}' must hold integers, found {arr.dtype}")
    return torch.from_numpy(arr.reshape(-1).astype(np.int64))  # a copy: read-only inputs are fine


class SparseInput:
    """Spike counts of one batch, shape (B, T, N), stored as entries sorted by (bag, unit), bag = t * B + b.

    Attributes (all on ``device``): ``units`` (nnz,) int64, ``bags`` (nnz,) int64, ``offsets`` (T*B,) int64
    (first entry of every bag), ``counts`` (nnz,) float32 (duplicates already summed).
    """

    def __init__(self, units, bags, offsets, counts, batch_size: int, nb_steps: int, nb_inputs: int):
        self.units, self.bags, self.offsets, self.counts = units, bags, offsets, counts
        self.batch_size, self.nb_steps, self.nb_inputs = int(batch_size), int(nb_steps), int(nb_inputs)
        self._cache: dict = {}

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def from_coo(cls, batch_pos, step, unit, count=None, batch_size=None, nb_steps=None, nb_inputs: int = SHD["nb_units"],
                 device=None) -> "SparseInput":
        """From entry arrays (numpy or torch, any order, duplicates allowed and summed), e.g. the output of
        ``sccl.data.hdf5.BinnedSpikes.coo``. ``count=None`` means one spike per entry."""
        if batch_size is None or nb_steps is None:
            raise ValueError("SparseInput.from_coo needs batch_size and nb_steps")
        B, T, N = int(batch_size), int(nb_steps), int(nb_inputs)
        b = _as_long(batch_pos, "batch_pos")
        t = _as_long(step, "step")
        u = _as_long(unit, "unit")
        if not (len(b) == len(t) == len(u)):
            raise ValueError(f"SparseInput.from_coo: arrays differ in length ({len(b)}, {len(t)}, {len(u)})")
        if count is None:
            c = torch.ones(len(b), dtype=torch.float64)
        else:
            if isinstance(count, torch.Tensor):
                c = count.detach().to("cpu").reshape(-1).to(torch.float64)
            else:
                c = torch.from_numpy(np.asarray(count).reshape(-1).astype(np.float64))
            if len(c) != len(b):
                raise ValueError(f"SparseInput.from_coo: 'count' has {len(c)} entries, expected {len(b)}")
        for name, arr, high in (("batch_pos", b, B), ("step", t, T), ("unit", u, N)):
            if len(arr) and (int(arr.min()) < 0 or int(arr.max()) >= high):
                raise ValueError(f"SparseInput.from_coo: '{name}' outside [0, {high})")
        key = (t * B + b) * N + u
        uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
        summed = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, c)
        keep = summed != 0
        if not bool(keep.all()):
            uniq, summed = uniq[keep], summed[keep]
        return cls._from_sorted_keys(uniq, summed, B, T, N, device)

    @classmethod
    def from_dense(cls, x: torch.Tensor, device=None) -> "SparseInput":
        """From a dense (B, T, N) tensor of counts (any real values)."""
        if x.dim() != 3:
            raise ValueError(f"SparseInput.from_dense expects (B, T, N), got shape {tuple(x.shape)}")
        B, T, N = x.shape
        xt = x.detach().to("cpu").transpose(0, 1)  # (T, B, N): nonzero() then comes out in (bag, unit) order
        idx = xt.nonzero()
        vals = xt[idx[:, 0], idx[:, 1], idx[:, 2]].to(torch.float64)
        key = (idx[:, 0] * B + idx[:, 1]) * N + idx[:, 2]
        return cls._from_sorted_keys(key, vals, B, T, N, device if device is not None else x.device)

    @classmethod
    def _from_sorted_keys(cls, key, values, B, T, N, device) -> "SparseInput":
        bags = torch.div(key, N, rounding_mode="floor")
        units = key - bags * N
        per_bag = torch.bincount(bags, minlength=T * B)
        offsets = torch.cumsum(per_bag, 0) - per_bag
        out = cls(units, bags, offsets, values.to(torch.float32), B, T, N)
        out._exact = values  # float64 copy for double-precision use (exact for any count)
        return out.to(device) if device is not None else out

    # ------------------------------------------------------------------------------------------ access

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.batch_size, self.nb_steps, self.nb_inputs)

    @property
    def device(self) -> torch.device:
        return self.units.device

    @property
    def nnz(self) -> int:
        return int(self.units.numel())

    def __len__(self) -> int:
        return self.batch_size

    def __repr__(self) -> str:
        return f"SparseInput(shape={self.shape}, nnz={self.nnz}, device={self.device})"

    def to(self, device) -> "SparseInput":
        device = torch.device(device)
        if device == self.device:
            return self
        out = SparseInput(self.units.to(device), self.bags.to(device), self.offsets.to(device),
                          self.counts.to(device), self.batch_size, self.nb_steps, self.nb_inputs)
        if hasattr(self, "_exact"):
            out._exact = self._exact.to(device)
        return out

    def values(self, dtype: torch.dtype) -> torch.Tensor:
        """The counts in ``dtype`` (cached)."""
        if dtype == torch.float32:
            return self.counts
        key = ("values", dtype)
        if key not in self._cache:
            src = getattr(self, "_exact", self.counts)
            self._cache[key] = src.to(device=self.device, dtype=dtype)
        return self._cache[key]

    def to_dense(self, dtype: torch.dtype = torch.float32, time_major: bool = False) -> torch.Tensor:
        """Dense counts, (B, T, N) (or (T, B, N) when ``time_major``)."""
        B, T, N = self.shape
        out = torch.zeros(T * B, N, dtype=dtype, device=self.device)
        out[self.bags, self.units] = self.values(dtype)
        out = out.view(T, B, N)
        return out if time_major else out.transpose(0, 1).contiguous()

    def transpose_csr(self, dtype: torch.dtype) -> torch.Tensor:
        """``X^T`` as a sparse CSR matrix (N, T*B) in ``dtype`` (cached): the operator of the weight gradient."""
        key = ("xt", dtype)
        if key not in self._cache:
            B, T, N = self.shape
            order = torch.argsort(self.units * (T * B) + self.bags)
            rows = self.units[order]
            crow = torch.zeros(N + 1, dtype=torch.int64, device=self.device)
            crow[1:] = torch.cumsum(torch.bincount(rows, minlength=N), 0)
            with warnings.catch_warnings():  # "sparse CSR support is in beta" (once per process)
                warnings.simplefilter("ignore", UserWarning)
                self._cache[key] = torch.sparse_csr_tensor(
                    crow, self.bags[order], self.values(dtype)[order], size=(N, T * B), dtype=dtype,
                    device=self.device, check_invariants=False,
                )
        return self._cache[key]

    # ------------------------------------------------------------------------------------------ maths

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        """``x @ weight`` as a time-major (T, B, H) tensor, differentiable in ``weight``."""
        if weight.shape[0] != self.nb_inputs:
            raise ValueError(f"SparseInput has {self.nb_inputs} inputs but the weight has {weight.shape[0]} rows")
        if torch.is_grad_enabled() and weight.requires_grad:
            return _SparseProjection.apply(weight, self)
        return _project(weight, self)


def _project(weight: torch.Tensor, x: SparseInput) -> torch.Tensor:
    B, T, _ = x.shape
    H = weight.shape[1]
    if x.nnz == 0:
        return weight.new_zeros(T, B, H)
    out = F.embedding_bag(x.units, weight, x.offsets, mode="sum", per_sample_weights=x.values(weight.dtype))
    return out.view(T, B, H)


class _SparseProjection(torch.autograd.Function):
    """``x @ W`` for a :class:`SparseInput` x: embedding_bag forward, ``CSR(X^T) @ dI`` backward."""

    @staticmethod
    def forward(ctx, weight, x):
        ctx.x = x
        return _project(weight, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x = ctx.x
        B, T, N = x.shape
        g = grad.reshape(T * B, -1)
        if x.nnz == 0:
            return g.new_zeros(N, g.shape[1]), None
        return x.transpose_csr(g.dtype) @ g.contiguous(), None
