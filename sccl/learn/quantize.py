"""Reduced-precision learning, simulated in float ("fake quantisation"): what a microcontroller would hold.

Precisions (``--precision``): ``float32`` (nothing changes: no hook touches any tensor, bit-identical to a run
without this module), ``int16`` and ``int8`` (the bits of the weights the forward pass uses).

Fixed point with ``bits`` bits, one step per tensor. A tensor t is held as integers
q in [-2^(bits-1), 2^(bits-1) - 1] times the power-of-two step 2^e, with e the smallest integer such that

    max|t| <= (2^(bits-1) - 1) * 2^e            (an all-zero or empty tensor: e = 0, step 1, q = 0)

    q = clamp(round(t / 2^e), -2^(bits-1), 2^(bits-1) - 1)      round = torch.round, half to even
    dequantize(q, e) = q * 2^e;   fake_quantize(t, bits) = dequantize(quantize(t, bits))

With its own exponent a tensor never reaches the clamp (|t| / 2^e <= 2^(bits-1) - 1); the clamp acts when an
exponent is given (``exponent=``). Example, 8 bits: [0.3, -1.2, 0.05] has max 1.2 <= 127 * 2^-6 = 1.984 (and
127 * 2^-7 = 0.992 < 1.2), so e = -6, q = round([19.2, -76.8, 3.2]) = [19, -77, 3], values [0.296875, -1.203125,
0.046875]. fake_quantize is idempotent (a value on the grid stays there). Division by 2^e is exact (done in
float64), so the only rounding is the one to an integer.

Training (:class:`LowPrecision`), as in integer-only SNN training, for each trained parameter p:

* shadow s: the value the optimiser updates, at 16-bit fixed point (``SHADOW_BITS``);
* forward value f = fake_quantize(s, forward_bits): what p holds during forward passes and evaluation (int16:
  f = s; int8: an 8-bit copy derived from the shadow on the fly, so a device stores only the shadow);
* optimiser state (Adamax's exp_avg m and exp_inf u): 16-bit floating point (bfloat16: float32's exponent range,
  8 significant bits) after every step. Not fixed point: with one step per tensor, 16-bit fixed point rounds most
  of u (the running max of |g|, spread over orders of magnitude) to 0, every weight then moves by about lr a step
  whatever its gradient, and the old classes are lost (class-incremental latent replay, seed 0: old accuracy 1.9 %
  at int16 against 48.8 % at float32; with bfloat16 state 48.2 %, at int8 49.9 %);
* straight-through estimator: the gradient computed at f is applied to s.

One step t (Adamax, lr, betas (b1, b2), eps = 1e-8; g = dLoss/dp computed at p = f):

    m = b1 * m + (1 - b1) * g;   u = max(b2 * u, |g| + eps);   s' = s - lr / (1 - b1^t) * m / u
    s = fake_quantize(s', 16);   m = bf16(m);   u = bf16(u);   p = f = fake_quantize(s, fb)

with bf16(x) rounding x to the nearest bfloat16 (8 significant bits, ties to even).

How the hooks compose with the training loop (sccl.learn.training.train_epoch):

    lp.start()                         once, before the first step (s = fake_quantize(p, 16), p = f)
    per batch: forward, loss, backward
               lp.before_step()        after backward, before optimizer.step (p = s; p.grad is untouched)
               optimizer.step()
               lp.after_step()         right after the step (round s, m, u; p = f)

Outside the window before_step .. after_step, p holds the forward value f; :meth:`LowPrecision.compose` wraps a
strategy's edit_gradients / after_step so they see f too. Frozen weights are rounded once to forward_bits
(:meth:`LowPrecision.freeze`). Gradients and activations stay in float (only weights and optimiser state are
reduced). Replay memories may store depth-0 currents at 8 bits with one exponent per stored batch
(:func:`quantize_currents`). Bytes held (:func:`state_bytes`): trained weights 2 B each (the 16-bit shadow),
optimiser state 2 x 2 B each, frozen weights forward_bits / 8 B each; float32: 4, 2 x 4, 4. The per-tensor
exponents (a byte per tensor) are not counted.
"""

from __future__ import annotations

import math

import torch

from sccl.core.errors import ConfigError, TrainingDiverged

__all__ = ["PRECISIONS", "FORWARD_BITS", "SHADOW_BITS", "STATE_KEYS", "check_precision", "step_exponent",
           "quantize", "dequantize", "fake_quantize", "quantize_currents", "state_bytes", "LowPrecision"]

PRECISIONS = ("float32", "int16", "int8")
FORWARD_BITS = {"int16": 16, "int8": 8}  # bits of the forward (and frozen) weights; float32: none
SHADOW_BITS = 16  # the trained weights the optimiser updates
STATE_DTYPE = torch.bfloat16  # each optimiser state tensor: 16-bit floating point
STATE_BYTES = 2
STATE_KEYS = ("exp_avg", "exp_inf")  # Adamax's state tensors, rounded after every step


def check_precision(text: str) -> str:
    """``text`` when it names a precision, else a ConfigError in one line."""
    if text not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{text}'")
    return text


def _check_bits(bits: int) -> int:
    if not (isinstance(bits, int) and 2 <= bits <= 16):
        raise ValueError(f"fixed point takes 2 to 16 bits, got {bits!r}")
    return bits


def step_exponent(t: torch.Tensor, bits: int) -> int:
    """The smallest integer e with max|t| <= (2^(bits-1) - 1) * 2^e (0 for an all-zero or empty tensor).
    One host sync (the maximum). Raises ValueError on NaN or infinite values."""
    qmax = 2 ** (_check_bits(bits) - 1) - 1
    if t.numel() == 0:
        return 0
    m = float(t.detach().abs().max())
    if not math.isfinite(m):
        raise ValueError("cannot quantize a tensor with NaN or infinite values")
    if m == 0.0:
        return 0
    e = math.ceil(math.log2(m / qmax))
    while math.ldexp(qmax, e) < m:  # exact comparisons fix any rounding of log2
        e += 1
    while math.ldexp(qmax, e - 1) >= m:
        e -= 1
    return e


def quantize(t: torch.Tensor, bits: int, exponent: int | None = None) -> tuple[torch.Tensor, int]:
    """(q, e): integers q (int8 for up to 8 bits, else int16) and the step exponent e, with t ~ q * 2^e.
    ``exponent`` None: the tensor's own (:func:`step_exponent`); given: that step, values beyond it clamped."""
    _check_bits(bits)
    e = step_exponent(t, bits) if exponent is None else int(exponent)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scaled = t.detach().to(torch.float64) * math.ldexp(1.0, -e)  # exact: a power of two, in float64
    q = torch.round(scaled).clamp_(lo, hi)
    return q.to(torch.int8 if bits <= 8 else torch.int16), e


def dequantize(q: torch.Tensor, e: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """q * 2^e as ``dtype`` (exact in float32 unless 2^e is below float32's normal range)."""
    return (q.to(torch.float64) * math.ldexp(1.0, e)).to(dtype)


def fake_quantize(t: torch.Tensor, bits: int, exponent: int | None = None) -> torch.Tensor:
    """dequantize(quantize(t, bits, exponent)) in t's dtype: t rounded to its ``bits``-bit grid (a new tensor)."""
    q, e = quantize(t, bits, exponent)
    return dequantize(q, e, t.dtype)


def quantize_currents(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, int]:
    """A stored batch of depth-0 float currents (B, T, H) as (q, e): int8 (``bits`` <= 8) with one exponent for
    the whole batch; :func:`dequantize` gives the currents back."""
    return quantize(x, bits)


def state_bytes(precision: str, trained_numel: int, frozen_numel: int) -> dict[str, int]:
    """Bytes a device holds: trained weights (int8 / int16: the 16-bit shadow, 2 B each; the int8 forward copy is
    derived from it on the fly), optimiser state (2 tensors x 2 B each), frozen weights (forward bits / 8 each);
    float32: 4, 2 x 4, 4. Exponents (one per tensor) are not counted."""
    check_precision(precision)
    if precision == "float32":
        trained, state, frozen = 4 * trained_numel, 2 * 4 * trained_numel, 4 * frozen_numel
    else:
        trained = SHADOW_BITS // 8 * trained_numel
        state = len(STATE_KEYS) * STATE_BYTES * trained_numel
        frozen = FORWARD_BITS[precision] // 8 * frozen_numel
    return {"trained_weights": trained, "optimizer_state": state, "frozen_weights": frozen,
            "total": trained + state + frozen}


class LowPrecision:
    """A run's reduced precision: its trained parameters (name -> nn.Parameter), their optimizer (Adamax; its
    state tensors ``STATE_KEYS`` are rounded) and, via :meth:`freeze`, its frozen ones. See the module docstring
    for where each hook goes. ``shadows``: a previous task's :attr:`shadows` (name -> tensor), kept by
    :meth:`start` for a parameter that still holds that shadow's forward value (so the 16-bit shadow survives
    from task to task); otherwise the shadow is p rounded to 16 bits. For float32 every method does nothing."""

    def __init__(self, precision: str, params: dict, optimizer=None, shadows: dict | None = None):
        self.precision = check_precision(precision)
        self.forward_bits = FORWARD_BITS.get(precision)  # None for float32
        self.params = dict(params)
        self.optimizer = optimizer
        self.shadows: dict[str, torch.Tensor] = {}
        self._carried = dict(shadows or {})

    @property
    def active(self) -> bool:
        return self.forward_bits is not None

    def _forward(self, shadow: torch.Tensor) -> torch.Tensor:
        return shadow if self.forward_bits == SHADOW_BITS else fake_quantize(shadow, self.forward_bits)

    @torch.no_grad()
    def freeze(self, frozen) -> None:
        """Round the frozen parameters (a dict name -> parameter, or an iterable of them) to the forward
        precision, in place; calling it again changes nothing (the grid is kept)."""
        if not self.active:
            return
        for p in (frozen.values() if isinstance(frozen, dict) else frozen):
            p.copy_(fake_quantize(p, self.forward_bits))

    @torch.no_grad()
    def start(self) -> None:
        """Before the first step: shadow = fake_quantize(p, 16) (or the carried shadow), p = forward value;
        any optimiser state already there is rounded to bfloat16."""
        if not self.active:
            return
        for name, p in self.params.items():
            carried = self._carried.get(name)
            carried = None if carried is None else carried.to(p.device, p.dtype, copy=True)
            if carried is not None and carried.shape == p.shape and torch.equal(self._forward(carried), p.data):
                shadow = carried
            else:
                shadow = self._round(p.data, SHADOW_BITS)
            self.shadows[name] = shadow
            p.copy_(self._forward(shadow))
            self._round_state(p)

    @torch.no_grad()
    def before_step(self) -> None:
        """Between backward and optimizer.step: p = shadow, so the step updates the shadow with the gradient
        computed at the forward value (straight-through). int16: p already is the shadow."""
        if not self.active or self.forward_bits == SHADOW_BITS:
            return
        for name, p in self.params.items():
            p.copy_(self.shadows[name])

    @torch.no_grad()
    def after_step(self) -> None:
        """Right after optimizer.step: shadow = fake_quantize(p, 16), exp_avg and exp_inf rounded to bfloat16
        (each per tensor), p = forward value."""
        if not self.active:
            return
        for name, p in self.params.items():
            shadow = self._round(p.data, SHADOW_BITS)
            self.shadows[name] = shadow
            p.copy_(self._forward(shadow))
            self._round_state(p)

    def compose(self, edit_gradients=None, after_step=None):
        """(edit_gradients, after_step) for train_epoch: a strategy's edit_gradients, then :meth:`before_step`;
        :meth:`after_step`, then the strategy's after_step. The strategy's hooks see p at the forward value.
        float32: the strategy's hooks unchanged."""
        if not self.active:
            return edit_gradients, after_step

        def edit():
            if edit_gradients is not None:
                edit_gradients()
            self.before_step()

        def after():
            self.after_step()
            if after_step is not None:
                after_step()

        return edit, after

    def state_bytes(self, trained_numel: int, frozen_numel: int) -> dict[str, int]:
        """:func:`state_bytes` at this precision."""
        return state_bytes(self.precision, trained_numel, frozen_numel)

    def _round_state(self, p) -> None:
        state = self.optimizer.state.get(p, {}) if self.optimizer is not None else {}
        for key in STATE_KEYS:
            value = state.get(key)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                rounded = value.to(STATE_DTYPE).to(value.dtype)
                if not bool(torch.isfinite(rounded).all()):
                    raise TrainingDiverged("the optimiser state became NaN or infinite (diverged); lower --lr and run "
                                           "again")
                value.copy_(rounded)

    @staticmethod
    def _round(t: torch.Tensor, bits: int) -> torch.Tensor:
        try:
            return fake_quantize(t, bits)
        except ValueError:
            raise TrainingDiverged("the weights or optimiser state became NaN or infinite (diverged); "
                                   "lower --lr and run again") from None
