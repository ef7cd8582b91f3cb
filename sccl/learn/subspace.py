"""The maths of gradient projection (GPM) and of its Hebbian online form (HLOP) for the recurrent LIF network.

A weight matrix W (fan_in x fan_out, current = x @ W) leaves its output on an old input x unchanged when its change
satisfies x @ dW = 0. So keep an orthonormal basis M (n_in x r) of the old tasks' presynaptic activity and move
W only inside the complement: dW <- (I - M M^T) dW. For a recurrent LIF layer the current at step t is
x_t @ W + s_{t-1} @ V, so W needs a basis of the feed-forward inputs x_t and V one of the layer's own previous
spikes s_{t-1}, over all samples and all time steps; or one *joint* basis of the stacked [x_t, s_{t-1}] applied
to the stacked [W; V] (also exact, and less restrictive: only the sum of both contributions must not change).

What lives here:

* :func:`projection_groups` and :func:`presynaptic_rows`: which presynaptic activity belongs to which trained
  matrix, and that activity for one batch at any cut depth (T*B rows, no autograd);
* :func:`extend_basis`: GPM's basis from an activity Gram matrix (eigen-decomposition of Sigma = R^T R in
  float64: the same directions and squared singular values as an SVD of R, in n_in x n_in memory), extended on a
  later task by the residual R - R M M^T until the *total* energy criterion holds;
* :func:`project_out`: (I - M M^T) G;
* :class:`OjaSubspace`: HLOP's lateral rows H, learnt by Oja's subspace rule, old rows frozen.
"""

from __future__ import annotations

import torch


#: eigen-directions carrying less than this fraction of a task's activity energy are numerical noise of the Gram
#: matrix (float64 eigh is accurate to ~1e-16 of the largest eigenvalue), never basis directions
ENERGY_FLOOR = 1e-10

#: presynaptic source of every weight: (activity, delay in steps); "input" is the raw network input
SOURCES = {"w1": ("input", 0), "v1": ("spikes1", 1), "w2": ("spikes1", 0), "v2": ("spikes2", 1),
           "w3": ("spikes2", 0), "v3": ("spikes3", 1), "w_out": ("spikes3", 0)}
LAYER_OF = {"w1": 1, "v1": 1, "w2": 2, "v2": 2, "w3": 3, "v3": 3, "w_out": 4}
BASIS_MODES = ("separate", "joint")


# ---------------------------------------------------------------------------------------------- activity


def projection_groups(trainable, mode: str) -> tuple[tuple[str, ...], ...]:
    """The trained weights that share one basis: each on its own (``separate``), or a layer's W and V together
    (``joint``; a layer with only one trained matrix, e.g. v1 at cut depth 0, is a group of one)."""
    if mode not in BASIS_MODES:
        raise ValueError(f"unknown basis mode '{mode}'")
    names = [n for n in SOURCES if n in set(trainable)]
    if mode == "separate":
        return tuple((n,) for n in names)
    layers = sorted({LAYER_OF[n] for n in names})
    return tuple(tuple(n for n in names if LAYER_OF[n] == layer) for layer in layers)


def group_width(net, group) -> int:
    """n_in of a group: the rows of its stacked weights."""
    return sum(getattr(net, n).shape[0] for n in group)


def _dense_time_major(x) -> torch.Tensor:
    """Raw input (SparseInput or dense batch-first (B, T, N)) as dense time-major (T, B, N)."""
    if isinstance(x, torch.Tensor):
        return x.transpose(0, 1)
    return x.to_dense(torch.float32, time_major=True)


@torch.no_grad()
def layer_activity(net, batch) -> dict[str, torch.Tensor]:
    """Time-major (T, B, H) activity of one batch: ``input`` (raw batches only) and the spikes of every hidden
    layer from the batch's cut upwards. The layers above the cut run from the stored activity, with the current
    weights and the batch's steps and threshold (fewer-step batches: S steps), exactly as a training step does."""
    depth, timing = batch.from_depth, (batch.time_factor, batch.threshold)
    acts: dict[str, torch.Tensor] = {}
    if depth is None:
        acts["input"] = _dense_time_major(batch.x)
        spikes, first = net.hidden_layer(1, net.input_currents(batch.x), *timing), 2
    else:
        z = batch.x if batch.time_major else batch.x.transpose(0, 1)
        z = z.contiguous().to(net.w_out.dtype)
        if depth == 0:
            spikes, first = net.hidden_layer(1, z, *timing), 2
        else:
            spikes, first = z, depth + 1
    acts[f"spikes{first - 1}"] = spikes
    for layer in range(first, 4):
        spikes = net.hidden_layer(layer, net.feedforward(layer, spikes), *timing)
        acts[f"spikes{layer}"] = spikes
    return acts


def _delayed(a: torch.Tensor, steps: int) -> torch.Tensor:
    """a[t - steps] at step t (zeros before the start): s_{t-1} aligned with x_t."""
    if steps == 0:
        return a
    return torch.cat([torch.zeros_like(a[:steps]), a[:-steps]], dim=0)


@torch.no_grad()
def presynaptic_rows(net, batch, groups) -> list[torch.Tensor]:
    """For every group, its presynaptic activity on ``batch`` as (T*B, n_in) rows: row (t, b) is what multiplies
    the group's stacked weights at step t of sample b."""
    acts = layer_activity(net, batch)
    out = []
    for group in groups:
        parts = [_delayed(acts[SOURCES[n][0]], SOURCES[n][1]) for n in group]
        stacked = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        out.append(stacked.reshape(-1, stacked.shape[2]))
    return out


def activity_grams(net, batches, groups) -> list[torch.Tensor]:
    """Sigma = R^T R (float64, n_in x n_in) of every group over all rows of all ``batches``."""
    grams = [torch.zeros(group_width(net, g), group_width(net, g), dtype=torch.float64,
                         device=net.w_out.device) for g in groups]
    for batch in batches:
        for gram, rows in zip(grams, presynaptic_rows(net, batch, groups)):
            r = rows.to(torch.float64)
            gram.addmm_(r.t(), r)
    return grams


# ---------------------------------------------------------------------------------------------- GPM basis


def orthonormal_columns(m: torch.Tensor) -> torch.Tensor:
    """An orthonormal float64 basis of the columns of ``m`` (float32-stored bases drift by ~1e-7)."""
    if m.shape[1] == 0:
        return m.to(torch.float64)
    q, _ = torch.linalg.qr(m.to(torch.float64))
    return q


def energy_rank(energies: torch.Tensor, total: float, threshold: float, explained: float = 0.0) -> int:
    """How many of ``energies`` (descending) to add so that ``explained + their sum >= threshold * total``;
    energies under :data:`ENERGY_FLOOR` of the total never count (threshold 1 = the numerical rank)."""
    if total <= 0:
        return 0
    usable = int((energies > ENERGY_FLOOR * total).sum())
    target = threshold * total * (1 - 1e-12)  # cumulative sums round: 1.0 must be reachable
    if explained >= target:
        return 0
    cumulative = explained + torch.cumsum(energies[:usable], 0)
    short = int((cumulative < target).sum())
    return min(short + 1, usable)


def extend_basis(basis: torch.Tensor | None, gram: torch.Tensor, threshold: float) -> tuple[torch.Tensor, int]:
    """GPM's basis update from a task's activity Gram Sigma = R^T R: returns (new basis float64, columns added).

    With an existing basis M: the residual R_hat = R - R M M^T has Gram P Sigma P (P = I - M M^T), the energy M
    already explains is trace(Sigma) - trace(P Sigma P), and the residual's leading eigen-directions are added
    until the explained share of the task's *total* energy reaches ``threshold``. Capped at n_in (the residual
    has no energy inside span(M))."""
    gram = gram.to(torch.float64).cpu()
    n = gram.shape[0]
    m = torch.zeros(n, 0, dtype=torch.float64) if basis is None else orthonormal_columns(basis.cpu())
    total = float(torch.trace(gram))
    if m.shape[1]:
        p = torch.eye(n, dtype=torch.float64) - m @ m.t()
        residual = p @ gram @ p
    else:
        residual = gram
    residual = (residual + residual.t()) / 2
    explained = total - float(torch.trace(residual))
    values, vectors = torch.linalg.eigh(residual)
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)
    k = min(energy_rank(values, total, threshold, explained), n - m.shape[1])
    if k == 0:
        return m, 0
    new = vectors[:, :k]
    if m.shape[1]:
        new = new - m @ (m.t() @ new)  # exactly outside span(M) before the merge
    return orthonormal_columns(torch.cat([m, new], dim=1)), k


def project_out(g: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(I - M M^T) g for g (n_in x fan_out): what of g leaves the old inputs' currents unchanged."""
    return g - basis @ (basis.t() @ g)


def largest_principal_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest principal angle (radians) between the column spans of ``a`` and ``b`` (same rank)."""
    qa, qb = orthonormal_columns(a), orthonormal_columns(b)
    cosines = torch.linalg.svdvals(qa.t() @ qb).clamp(max=1.0)
    return float(torch.arccos(cosines.min()))


# ---------------------------------------------------------------------------------------------- HLOP


class OjaSubspace:
    """HLOP's lateral neurons of one group: ``frozen`` rows (old tasks, orthonormal, float32: the memory) and
    ``rows`` (k x n_in) learning the current task's principal subspace by Oja's subspace rule

        y = H x,   dH_new = y_new^T (x - H^T y) / N      (H = [frozen; rows], over the N rows of a batch)

    with heavy-ball momentum. Only the new rows move; the frozen ones are part of the reconstruction, so the new
    rows learn what the old ones do not explain. The step is ``lr / mean ||x||^2`` (``lr`` relative to the input
    power, which bounds the covariance's largest eigenvalue), so one ``lr`` suits raw counts and spikes alike.
    """

    def __init__(self, n_in: int, device=None):
        self.n_in = n_in
        self.frozen = torch.zeros(0, n_in, device=device)
        self.rows = torch.zeros(0, n_in, device=device)
        self.velocity = torch.zeros_like(self.rows)
        self.updates = 0

    @property
    def rank(self) -> int:
        return self.frozen.shape[0]

    def new_rows(self, k: int, generator: torch.Generator) -> None:
        """Start ``k`` learning rows (fewer when the frozen ones leave less room), orthonormal and orthogonal to
        the frozen rows, drawn from ``generator``."""
        k = max(0, min(k, self.n_in - self.rank))
        draw = torch.randn(self.n_in, k, generator=generator, dtype=torch.float64)
        frozen = self.frozen.to(torch.float64).cpu().t()
        if self.rank:
            draw = draw - frozen @ (frozen.t() @ draw)
        rows = orthonormal_columns(draw).t() if k else draw.t()
        self.rows = rows.to(torch.float32).to(self.frozen.device).contiguous()
        self.velocity = torch.zeros_like(self.rows)
        self.updates = 0

    @torch.no_grad()
    def learn(self, x: torch.Tensor, lr: float, iterations: int, momentum: float = 0.9) -> None:
        """``iterations`` Oja updates of the new rows on the rows ``x`` (N x n_in) of one batch."""
        if self.rows.shape[0] == 0 or x.shape[0] == 0:
            return
        x = x.to(self.rows.dtype)
        power = float((x * x).sum(1).mean())
        if power <= 0:
            return
        step = lr / power
        residual = x - (x @ self.frozen.t()) @ self.frozen if self.rank else x  # x - F^T F x, the same each time
        for _ in range(iterations):
            y = x @ self.rows.t()  # the new rows' responses (N x k)
            delta = y.t() @ (residual - y @ self.rows) / x.shape[0]
            self.velocity.mul_(momentum).add_(delta)
            self.rows.add_(self.velocity, alpha=step)
        self.updates += 1

    def merge(self) -> None:
        """The task is over: its rows join the frozen ones; the merged block is orthonormalised (QR), as the
        projection needs an orthonormal basis (Oja's rows are only approximately orthonormal)."""
        if self.rows.shape[0] and self.updates:
            stacked = torch.cat([self.frozen, self.rows]).t()
            self.frozen = orthonormal_columns(stacked).t().to(torch.float32).contiguous()
        self.rows = torch.zeros(0, self.n_in, device=self.frozen.device)
        self.velocity = torch.zeros_like(self.rows)
        self.updates = 0

    def basis(self) -> torch.Tensor:
        """The frozen rows as an orthonormal basis (n_in x rank)."""
        return self.frozen.t()
