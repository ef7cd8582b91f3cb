"""Replay memories: (compressed) latent replay and raw-input rehearsal, stored at their claimed size.

Conventions: activity is batch-first ``(N, T, H)``; ``S`` stored steps per sample (``--latent-subsample``) and the
window ``w = T // S``. ``S`` must divide ``T`` (otherwise :class:`~sccl.core.errors.ConfigError`), so "1:w" is the
compression ratio in time. Three kinds of data (original-spec.md §3.2-3.4):
* ``"spikes"``   binary spikes of hidden layer 1..3 (latent depth d >= 1);
* ``"currents"`` the layer-1 input currents ``x @ W1`` (latent depth 0, real-valued);
* ``"counts"``   raw input spike counts (700 channels; compressed rehearsal).

**Compression** (:func:`compress`, window k covers steps ``[k*w, k*w + w)``; vectorised as a reshape to
``(N, S, w, H)`` and one sum over the window):
===========  ====================================  ====================================
kind         mode ``"or"`` (default, the paper's)  mode ``"sum"``
===========  ====================================  ====================================
spikes       1 if any spike in the window, else 0  the spike count of the window (0..w)
currents     the window's sum of currents          the window's sum of currents
counts       the window's sum of counts            the window's sum of counts
===========  ====================================  ====================================

**Un-compression** (:func:`uncompress`, done when replaying at T steps, so the time constants are respected; the
fewer-step replay of :mod:`sccl.replay.batches` runs the S steps instead): "or" spikes -> the stored bit at the
window's first step ``t = k*w``, zeros elsewhere; "sum" spikes -> a burst of n consecutive spikes from the
window's first step (1 at ``k*w + r`` when ``stored[k] > r``); currents and counts -> the window sum at the
window's first step, zeros elsewhere. Raw counts un-compressed this way and fed to the network as its input give
exactly the original's "inject x_c @ W1 at t mod w == 0", the projection being linear. With ``S = T`` (w = 1)
both directions are the identity.

**Storage** (:class:`ReplayMemory`; payloads are numpy arrays on the CPU):
* binary spikes ("or" spikes, or any spikes with w = 1) are bit-packed, 1 bit per value, FLAT over the whole
  memory: the bit stream is the concatenation of every sample's ``S x H`` values in insertion order, kept in
  chunks (one per ``add``) that all start on a byte boundary. When the stream so far does not end on a byte
  boundary, ``add`` takes back the last partial byte and re-packs its bits in front of the new ones, so the total
  stored is ``ceil(total bits / 8)`` bytes: at most 7 padding bits in the whole memory, only when the total bit
  count is not a multiple of 8, and counted in ``memory_bytes_stored``. Example: 2,560 depth-3 latents
  (50 units) at S = 10 -> 1,280,000 bits = exactly 160,000 bytes, however they are added;
* counts ("sum" spikes, raw counts) in the smallest unsigned integer type that holds the chunk's largest count
  (uint8 normally; upcast to uint16/32/64 when needed, per chunk); negative or fractional counts are rejected;
* currents in ``float_dtype`` (float32 by default; float16 halves them and is checked for overflow; float64 is
  allowed for exact tests).

**Accounting**: ``memory_bits_analytic = samples x units x S x bits_per_value`` with bits per value 1 for binary
spikes, ``ceil(log2(w + 1))`` for "sum" spike counts (max count w), 32/16/64 for currents, and for raw counts
``ceil(log2(max + 1))`` of the largest count actually stored (at least 1). The paper counts every value as one
bit (its raw-rehearsal figure treats raw input as binary); that number is ``paper_bits``, so for raw counts it is
smaller than ``memory_bits_analytic`` when counts exceed 1. ``memory_bytes_stored`` is the ``.nbytes`` of the
stored payload arrays (labels excluded; they are ``label_bytes``, smallest unsigned type too).
"""

from __future__ import annotations

import bisect

import numpy as np
import torch

from sccl.core.errors import ConfigError
from sccl.net.sparse_input import SparseInput
from sccl.replay.batches import training_batches


__all__ = ["KINDS", "MODES", "divisors", "check_stored_steps", "kind_for_depth", "compress", "uncompress", "ReplayMemory",
           "payload_bytes"]

KINDS = ("spikes", "currents", "counts")
MODES = ("or", "sum")
_FLOAT_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
_UINTS = (np.uint8, np.uint16, np.uint32, np.uint64)


# ---------------------------------------------------------------------------------------------- checks


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n`` in ascending order."""
    n = int(n)
    return [d for d in range(1, n + 1) if n % d == 0]


def check_stored_steps(nb_steps: int, stored_steps: int) -> int:
    """The window ``w = nb_steps // stored_steps``; ConfigError unless ``stored_steps`` divides ``nb_steps``."""
    T = int(nb_steps)
    if T < 1:
        raise ValueError(f"nb_steps must be positive, got {nb_steps!r}")
    ok = isinstance(stored_steps, (int, np.integer)) and not isinstance(stored_steps, bool)
    if not ok or stored_steps < 1 or T % int(stored_steps):
        listed = ", ".join(str(d) for d in divisors(T))
        raise ConfigError(f"--latent-subsample {stored_steps} must divide the {T} time steps (divisors: {listed})")
    return T // int(stored_steps)


def _check_kind_mode(kind: str, mode: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def payload_bytes(kind: str, mode: str, samples: int, units: int, stored_steps: int, nb_steps: int,
                  float_bytes: int = 4) -> int:
    """The bytes :attr:`ReplayMemory.memory_bytes_stored` will hold for ``samples`` samples of ``units`` values at
    ``stored_steps`` of ``nb_steps`` steps, before storing them: spikes that are binary (OR, or no compression) as
    one flat bit stream, "sum" counts of spikes one byte each (windows of at most 255 steps), currents
    ``float_bytes`` each."""
    _check_kind_mode(kind, mode)
    values = int(samples) * int(units) * int(stored_steps)
    if kind == "spikes" and (mode == "or" or stored_steps == nb_steps):
        return -(-values // 8)
    if kind == "spikes":
        return values
    if kind == "currents":
        return values * float_bytes
    raise ValueError("raw counts hold the largest count's smallest type: their bytes depend on the data")


def kind_for_depth(depth: int) -> str:
    """``"currents"`` for latent depth 0, ``"spikes"`` for depths 1..3."""
    if depth not in (0, 1, 2, 3):
        raise ValueError(f"depth must be 0, 1, 2 or 3, got {depth!r}")
    return "currents" if depth == 0 else "spikes"


def _as_3d(z, name: str = "z") -> torch.Tensor:
    if isinstance(z, SparseInput):
        z = z.to_dense()
    if isinstance(z, np.ndarray):
        z = torch.from_numpy(z)
    if not isinstance(z, torch.Tensor) or z.dim() != 3:
        shape = tuple(z.shape) if hasattr(z, "shape") else type(z).__name__
        raise ValueError(f"{name} must be a (N, T, H) tensor, got {shape}")
    return z


# ---------------------------------------------------------------------------------------------- maths


def compress(z: torch.Tensor, stored_steps: int, mode: str = "or", kind: str = "spikes") -> torch.Tensor:
    """Time-compress batch-first activity ``z`` (N, T, H) to (N, S, H) (see the module docstring).

    The result has ``z``'s dtype when that is floating point, float32 otherwise, and stays on ``z``'s device."""
    _check_kind_mode(kind, mode)
    z = _as_3d(z)
    N, T, H = z.shape
    w = check_stored_steps(T, stored_steps)
    if not z.is_floating_point():
        z = z.to(torch.float32)
    s = _window_sum(z, stored_steps, w)
    if kind == "spikes" and mode == "or":
        s.ne_(0)  # in place (s is fresh): the original's `if s != 0: store 1`
    return s


def _window_sum(z: torch.Tensor, S: int, w: int) -> torch.Tensor:
    """(N, T, H) -> (N, S, H) sums over windows of w steps (a fresh tensor)."""
    N, _, H = z.shape
    v = z.reshape(N, S, w, H)
    if w == 1:
        return v[:, :, 0].clone()
    if w >= 8:
        return v.sum(2)
    s = v[:, :, 0] + v[:, :, 1]  # small windows: w - 1 strided adds beat a reduction over a short middle dim
    for r in range(2, w):
        s += v[:, :, r]
    return s


def uncompress(c: torch.Tensor, nb_steps: int, mode: str = "or", kind: str = "spikes",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Spread compressed activity ``c`` (N, S, H) back over ``nb_steps`` steps: (N, T, H) in ``dtype``."""
    _check_kind_mode(kind, mode)
    c = _as_3d(c, "c")
    N, S, H = c.shape
    w = check_stored_steps(nb_steps, S)
    c = c.to(dtype)
    if kind == "spikes" and mode == "sum":
        out = torch.empty(N, S, w, H, dtype=dtype, device=c.device)
        for r in range(w):  # a burst: spike at k*w + r while the count exceeds r
            torch.gt(c, r, out=out[:, :, r])
        return out.view(N, nb_steps, H)
    if w == 1:
        return c.clone()
    out = torch.zeros(N, S, w, H, dtype=dtype, device=c.device)
    out[:, :, 0, :] = c
    return out.view(N, nb_steps, H)


def _smallest_uint(max_value: int):
    for t in _UINTS:
        if max_value <= np.iinfo(t).max:
            return t
    raise OverflowError(f"count {max_value} does not fit in 64 bits")


# ---------------------------------------------------------------------------------------------- storage


class ReplayMemory:
    """Compressed samples and their labels, stored at the size the accounting claims (module docstring).

    ``kind``: "spikes", "currents" or "counts"; ``nb_steps`` T; ``stored_steps`` S (must divide T); ``mode``
    "or" or "sum"; ``units`` H (None: taken from the first ``add``); ``float_dtype`` for currents; ``depth`` is
    only remembered (for :meth:`training_batches` and :meth:`describe`).
    """

    def __init__(self, kind: str, nb_steps: int, stored_steps: int, mode: str = "or", units: int | None = None,
                 float_dtype: torch.dtype = torch.float32, depth: int | None = None):
        _check_kind_mode(kind, mode)
        self.kind, self.mode = kind, mode
        self.nb_steps = int(nb_steps)
        self.window = check_stored_steps(self.nb_steps, stored_steps)
        self.stored_steps = int(stored_steps)
        if units is not None and int(units) < 1:
            raise ValueError(f"units must be positive, got {units!r}")
        self.units = None if units is None else int(units)
        if float_dtype not in _FLOAT_DTYPES:
            raise ValueError(f"float_dtype must be float16, float32 or float64, got {float_dtype}")
        self.float_dtype = float_dtype
        self.depth = depth
        self.binary = kind == "spikes" and (mode == "or" or self.window == 1)
        self._chunks: list[np.ndarray] = []   # packed bits (binary) or (n, S, H) arrays
        self._starts: list[int] = []          # first bit (binary) or first sample of every chunk
        self._nbits = 0
        self._labels: list[np.ndarray] = []
        self._n = 0
        self._max_count = 0
        self._spikes_seen = 0    # spikes of the full-resolution latents added (compression diagnostics)
        self._windows_seen = 0   # their unit-windows, and those holding at least one spike
        self._windows_active = 0

    # ------------------------------------------------------------------------------------------ adding

    def add(self, z, labels, compressed: bool | None = None) -> None:
        """Store samples: ``z`` full-resolution (N, T, H) activity (compressed here) or already compressed
        (N, S, H) (``compressed=None`` decides from the time dimension); a :class:`SparseInput` is densified.
        ``labels``: N integer class labels."""
        z = _as_3d(z)
        N, steps, H = z.shape
        if self.units is not None and H != self.units:
            raise ValueError(f"this memory stores {self.units} units, got {H}")
        if compressed is None:
            if steps not in (self.nb_steps, self.stored_steps):
                raise ValueError(f"expected {self.nb_steps} (raw) or {self.stored_steps} (compressed) steps, "
                                 f"got {steps}")
            compressed = steps == self.stored_steps
        expected = self.stored_steps if compressed else self.nb_steps
        if steps != expected:
            raise ValueError(f"expected {expected} steps ({'compressed' if compressed else 'raw'}), got {steps}")
        y = torch.as_tensor(labels).detach().to("cpu").reshape(-1)
        if len(y) != N:
            raise ValueError(f"{N} samples but {len(y)} labels")
        if y.is_floating_point() or (len(y) and int(y.min()) < 0):
            raise ValueError("labels must be non-negative integers")
        self.units = int(H)
        z = z.detach()
        if not z.is_floating_point():
            z = z.to(torch.float64)
        c = z if compressed else _window_sum(z, self.stored_steps, self.window)
        c = c.to("cpu")
        if self.kind == "spikes" and not compressed:
            self._spikes_seen += int(c.sum())
            self._windows_seen += c.numel()
            self._windows_active += int((c != 0).sum())

        if self.binary:
            # "or" from full resolution: any window sum != 0 is a 1 (compress()); otherwise (given compressed, or
            # "sum" with w = 1) anything but 0/1 means the input was not binary spikes
            if (compressed or self.mode == "sum") and bool(((c != 0) & (c != 1)).any()):
                raise ValueError("binary spike memory got values other than 0 and 1")
            self._append_bits((c != 0).numpy().reshape(-1))
        elif self.kind == "currents":
            arr = c.to(self.float_dtype).numpy()
            if not np.isfinite(arr).all():
                raise ValueError(f"currents are not finite in {self.float_dtype} (overflow?)")
            self._append_chunk(arr)
        else:  # counts: "sum" spikes or raw counts
            if N and bool((c < 0).any() | (c != torch.round(c)).any()):
                raise ValueError(f"{self.kind} memory needs non-negative integer counts")
            top = int(c.max()) if c.numel() else 0
            if self.kind == "spikes" and top > self.window:
                raise ValueError(f"a window of {self.window} steps holds at most {self.window} spikes, got {top} "
                                 f"(spike latents must be binary)")
            self._append_chunk(c.numpy().astype(_smallest_uint(top)))
            self._max_count = max(self._max_count, top)
        self._labels.append(y.numpy().astype(_smallest_uint(int(y.max()) if len(y) else 0)))
        self._n += N

    def _append_chunk(self, arr: np.ndarray) -> None:
        if len(arr):
            self._starts.append(self._n)
            self._chunks.append(np.ascontiguousarray(arr))

    def _append_bits(self, flat: np.ndarray) -> None:
        if flat.size == 0:
            return
        n_new = flat.size
        start = self._nbits
        keep = self._nbits % 8
        if keep:  # take back the last partial byte so the stream stays flat
            last = self._chunks[-1]
            tail = np.unpackbits(last[-1:])[:keep].astype(bool)
            start -= keep
            if len(last) == 1:
                self._chunks.pop()
                self._starts.pop()
            else:
                self._chunks[-1] = last[:-1].copy()
            flat = np.concatenate([tail, flat])
        self._chunks.append(np.packbits(flat))
        self._starts.append(start)
        self._nbits += n_new

    # ------------------------------------------------------------------------------------------ reading

    def _read_bits(self, start: int, n: int) -> np.ndarray:
        """Bits [start, start + n) of the flat stream as a uint8 0/1 array."""
        end = start + n
        i = bisect.bisect_right(self._starts, start) - 1
        pieces = []
        pos = start
        while pos < end:
            cs = self._starts[i]
            cend = self._starts[i + 1] if i + 1 < len(self._starts) else self._nbits
            a, b = pos - cs, min(end, cend) - cs
            byte0 = a // 8
            pieces.append(np.unpackbits(self._chunks[i][byte0:(b + 7) // 8])[a - 8 * byte0:b - 8 * byte0])
            pos = cs + b
            i += 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"index out of range for a memory of {self._n} samples")
        return np.where(idx < 0, idx + self._n, idx)

    def get_compressed(self, indices, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The stored (compressed) values of the given samples, (B, S, H) in ``dtype``."""
        idx = self._indices(indices)
        S, H = self.stored_steps, self.units or 0
        npdtype = np.float64 if dtype == torch.float64 else np.float32
        B = len(idx)
        contiguous = B > 0 and bool(np.all(np.diff(idx) == 1))
        if self.binary:
            P = S * H
            if contiguous:
                out = self._read_bits(int(idx[0]) * P, B * P)
            else:
                out = np.concatenate([self._read_bits(int(i) * P, P) for i in idx]) if B else np.zeros(0, np.uint8)
            out = out.reshape(B, S, H).astype(npdtype)
        else:
            out = np.empty((B, S, H), dtype=npdtype)
            if B:
                which = np.searchsorted(np.asarray(self._starts), idx, side="right") - 1
                for ci in np.unique(which):
                    sel = which == ci
                    out[sel] = self._chunks[ci][idx[sel] - self._starts[ci]]
        return torch.from_numpy(out).to(dtype)

    def get(self, indices, dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y): the given samples un-compressed to (B, T, H) ``dtype`` and their int64 labels."""
        idx = self._indices(indices)
        c = self.get_compressed(idx, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
        x = uncompress(c, self.nb_steps, self.mode, self.kind, dtype=dtype)
        y = torch.from_numpy(self._all_labels()[idx].astype(np.int64))
        if device is not None:
            x, y = x.to(device), y.to(device)
        return x, y

    def batches(self, batch_size: int = 64, dtype: torch.dtype = torch.float32,
                device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Everything, in insertion order, as (x (B, T, H), y int64) batches; the last partial batch is kept."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        return [self.get(np.arange(i, min(i + batch_size, self._n)), dtype=dtype, device=device)
                for i in range(0, self._n, batch_size)]

    def training_batches(self, batch_size: int = 64, dtype: torch.dtype = torch.float32, device=None) -> list:
        """:meth:`batches` as :class:`sccl.learn.training.Batch` objects (``from_depth`` = this memory's depth; raw
        counts have ``from_depth=None`` and feed the network as its dense input): :mod:`sccl.replay.batches`."""
        return training_batches(self, batch_size, dtype, device)

    def _all_labels(self) -> np.ndarray:
        return np.concatenate(self._labels) if self._labels else np.zeros(0, np.uint8)

    @property
    def labels(self) -> torch.Tensor:
        """All labels, int64, in insertion order."""
        return torch.from_numpy(self._all_labels().astype(np.int64))

    def __len__(self) -> int:
        return self._n

    # ------------------------------------------------------------------------------------------ accounting

    @property
    def bits_per_value(self) -> int:
        """Bits per stored value used by :attr:`memory_bits_analytic`."""
        if self.binary:
            return 1
        if self.kind == "spikes":
            return int(self.window).bit_length()  # ceil(log2(w + 1))
        if self.kind == "currents":
            return torch.finfo(self.float_dtype).bits
        return max(1, int(self._max_count).bit_length())  # ceil(log2(max + 1)) of the counts stored

    @property
    def values_stored(self) -> int:
        return self._n * (self.units or 0) * self.stored_steps

    @property
    def memory_bits_analytic(self) -> int:
        return self.values_stored * self.bits_per_value

    @property
    def paper_bits(self) -> int:
        """The paper's count: one bit per stored value whatever it holds (raw input counted as binary)."""
        return self.values_stored

    @property
    def memory_bytes_stored(self) -> int:
        """Bytes of the stored payload arrays (``.nbytes``; labels excluded)."""
        return int(sum(c.nbytes for c in self._chunks))

    @property
    def label_bytes(self) -> int:
        return int(sum(a.nbytes for a in self._labels))

    @property
    def storage_dtype(self) -> str:
        if self.binary:
            return "packed bits"
        if not self._chunks:
            return "-"
        names = sorted({c.dtype.name for c in self._chunks}, key=lambda s: np.dtype(s).itemsize)
        return "/".join(names)

    def compression_diagnostics(self) -> dict | None:
        """What the time compression did to the spike latents added at full resolution (None for currents, raw
        counts or latents given compressed): ``spikes``; ``lost_fraction``, the share of spikes the stored memory
        no longer holds (OR keeps one per window; sum keeps the count, only their timing goes); the mean spikes
        per unit per window; and per window that holds any (above 1 means OR merges spikes)."""
        if self.kind != "spikes" or not self._windows_seen:
            return None
        kept = self._windows_active if self.binary else self._spikes_seen
        return {"spikes": self._spikes_seen,
                "lost_fraction": 1 - kept / self._spikes_seen if self._spikes_seen else 0.0,
                "spikes_per_unit_window": self._spikes_seen / self._windows_seen,
                "spikes_per_active_window": self._spikes_seen / max(self._windows_active, 1)}

    def describe(self) -> str:
        what = {"spikes": "spikes", "currents": "currents", "counts": "raw counts"}[self.kind]
        if self.depth is not None and self.kind != "counts":
            what = f"depth-{self.depth} {what}"
        return (f"{self._n} x {what} ({self.units} units), {self.stored_steps}/{self.nb_steps} steps "
                f"(1:{self.window}, {self.mode}), {self.bits_per_value} bit/value in {self.storage_dtype}: "
                f"analytic {self.memory_bits_analytic / 8:,.0f} B, stored {self.memory_bytes_stored:,} B "
                f"(+ labels {self.label_bytes:,} B)")

    def __repr__(self) -> str:
        return f"ReplayMemory({self.describe()})"

