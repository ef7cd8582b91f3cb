"""The recurrent spiking network of the original code (original-spec.md §2), computed layer by layer.

    channels (SHD: 700) -> LIF 200 -> LIF 100 -> LIF 50 -> leaky readout, one per class (SHD: 20) -> max over time

Every LIF layer is current-based with a full recurrent matrix (self-connections included) and no biases; the
exact update order is documented in :mod:`sccl.net.lif`. The readout integrates ``a(t) = s3(t) @ w_out`` with

    flt(t+1) = alpha * flt(t) + a(t);   out(t+1) = beta * out(t) + flt(t)        (the OLD flt)

and its trace is ``[0, out(1), ..., out(T)]`` (T+1 entries). The logits are the maximum of the trace over time
with ``torch.max(dim)`` semantics (on ties the gradient goes to the FIRST maximum; ties are common because
the first entries are exactly 0). Loss and prediction are the caller's: NLL of ``log_softmax(logits)``, argmax.

How it is computed (same maths, much faster than the original's interleaved per-step loop):

* tensors are time-major (T, B, H) inside; the public API takes and returns batch-first tensors;
* there is no top-down feedback, so the network runs one layer at a time: the feed-forward input of a layer is
  one matmul over all T steps, then the layer's own time loop runs (:func:`sccl.net.lif.lif_layer`, a hand-written
  BPTT autograd Function);
* the input projection ``x @ w1`` uses the sparse input (:class:`SparseInput`) when given one;
* the readout recurrence is linear, so the whole trace is one matmul with a precomputed (T+1) x T kernel.

Depths (latent replay): depth 0 is the layer-1 input current ``x @ w1`` (B, T, 200); depth d = 1..3 is the
spike train of hidden layer d. ``net(z, from_depth=d)`` runs only the layers above depth d, so frozen layers
cost nothing; ``net.trainable_for_depth(d)`` names the parameters the original trains at that depth.

Fewer steps and threshold (fewer-step replay, :mod:`sccl.cl.strategies.fewer_steps`): ``time_factor`` w runs
the layers above the cut on S = T/w steps, each standing for w original steps, so every per-step decay becomes
alpha^w, beta^w (the physical time constants stay); ``threshold`` theta is a firing threshold for those layers.
:mod:`sccl.net.lif` hard-codes the threshold 1 and resets by multiplying the membrane by (1 - s), and syn and mem are
linear in the layer's input currents h = I + s @ V. Dividing I and V by theta divides syn and mem by theta at
every step as long as the spikes agree, the reset to 0 is unchanged by the scale, and ``mem / theta > 1`` is
``mem > theta``: by induction over the steps, the spikes are exactly those of threshold theta (bit-exact when
theta is a power of 2; otherwise the scaled sums round differently, which can flip only a spike whose membrane
is within rounding of theta). The surrogate gradient
then is the original's in units of the threshold: ds/dmem = 1 / (theta (100 |mem - theta| / theta + 1)^2).
``readout_gain`` g multiplies the readout's input current ``s3 @ w_out`` (so the trace and logits) by g: an S-step
network's logits are far smaller than the T-step ones it starts from, which leaves its softmax almost flat.
Defaults (w = 1, theta = 1, g = 1) compute exactly what they did before: no scaling, the same decays and kernel.

Seeding: weights are drawn from ``generator`` when one is given, otherwise from torch's global RNG (so
``torch.manual_seed(s)`` before construction makes them reproducible). Draw order: w1, w2, w3, w_out, v1, v2, v3
(the order of the original's weight list).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sccl.core.defaults import SHD
from sccl.net.lif import lif_layer, lif_states
from sccl.net.sparse_input import SparseInput


__all__ = ["RecurrentSNN", "SparseInput", "readout_kernel", "PARAM_NAMES", "TRAINABLE_BY_DEPTH"]

PARAM_NAMES = ("w1", "w2", "w3", "v1", "v2", "v3", "w_out")
#: the hidden layers' sizes of the default network (nb_hidden 200, then halves)
DEFAULT_HIDDEN_SIZES = (200, 100, 50)

#: parameters trained by latent replay at each depth (the original's optimiser lists); the others are frozen
TRAINABLE_BY_DEPTH = {
    0: ("v1", "w2", "v2", "w3", "v3", "w_out"),
    1: ("w2", "v2", "w3", "v3", "w_out"),
    2: ("w3", "v3", "w_out"),
    3: ("w_out",),
}


def readout_kernel(nb_steps: int, alpha: float, beta: float) -> np.ndarray:
    """(T+1) x T float64 matrix K with ``trace = K @ a`` for the leaky readout (row 0 is the initial 0)."""
    T = int(nb_steps)
    K = np.zeros((T + 1, T))
    flt = np.zeros(T)
    out = np.zeros(T)
    for t in range(T):
        new_flt = alpha * flt
        new_flt[t] += 1.0
        out = beta * out + flt
        flt = new_flt
        K[t + 1] = out
    return K


class RecurrentSNN(nn.Module):
    """The network. Parameters (fan_in, fan_out): ``w1 v1 w2 v2 w3 v3 w_out``; see the module docstring.

    ``hidden_sizes`` overrides the default ``(nb_hidden, nb_hidden // 2, nb_hidden // 2 // 2)``.
    """

    def __init__(
        self,
        nb_inputs: int = SHD["nb_units"],
        nb_hidden: int = 200,
        nb_outputs: int = SHD["nb_classes"],
        time_step: float = 1e-3,
        tau_syn: float = 5e-3,
        tau_mem: float = 1e-2,
        weight_scale: float = 0.2,
        hidden_sizes: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if hidden_sizes is None:
            hidden_sizes = (nb_hidden, nb_hidden // 2, nb_hidden // 2 // 2)
        hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if len(hidden_sizes) != 3 or min(hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be three positive sizes, got {hidden_sizes}")
        if nb_inputs < 1 or nb_outputs < 1:
            raise ValueError("nb_inputs and nb_outputs must be positive")
        self.nb_inputs, self.nb_outputs = int(nb_inputs), int(nb_outputs)
        self.hidden_sizes = hidden_sizes
        self.time_step, self.tau_syn, self.tau_mem = float(time_step), float(tau_syn), float(tau_mem)
        self.weight_scale = float(weight_scale)
        self.alpha = float(np.exp(-self.time_step / self.tau_syn))
        self.beta = float(np.exp(-self.time_step / self.tau_mem))

        h1, h2, h3 = hidden_sizes
        shapes = {
            "w1": (nb_inputs, h1), "w2": (h1, h2), "w3": (h2, h3), "w_out": (h3, nb_outputs),
            "v1": (h1, h1), "v2": (h2, h2), "v3": (h3, h3),
        }
        drawn = {}
        for name in ("w1", "w2", "w3", "w_out", "v1", "v2", "v3"):
            rows, cols = shapes[name]
            w = torch.empty(rows, cols)
            w.normal_(0.0, self.weight_scale / math.sqrt(rows), generator=generator)
            drawn[name] = w
        for name in PARAM_NAMES:
            setattr(self, name, nn.Parameter(drawn[name]))
        self._kernels: dict = {}

    # ------------------------------------------------------------------------------------------ structure

    def extra_repr(self) -> str:
        h1, h2, h3 = self.hidden_sizes
        return (f"{self.nb_inputs} -> {h1} -> {h2} -> {h3} -> {self.nb_outputs}, "
                f"alpha={self.alpha:.4f}, beta={self.beta:.4f}")

    def depth_size(self, depth: int) -> int:
        """Width of the depth-``depth`` activity (depth 0: the layer-1 input current)."""
        self._check_depth(depth)
        return self.hidden_sizes[max(depth, 1) - 1]

    @staticmethod
    def _check_depth(depth) -> None:
        if depth not in (0, 1, 2, 3):
            raise ValueError(f"depth must be 0, 1, 2 or 3, got {depth!r}")

    def trainable_for_depth(self, depth: int | None) -> tuple[str, ...]:
        """Names of the parameters trained by latent replay at ``depth`` (``None``: all seven).

        Depth 0 freezes w1; depth 1 also v1; depth 2 also w2, v2; depth 3 everything but w_out.
        """
        if depth is None:
            return PARAM_NAMES
        self._check_depth(depth)
        return TRAINABLE_BY_DEPTH[depth]

    def trainable_parameters(self, depth: int | None) -> list[nn.Parameter]:
        """The parameters named by :meth:`trainable_for_depth`, in that order (e.g. for an optimiser)."""
        return [getattr(self, n) for n in self.trainable_for_depth(depth)]

    def layer_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(feed-forward W, recurrent V) of hidden layer 1..3."""
        return {1: (self.w1, self.v1), 2: (self.w2, self.v2), 3: (self.w3, self.v3)}[layer]

    # ------------------------------------------------------------------------------------------ time-major pieces

    def input_currents(self, x) -> torch.Tensor:
        """Layer-1 input currents ``x @ w1`` as a time-major (T, B, H1) tensor (differentiable in w1).

        ``x``: a :class:`SparseInput` or a dense batch-first (B, T, nb_inputs) tensor."""
        w1 = self.w1
        if isinstance(x, SparseInput):
            if x.nb_inputs != self.nb_inputs:
                raise ValueError(f"input has {x.nb_inputs} channels, the network expects {self.nb_inputs}")
            return x.to(w1.device).project(w1)
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[2] != self.nb_inputs:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected input of shape (B, T, {self.nb_inputs}) or a SparseInput, got {shape}")
        B, T, N = x.shape
        cur = torch.mm(x.reshape(B * T, N).to(w1.dtype), w1)
        return cur.view(B, T, -1).transpose(0, 1).contiguous()

    def feedforward(self, layer: int, prev_spikes: torch.Tensor) -> torch.Tensor:
        """Input current (T, B, H_l) of hidden layer 2 or 3 from the spikes (T, B, H_{l-1}) of the layer below."""
        W = self.layer_weights(layer)[0]
        T, B, H = prev_spikes.shape
        return torch.mm(prev_spikes.reshape(T * B, H), W).view(T, B, -1)

    def decays(self, time_factor: int = 1) -> tuple[float, float]:
        """Per-step (alpha, beta) when one step stands for ``time_factor`` w original steps: (alpha^w, beta^w)."""
        if isinstance(time_factor, bool) or int(time_factor) != time_factor or time_factor < 1:
            raise ValueError(f"time_factor must be a positive integer, got {time_factor!r}")
        return self.alpha ** int(time_factor), self.beta ** int(time_factor)

    def hidden_layer(self, layer: int, currents: torch.Tensor, time_factor: int = 1,
                     threshold: float = 1.0) -> torch.Tensor:
        """Spikes (T, B, H_l) of hidden layer ``layer`` (1..3) driven by its input ``currents`` (T, B, H_l);
        ``time_factor`` and ``threshold``: see the module docstring (threshold = scaling both input currents)."""
        V = self.layer_weights(layer)[1]
        if threshold != 1.0:
            if not threshold > 0:
                raise ValueError(f"threshold must be positive, got {threshold!r}")
            currents, V = currents / threshold, V / threshold
        return lif_layer(currents, V, *self.decays(time_factor))

    def readout_trace(self, spikes3: torch.Tensor, time_factor: int = 1, readout_gain: float = 1.0) -> torch.Tensor:
        """Readout trace (T+1, B, C) = ``[0, out(1), ..., out(T)]`` from layer-3 spikes (T, B, H3)."""
        T, B, H = spikes3.shape
        a = torch.mm(spikes3.reshape(T * B, H), self.w_out)
        if readout_gain != 1.0:
            if not (math.isfinite(readout_gain) and readout_gain > 0):
                raise ValueError(f"readout_gain must be a positive number, got {readout_gain!r}")
            a = a * readout_gain
        K = self._kernel(T, *self.decays(time_factor), a.dtype, a.device)
        return torch.mm(K, a.view(T, -1)).view(T + 1, B, -1)

    def _kernel(self, T: int, alpha: float, beta: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (T, alpha, beta, dtype, device)
        K = self._kernels.get(key)
        if K is None:
            K = torch.as_tensor(readout_kernel(T, alpha, beta), dtype=dtype, device=device)
            self._kernels[key] = K
        return K

    def run_from(self, z: torch.Tensor, depth: int, time_factor: int = 1, threshold: float = 1.0,
                 readout_gain: float = 1.0) -> torch.Tensor:
        """Readout trace (T+1, B, C) from time-major depth-``depth`` activity ``z`` (T, B, H_depth).

        Runs only what lies above the depth: depth 0 -> layers 1..3, depth 1 -> layers 2..3 (z = layer-1 spikes),
        depth 2 -> layer 3, depth 3 -> readout only. Differentiable in the parameters above the cut (and in z).
        ``time_factor``, ``threshold``, ``readout_gain``: the layers above the cut run with them (module docstring)."""
        self._check_depth(depth)
        if z.dim() != 3 or z.shape[2] != self.depth_size(depth):
            raise ValueError(f"depth-{depth} activity must be (T, B, {self.depth_size(depth)}), got {tuple(z.shape)}")
        z = z.to(self.w_out.dtype)
        if depth == 0:
            s = self.hidden_layer(1, z, time_factor, threshold)
            depth = 1
        else:
            s = z
        for layer in range(depth + 1, 4):
            s = self.hidden_layer(layer, self.feedforward(layer, s), time_factor, threshold)
        return self.readout_trace(s, time_factor, readout_gain)

    def forward_time_major(self, z: torch.Tensor, from_depth: int, time_factor: int = 1,
                           threshold: float = 1.0, readout_gain: float = 1.0) -> torch.Tensor:
        """Logits (B, C) from time-major depth-``from_depth`` activity (T, B, H) (see :meth:`run_from`)."""
        return max_over_time(self.run_from(z, from_depth, time_factor, threshold, readout_gain))

    @torch.no_grad()
    def activity_time_major(self, x, depth: int) -> torch.Tensor:
        """Depth-``depth`` activity of input ``x`` as a time-major (T, B, H) tensor, without autograd.

        This is what latent replay stores and what a continual-learning step with frozen layers at or below
        ``depth`` should compute once per batch (then train with :meth:`forward_time_major`)."""
        self._check_depth(depth)
        z = self.input_currents(x)
        for layer in range(1, depth + 1):
            if layer > 1:
                z = self.feedforward(layer, z)
            z = self.hidden_layer(layer, z)
        return z

    @torch.no_grad()
    def record(self, x) -> dict[str, torch.Tensor]:
        """Every internal record of input ``x``, time-major and without autograd: ``currents`` (layer-1 input),
        ``spikes1..3`` and ``mem1..3`` (membrane before each step's update, (T, B, H)), ``trace`` (T+1, B, C)."""
        rec = {}
        cur = self.input_currents(x)
        rec["currents"] = cur
        s = None
        for layer in (1, 2, 3):
            if layer > 1:
                cur = self.feedforward(layer, s)
            s, m = lif_states(cur, self.layer_weights(layer)[1], self.alpha, self.beta)
            rec[f"spikes{layer}"], rec[f"mem{layer}"] = s, m
        rec["trace"] = self.readout_trace(s)
        return rec

    # ------------------------------------------------------------------------------------------ public, batch-first

    def forward(self, x, from_depth: int | None = None, time_factor: int = 1, threshold: float = 1.0,
                readout_gain: float = 1.0) -> torch.Tensor:
        """Logits (B, C).

        ``from_depth=None``: ``x`` is the input, a dense (B, T, nb_inputs) tensor of counts or a
        :class:`SparseInput`. ``from_depth=d``: ``x`` is depth-d activity (B, T, H) as returned by
        :meth:`latents`, and only the layers above depth d run. ``time_factor``, ``threshold``, ``readout_gain``:
        see :meth:`run_from`."""
        if from_depth is None:
            return max_over_time(self.run_from(self.input_currents(x), 0, time_factor, threshold, readout_gain))
        self._check_depth(from_depth)
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            raise ValueError(f"from_depth={from_depth} expects a (B, T, H) tensor of depth-{from_depth} activity")
        return self.forward_time_major(x.transpose(0, 1).contiguous(), from_depth, time_factor, threshold,
                                       readout_gain)

    def trace(self, x, from_depth: int | None = None) -> torch.Tensor:
        """The readout trace batch-first (B, T+1, C), like the original's ``out_rec`` (differentiable)."""
        if from_depth is None:
            tr = self.run_from(self.input_currents(x), 0)
        else:
            tr = self.run_from(x.transpose(0, 1).contiguous(), from_depth)
        return tr.transpose(0, 1)

    @torch.no_grad()
    def latents(self, x, depth: int) -> torch.Tensor:
        """Depth-``depth`` activity (B, T, H), no autograd: depth 0 the layer-1 input currents ``x @ w1``,
        depth 1..3 the spikes of that hidden layer."""
        return self.activity_time_major(x, depth).transpose(0, 1).contiguous()


def max_over_time(trace: torch.Tensor) -> torch.Tensor:
    """Max over dim 0 of a (T+1, B, C) trace with ``torch.max`` semantics (gradient to the first maximum)."""
    return torch.max(trace, dim=0).values
