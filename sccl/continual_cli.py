"""Command lines of the continual-learning scripts: one parser factory, four strategies, two protocols."""

from __future__ import annotations

import argparse
from pathlib import Path

from sccl.continual import CLConfig, run_continual
from sccl.merge import ensure_merged
from sccl.training import load_dataset

DESCRIPTIONS = {
    "naive": "Naive fine-tuning: train every parameter on the new data only (the forgetting baseline).",
    "rehearsal": "Rehearsal: train on the new data plus stored raw input batches from pretraining "
                 "(optionally time-compressed by summing counts in windows).",
    "latent_replay": "Latent replay: freeze the layers at or below --latent-depth, store their activity on "
                     "pretraining batches, and train the layers above on new data plus the replayed latents.",
    "latent_replay_subsampled": "Compressed latent replay: latent replay whose stored latents keep only "
                                "--latent-subsample time steps (windows OR-ed or summed), un-compressed at replay.",
}


def build_parser(strategy: str, scenario: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTIONS[strategy] + " Results go to OUT_DIR/"
                                f"{'sample' if scenario == 'speaker' else 'class'}_incremental/<stamp>/.")
    if scenario == "speaker":
        p.add_argument("--speaker", type=int, required=True, help="the new speaker (0-11), held out in pretraining")
    else:
        p.add_argument("--removed-class", type=int, required=True,
                       help="the new class (0-19), held out in pretraining")
        p.add_argument("--keep-readout", action="store_true",
                       help="keep the new class's readout column (default: re-draw it from N(0.003, 0.003))")
        p.add_argument("--class-mixed", action="store_true",
                       help="deal the per-class replay samples into class-mixed batches (default: single-class)")
    p.add_argument("--data-dir", default="~/data/hdspikes", help="folder with the SHD files (default: %(default)s)")
    p.add_argument("--out-dir", default="runs",
                   help="where pretrained models are found and results go (default: %(default)s)")
    p.add_argument("--pretrained", help="a pretraining run folder to start from (default: found in --out-dir)")
    p.add_argument("--protocol", choices=["paper", "official"], default="paper")
    p.add_argument("--epochs", type=int, default=50, help="training epochs (default: %(default)s)")
    default_lr = 1e-3 if strategy == "latent_replay_subsampled" else 2e-4
    p.add_argument("--lr", type=float, default=default_lr, help="Adamax learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the replay choice and the pretrained model to use")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--keep-last", action="store_true", help="keep the last incomplete new-data batch")
    per = " per old class" if scenario == "class" else ""
    default_n = 40 if scenario == "speaker" else 2
    if strategy == "rehearsal":
        p.add_argument("--rehearsal-batches", type=int, default=1 if scenario == "speaker" else 2,
                       help=f"raw pretraining batches of 64 stored{per} (default: %(default)s)")
        p.add_argument("--rehearsal-subsample", type=int, default=None,
                       help="time-compress the stored inputs to this many steps (window sums; default: none)")
    if strategy.startswith("latent"):
        p.add_argument("--latent-depth", type=int, default=1 if scenario == "speaker" else 2,
                       help="cut depth 0-3: 0 = layer-1 input currents, 1-3 = spikes of that layer "
                            "(layers at or below are frozen) (default: %(default)s)")
        p.add_argument("--latent-batches", type=int, default=default_n,
                       help=f"pretraining batches of 64 whose latents are stored{per} (default: %(default)s)")
    if strategy == "latent_replay_subsampled":
        p.add_argument("--latent-subsample", type=int, default=10,
                       help="stored time steps S (must divide the 100 steps; compression 1:100/S) (default: 10)")
        p.add_argument("--compression", choices=["or", "sum"], default="or",
                       help="or: 1 if any spike in the window (the paper); sum: the spike count (default: or)")
    if strategy != "naive":
        p.add_argument("--schedule", choices=["original", "mixed"], default="original",
                       help="original: all new batches then all replay batches each epoch; "
                            "mixed: replay batches interleaved among the new ones")
        p.add_argument("--float16", action="store_true", help="store depth-0 currents as float16 (default float32)")
    p.add_argument("--force", action="store_true", help="run again even if this exact config has finished")
    p.add_argument("--quiet", action="store_true")
    return p


def config_from_args(args, strategy: str, scenario: str) -> CLConfig:
    held = args.speaker if scenario == "speaker" else args.removed_class
    cfg = CLConfig(scenario=scenario, held_out=held, strategy=strategy, protocol=args.protocol, epochs=args.epochs,
                   lr=args.lr, seed=args.seed, device=args.device, threads=args.threads, batch_size=args.batch_size,
                   keep_last=args.keep_last, pretrained=args.pretrained, quiet=args.quiet)
    if strategy == "rehearsal":
        cfg.replay_batches, cfg.stored_steps, cfg.compression = args.rehearsal_batches, args.rehearsal_subsample, "sum"
    if strategy.startswith("latent"):
        cfg.latent_depth, cfg.replay_batches = args.latent_depth, args.latent_batches
    if strategy == "latent_replay_subsampled":
        cfg.stored_steps, cfg.compression = args.latent_subsample, args.compression
    if strategy != "naive":
        cfg.schedule, cfg.float16_currents = args.schedule, args.float16
    if scenario == "class":
        cfg.reinit_new_class, cfg.class_mixed = not args.keep_readout, args.class_mixed
    return cfg


def main(strategy: str, scenario: str, argv=None) -> Path:
    args = build_parser(strategy, scenario).parse_args(argv)
    cfg = config_from_args(args, strategy, scenario)
    ds = load_dataset(ensure_merged(Path(args.data_dir).expanduser(), quiet=args.quiet))
    return run_continual(cfg, ds, args.out_dir, force=args.force)
