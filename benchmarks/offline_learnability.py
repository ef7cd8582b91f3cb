"""Is the offline (synthetic SHD-format) dataset learnable but not trivial? Measures the README numbers.

    python benchmarks/offline_learnability.py [--size demo] [--seed 0] [--data-dir DIR] [--snn]

1. Generation: seconds per sample, spikes per sample (mean, 5th/95th percentile), active time span,
   file sizes. With --data-dir and existing files, the files are reused and generation is not timed.
2. Simple classifiers on coarse counts (70 channel groups x 14 time bins of 98 ms, from the same
   100 x 14 ms binning as the SNN (sccl.data.hdf5.bin_spikes), log1p, z-score): logistic regression and a
   256-unit MLP in torch (1 thread).
   * official split: train on the train file; accuracy on the test file's seen speakers vs speakers 4+5.
     The seen-speaker test part is small (~5 %), so a 4-fold cross-validation over repetitions of the
     seen speakers is reported too (the same models are also scored on speakers 4+5).
   * leave-one-speaker-out + naive sample-incremental forgetting, for a few speakers s: train on 80 %
     of the repetitions of the 11 other speakers; score their other 20 % ("old") and s ("new");
     then fine-tune on 75 % of s only and score old and new (remaining 25 % of s) again.
   * naive class-incremental: train on English words (0-9) of the train file, then fine-tune on the
     German words only; English test accuracy before/after. Also the cross-language similarity: how
     often the English-only model labels a German test word as its English partner (chance 0.10).
3. --snn: a small recurrent LIF network (SpyTorch-like) (700 -> 128 recurrent -> 20 leaky readout, 100 steps of 14 ms,
   surrogate gradients, Adamax) on the official split: train / seen-test / unseen-test accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from sccl.core.entry import run_cli
from sccl.data.hdf5 import NB_UNITS, bin_spikes, load_shd
from sccl.data.offline import HELDOUT_SPEAKERS, generate_dataset


torch.set_num_threads(1)

CH_GROUP = 10  # 700 channels -> 70 groups
STEP_GROUP = 7  # 100 steps of 14 ms -> 14 groups of 98 ms (spikes stay below 1.36 s: steps <= 97)


# ----------------------------------------------------------------------------------------------
# data


def coarse_features(binned) -> np.ndarray:
    n = len(binned)
    b, t, u, c = binned.coo(np.arange(n))
    n_t = -(-binned.nb_steps // STEP_GROUP)
    x = np.zeros((n, n_t, NB_UNITS // CH_GROUP), dtype=np.float64)
    np.add.at(x, (b, t.astype(np.int64) // STEP_GROUP, u.astype(np.int64) // CH_GROUP), c)
    return np.log1p(x.reshape(n, -1)).astype(np.float32)


def load_pool(train_path: Path, test_path: Path) -> dict:
    """Both files as one pool: features, labels, speakers, rep index within (speaker, word), file flag."""
    parts = []
    for flag, path in ((0, train_path), (1, test_path)):
        d = load_shd(path)
        binned = bin_spikes(d.times, d.units)
        parts.append((d, binned, flag))
    return pool_from_parts(parts)


def pool_from_parts(parts) -> dict:
    x = np.concatenate([coarse_features(b) for _, b, _ in parts])
    y = np.concatenate([d.labels for d, _, _ in parts])
    spk = np.concatenate([d.speakers for d, _, _ in parts])
    is_test = np.concatenate([np.full(len(d), f) for d, _, f in parts])
    counts = np.concatenate([d.spike_counts for d, _, _ in parts])
    # a rep index per (speaker, word), for splits by repetition
    rep = np.zeros(len(y), dtype=np.int64)
    rep_frac = np.zeros(len(y))
    for key in np.unique(spk * 100 + y):
        idx = np.flatnonzero(spk * 100 + y == key)
        rep[idx] = np.arange(len(idx))
        rep_frac[idx] = np.arange(len(idx)) / len(idx)
    return dict(x=x, y=y, spk=spk, is_test=is_test, rep=rep, rep_frac=rep_frac, counts=counts, parts=parts)


# ----------------------------------------------------------------------------------------------
# classifiers


def make_model(kind: str, n_in: int) -> torch.nn.Module:
    if kind == "logreg":
        return torch.nn.Linear(n_in, 20)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(256, 20))


def fit(model, x, y, epochs, lr=1e-3, wd=1e-4, seed=0):
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 64):
            j = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[j]), yt[j]).backward()
            opt.step()
    return model


def predict(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).numpy()


def acc(model, x, y):
    return float((predict(model, x) == y).mean()) if len(y) else float("nan")


class Scaler:
    def __init__(self, x):
        self.m, self.s = x.mean(0), x.std(0) + 1e-3

    def __call__(self, x):
        return ((x - self.m) / self.s).astype(np.float32)


EPOCHS = {"logreg": 60, "mlp": 60}


def train_eval(kind, x_tr, y_tr, evals: dict, seed=0):
    torch.manual_seed(seed)
    sc = Scaler(x_tr)
    m = fit(make_model(kind, x_tr.shape[1]), sc(x_tr), y_tr, EPOCHS[kind], seed=seed)
    return m, sc, {k: acc(m, sc(xx), yy) for k, (xx, yy) in evals.items()}


# ----------------------------------------------------------------------------------------------
# experiments


def official_split(P):
    x, y, spk, te = P["x"], P["y"], P["spk"], P["is_test"]
    held = np.isin(spk, HELDOUT_SPEAKERS)
    tr = te == 0
    rows = {}
    for kind in ("logreg", "mlp"):
        _, _, r = train_eval(kind, x[tr], y[tr], {
            "train": (x[tr], y[tr]), "seen": (x[(te == 1) & ~held], y[(te == 1) & ~held]),
            "unseen": (x[held], y[held])})
        rows[kind] = r
    n_seen = int(((te == 1) & ~held).sum())
    return rows, n_seen, int(held.sum())


def rep_cv(P, folds=4):
    """Seen speakers: k-fold over repetitions (all samples of speakers != 4, 5); unseen = speakers 4+5."""
    x, y, spk, rep = P["x"], P["y"], P["spk"], P["rep"]
    held = np.isin(spk, HELDOUT_SPEAKERS)
    out = {}
    for kind in ("logreg", "mlp"):
        hits_seen, n_seen, hits_un, n_un = 0, 0, 0, 0
        for f in range(folds):
            test = ~held & (rep % folds == f)
            train = ~held & ~test
            m, sc, _ = train_eval(kind, x[train], y[train], {}, seed=f)
            hits_seen += (predict(m, sc(x[test])) == y[test]).sum()
            n_seen += test.sum()
            hits_un += (predict(m, sc(x[held])) == y[held]).sum()
            n_un += held.sum()
        out[kind] = (hits_seen / n_seen, hits_un / n_un)
    return out


def sample_incremental(P, speakers, ft_epochs=30):
    x, y, spk, r_rel = P["x"], P["y"], P["spk"], P["rep_frac"]
    rows = []
    for s in speakers:
        new = spk == s
        old_tr = ~new & (r_rel < 0.8)
        old_te = ~new & (r_rel >= 0.8)
        new_tr = new & (r_rel < 0.75)
        new_te = new & (r_rel >= 0.75)
        m, sc, before = train_eval("mlp", x[old_tr], y[old_tr],
                                   {"old": (x[old_te], y[old_te]), "new": (x[new_te], y[new_te])}, seed=s)
        fit(m, sc(x[new_tr]), y[new_tr], ft_epochs, seed=100 + s)
        after = {"old": acc(m, sc(x[old_te]), y[old_te]), "new": acc(m, sc(x[new_te]), y[new_te])}
        rows.append((s, before, after))
    return rows


def class_incremental(P, ft_epochs=30):
    x, y, te = P["x"], P["y"], P["is_test"]
    en, de = y < 10, y >= 10
    out = {}
    for kind in ("logreg", "mlp"):
        torch.manual_seed(0)
        tr_en, tr_de = (te == 0) & en, (te == 0) & de
        sc = Scaler(x[te == 0])
        m = fit(make_model(kind, x.shape[1]), sc(x[tr_en]), y[tr_en], EPOCHS[kind])
        en_before = acc(m, sc(x[(te == 1) & en]), y[(te == 1) & en])
        # cross-language similarity: German test word -> predicted as its English partner?
        pred_de = predict(m, sc(x[(te == 1) & de]))
        partner = float((pred_de == y[(te == 1) & de] - 10).mean())
        fit(m, sc(x[tr_de]), y[tr_de], ft_epochs, seed=1)
        out[kind] = dict(en_before=en_before, partner=partner,
                         en_after=acc(m, sc(x[(te == 1) & en]), y[(te == 1) & en]),
                         de_after=acc(m, sc(x[(te == 1) & de]), y[(te == 1) & de]))
    return out


# ----------------------------------------------------------------------------------------------
# optional: small recurrent SNN on 100 x 14 ms bins


SNN_WSCALE = 7.0  # SpyTorch's weight scale: N(0, (7 (1 - beta))^2 / fan_in)


def snn_check(P, epochs=30, hidden=128, seed=0, lr=2e-3, log_every=0):
    torch.manual_seed(seed)
    (dtr, btr, _), (dte, bte, _) = P["parts"]
    held = np.isin(dte.speakers, HELDOUT_SPEAKERS)
    alpha, beta = float(np.exp(-1 / 5)), float(np.exp(-1 / 10))  # tau_syn 5 steps, tau_mem 10 steps

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v > 0).float()

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            return g / (10.0 * v.abs() + 1.0) ** 2

    ws = SNN_WSCALE * (1 - beta)
    w1 = torch.nn.Parameter(torch.randn(NB_UNITS, hidden) * (ws / np.sqrt(NB_UNITS)))
    v1 = torch.nn.Parameter(torch.randn(hidden, hidden) * (ws / np.sqrt(hidden)))
    w2 = torch.nn.Parameter(torch.randn(hidden, 20) * (ws / np.sqrt(hidden)))
    params = [w1, v1, w2]
    opt = torch.optim.Adamax(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)  # smooth end: a stable final score

    def run(xb):  # xb (B, T, 700)
        b = xb.shape[0]
        syn = torch.zeros(b, hidden)
        mem = torch.zeros(b, hidden)
        s = torch.zeros(b, hidden)
        osyn = torch.zeros(b, 20)
        omem = torch.zeros(b, 20)
        h = xb @ w1
        outs = []
        for t in range(xb.shape[1]):
            syn = alpha * syn + h[:, t] + s @ v1
            mem = (beta * mem + syn) * (1.0 - s.detach())
            s = Spike.apply(mem - 1.0)
            osyn = alpha * osyn + s @ w2
            omem = beta * omem + osyn
            outs.append(omem)
        return torch.stack(outs, 1).max(1).values, s

    def evaluate(binned, labels, mask=None):
        idx = np.arange(len(labels)) if mask is None else np.flatnonzero(mask)
        hits = 0
        with torch.no_grad():
            for i in range(0, len(idx), 256):
                j = idx[i : i + 256]
                out, _ = run(torch.from_numpy(binned.dense(j)))
                hits += (out.argmax(1).numpy() == labels[j]).sum()
        return hits / max(len(idx), 1)

    rng = np.random.default_rng(seed)
    for ep in range(epochs):
        if log_every and ep and ep % log_every == 0:
            print(f"    SNN epoch {ep}: train {evaluate(btr, dtr.labels):.2f}, "
                  f"seen {evaluate(bte, dte.labels, ~held):.2f}, 4+5 {evaluate(bte, dte.labels, held):.2f}", flush=True)
        perm = rng.permutation(len(dtr))
        for i in range(0, len(perm), 64):
            j = perm[i : i + 64]
            out, _ = run(torch.from_numpy(btr.dense(j)))
            loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(dtr.labels[j]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return (evaluate(btr, dtr.labels), evaluate(bte, dte.labels, ~held), evaluate(bte, dte.labels, held))


# ----------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="demo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--data-dir", default=None, help="reuse/keep the files here (default: a temporary folder)")
    ap.add_argument("--speakers", default="0,3,7,10", help="leave-one-speaker-out / forgetting speakers")
    ap.add_argument("--snn", action="store_true", help="also train a small recurrent SNN (slow)")
    ap.add_argument("--snn-epochs", type=int, default=40)
    ap.add_argument("--snn-seeds", default="0,1", help="SNN initialisations (it is sensitive to them)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory()
        out_dir = Path(tmp.name)
    else:
        out_dir = Path(args.data_dir)
    train_path, test_path = out_dir / "shd_train.h5", out_dir / "shd_test.h5"
    gen_s = None
    if not (train_path.exists() and test_path.exists()):
        t0, w0 = time.process_time(), time.perf_counter()
        generate_dataset(out_dir, size=args.size, seed=args.seed, reps=args.reps)
        gen_s, gen_wall = time.process_time() - t0, time.perf_counter() - w0
    P = load_pool(train_path, test_path)
    n = len(P["y"])
    c = P["counts"]
    spans = []
    for d, _, _ in P["parts"]:
        for t in d.times[:: max(1, len(d) // 200)]:
            t = t.astype(np.float64)
            spans.append(np.percentile(t, 98) - np.percentile(t, 2))
    with h5py.File(train_path, "r") as f:
        origin = f"size {f.attrs.get('size', '?')}, seed {f.attrs.get('seed', '?')}"
    print(f"data: {n} samples ({int((P['is_test'] == 0).sum())} train / {int(P['is_test'].sum())} test), {origin}")
    if gen_s is not None:
        print(f"generation: {gen_s:.1f} CPU-s ({gen_wall:.1f} s wall), {1000 * gen_s / n:.1f} CPU-ms/sample")
    print(f"spikes/sample: mean {c.mean():.0f}, p5 {np.percentile(c, 5):.0f}, p95 {np.percentile(c, 95):.0f}; "
          f"active span (2-98 % of spikes) median {np.median(spans):.2f} s "
          f"[p5 {np.percentile(spans, 5):.2f}, p95 {np.percentile(spans, 95):.2f}]")
    print(f"files: train {train_path.stat().st_size / 1e6:.1f} MB, test {test_path.stat().st_size / 1e6:.1f} MB")

    rows, n_seen, n_un = official_split(P)
    cv = rep_cv(P)
    print("\nclass accuracy (chance 0.05)           logreg   MLP")
    print(f"  official split: train               {rows['logreg']['train']:.2f}    {rows['mlp']['train']:.2f}")
    print(f"  official split: test, seen (n={n_seen:<4d})  {rows['logreg']['seen']:.2f}    {rows['mlp']['seen']:.2f}")
    print(f"  official split: speakers 4+5 (n={n_un})  {rows['logreg']['unseen']:.2f}    {rows['mlp']['unseen']:.2f}")
    print(f"  4-fold rep-CV, seen speakers        {cv['logreg'][0]:.2f}    {cv['mlp'][0]:.2f}")
    print(f"  4-fold rep-CV models, speakers 4+5  {cv['logreg'][1]:.2f}    {cv['mlp'][1]:.2f}")

    speakers = [int(s) for s in args.speakers.split(",") if s]
    si = sample_incremental(P, speakers)
    print("\nleave-one-speaker-out + naive fine-tuning on that speaker only (MLP)")
    print("  speaker   old before  new before (LOSO)   old after  new after")
    for s, b, a in si:
        print(f"  {s:7d}   {b['old']:.2f}        {b['new']:.2f}                {a['old']:.2f}       {a['new']:.2f}")
    mean = lambda key, ph: np.mean([r[ph][key] for r in si])  # noqa: E731
    print(f"  mean      {mean('old', 1):.2f}        {mean('new', 1):.2f}                "
          f"{mean('old', 2):.2f}       {mean('new', 2):.2f}")

    ci = class_incremental(P)
    print("\nclass-incremental, naive (train English -> fine-tune German only)  logreg   MLP")
    for key, text in (("en_before", "English test acc before"), ("en_after", "English test acc after"),
                      ("de_after", "German test acc after"),
                      ("partner", "German word -> its English partner, EN-only model (chance .10)")):
        print(f"  {text:<64s} {ci['logreg'][key]:.2f}    {ci['mlp'][key]:.2f}")

    if args.snn:
        print(f"\nSNN 700-128r-20, {args.snn_epochs} epochs, official split (seen test n={n_seen}, 4+5 n={n_un})")
        for seed in [int(s) for s in args.snn_seeds.split(",")]:
            t0 = time.perf_counter()
            tr, seen, un = snn_check(P, epochs=args.snn_epochs, seed=seed)
            print(f"  init seed {seed}: train {tr:.2f}, test seen {seen:.2f}, speakers 4+5 {un:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
