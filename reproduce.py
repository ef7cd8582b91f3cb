"""The main job: the whole study in one command.

    python reproduce.py                          # quick configuration (minutes on a 2-core CPU)
    python reproduce.py --full --data-dir ~/data/hdspikes --jobs 8   # the paper's configuration on real SHD

Data: real SHD when shd_train.h5 + shd_test.h5 (or shd_merged.h5) are in --data-dir; otherwise the embedded
synthetic SHD-format dataset is generated into data/offline and every table and figure says
"synthetic SHD-format data, not SHD". Stages: data -> pretraining -> sample-incremental -> class-incremental
-> progressive -> report (results/summary.csv, results/REPORT.md, results/figures/). Every run is a separate
process; rerunning skips what is finished, so an interrupted study resumes where it stopped.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from sccl.cl_sweep import run_sweep  # noqa: E402
from sccl.cli import run_cli  # noqa: E402
from sccl.errors import ConfigError  # noqa: E402
from sccl.merge import MERGED_FILE, TEST_FILE, TRAIN_FILE, ensure_merged  # noqa: E402
from sccl.sweep import parse_int_list, pretrain_job, run_jobs  # noqa: E402

OFFLINE_DIR = ROOT / "data" / "offline"

# (quick, full) settings of every stage
CONFIGS = {
    "quick": {
        # the small demo set has one batch of a new class per epoch: latent replay at the original's lr 2e-4 does
        # not learn it in a few epochs, at 1e-3 (the original class-LR sweep's value) it does. Naive and rehearsal
        # train all seven parameters and keep 2e-4 (at 1e-3 the whole network falls silent).
        "speakers": "3", "classes": "7", "pretrain_epochs": 40,
        "epochs": {"speaker": 10, "class": 30},
        "progressive_epochs": 10, "progressive_lr": 1e-3,
        "batch_size": {"pretrain": 64, "speaker": 64, "class": 64, "progressive": 64},
        "sample": [  # (strategies, depths, latent batches, rehearsal batches, stored steps)
            ("naive,latent_replay", "0-3", "2,8", "1", "100"),
            ("rehearsal", "0", "1", "1,4", "100"),
            ("latent_replay_subsampled", "0-3", "8", "1", "10"),
            ("latent_replay_subsampled", "1", "8", "1", "50,20"),
        ],
        "class": [
            ("naive,rehearsal", "0", "1", "1", "100"),
            ("latent_replay", "0-3", "1", "1", "100", 1e-3),
            ("latent_replay_subsampled", "0-3", "1", "1", "10", 1e-3),
        ],
        "progressive": {"depths": "2", "k": "1", "subsample": "none,50"},
    },
    "smoke": {  # the smallest end-to-end run (for the test): tiny data, small batches, 1-2 epochs
        "speakers": "3", "classes": "7", "pretrain_epochs": 2,
        "epochs": {"speaker": 2, "class": 2},
        "progressive_epochs": 1, "progressive_lr": 1e-3,
        "batch_size": {"pretrain": 16, "speaker": 16, "class": 8, "progressive": 4},
        "sample": [
            ("naive,rehearsal,latent_replay", "1,3", "1,2", "1", "100"),
            ("latent_replay_subsampled", "1", "2", "1", "10"),
        ],
        "class": [("naive", "2", "1", "1", "10"), ("latent_replay_subsampled", "2", "1", "1", "10", 1e-3)],
        "progressive": {"depths": "2", "k": "1", "subsample": "none"},
    },
    "full": {
        "speakers": "0-11", "classes": "0-19", "pretrain_epochs": 200,
        "epochs": {"speaker": 50, "class": 50},
        "progressive_epochs": 20, "progressive_lr": None,
        "batch_size": {"pretrain": 64, "speaker": 64, "class": 64, "progressive": 64},
        "sample": [
            ("naive,latent_replay", "0-3", "10,20,40,80", "1", "100"),
            ("rehearsal", "0", "1", "1,2,3,4,5", "100"),  # (strategies, depths, N, rehearsal N, S[, lr])
            ("latent_replay_subsampled", "0-3", "10,20,40,80", "1", "50,20,10"),
        ],
        "class": [
            ("naive,rehearsal,latent_replay", "0-3", "1,2,3,4", "2", "100"),
            ("latent_replay_subsampled", "0-3", "1,2,3,4", "2", "50,20,10"),
        ],
        "progressive": {"depths": "0-3", "k": "1-4", "subsample": "none,50"},
    },
}


def has_shd_files(folder: Path) -> bool:
    return (folder / MERGED_FILE).is_file() or ((folder / TRAIN_FILE).is_file() and (folder / TEST_FILE).is_file())


def resolve_data(data_dir: Path, offline_size: str, seed: int, offline_dir: Path = OFFLINE_DIR) -> tuple[Path, bool]:
    """(folder holding the merged file, synthetic?): real SHD from data_dir, else the embedded dataset."""
    if has_shd_files(data_dir):
        print(f"[data] SHD files found in {data_dir}", flush=True)
        ensure_merged(data_dir)
        return data_dir, False
    from sccl.offline import generate_dataset

    print(f"[data] no SHD files in {data_dir}: using the embedded synthetic SHD-format dataset ({offline_size}) "
          f"in {offline_dir} -- synthetic data, not SHD", flush=True)
    if not has_shd_files(offline_dir):
        t0 = time.perf_counter()
        generate_dataset(offline_dir, size=offline_size, seed=seed, progress=True)
        print(f"[data] generated in {time.perf_counter() - t0:.0f} s", flush=True)
    ensure_merged(offline_dir)
    return offline_dir, True


def sweep_args(args, runs_dir: Path, data_dir: Path, scenario: str, conf: dict, grid: tuple,
               ids: str) -> argparse.Namespace:
    strategies, depths, n, rehearsal, steps, *lr = grid  # an optional 6th entry: the grid's learning rate
    return argparse.Namespace(
        speakers=ids, classes=ids, strategies=strategies, depths=depths, latent_batches=n, rehearsal_batches=rehearsal,
        subsample=steps, compression="or", seeds=args.seeds, epochs=conf["epochs"][scenario],
        batch_size=conf["batch_size"][scenario],
        lr=lr[0] if lr else None, pretrain_epochs=conf["pretrain_epochs"], jobs=args.jobs, retries=1, dry_run=False, data_dir=str(data_dir),
        out_dir=str(runs_dir), protocol=args.protocol, device=args.device)


def progressive_jobs(args, runs_dir: Path, data_dir: Path, conf: dict) -> list[str]:
    argv = [sys.executable, str(ROOT / "class_incremental_multiclasses" / "testsuite.py"),
            "--depths", conf["progressive"]["depths"], "--latent-batches", conf["progressive"]["k"],
            "--subsample", conf["progressive"]["subsample"], "--seeds", args.seeds,
            "--epochs", str(conf["progressive_epochs"]), "--pretrain-epochs", str(conf["pretrain_epochs"]),
            "--jobs", str(args.jobs), "--data-dir", str(data_dir), "--out-dir", str(runs_dir),
            "--protocol", args.protocol, "--device", args.device,
            "--batch-size", str(conf["batch_size"]["progressive"])]
    return argv + (["--lr", str(conf["progressive_lr"])] if conf["progressive_lr"] else [])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the paper's configuration (all speakers and classes, "
                   "depths 0-3, the paper's buffer sizes and compression ratios, 200 / 50 / 20 epochs)")
    p.add_argument("--smoke", action="store_true",
                   help="the smallest end-to-end run (tiny data, 1-2 epochs): checks the pipeline, not the science")
    p.add_argument("--data-dir", default="~/data/hdspikes", help="folder with real SHD files (default: %(default)s)")
    p.add_argument("--results-dir", default=str(ROOT / "results"), help="where everything goes (default: results/)")
    p.add_argument("--offline-size", default="demo", choices=["tiny", "demo", "shd"],
                   help="size of the embedded dataset when no SHD files are found (default: %(default)s)")
    p.add_argument("--offline-dir", help="where the embedded dataset is generated (default: data/offline)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one process and thread each (default: 2)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; tables then report mean +- std")
    p.add_argument("--protocol", choices=["paper", "official"], default="paper")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--stages", default="all",
                   help="comma-separated subset of pretrain,sample,class,progressive,report (default: all)")
    args = p.parse_args(argv)
    stages = {"pretrain", "sample", "class", "progressive", "report"} if args.stages == "all" else set(
        args.stages.split(","))
    unknown = stages - {"pretrain", "sample", "class", "progressive", "report"}
    if unknown:
        raise ConfigError(f"unknown stage(s): {', '.join(sorted(unknown))}")
    if args.full and args.smoke:
        raise ConfigError("choose --full or --smoke, not both")
    name = "full" if args.full else "smoke" if args.smoke else "quick"
    conf = CONFIGS[name]
    offline_dir = Path(args.offline_dir) if args.offline_dir else OFFLINE_DIR
    offline_size = "tiny" if args.smoke else args.offline_size
    results = Path(args.results_dir)
    runs = results / "runs"
    t_start = time.perf_counter()
    data_dir, synthetic = resolve_data(Path(args.data_dir).expanduser(), offline_size,
                                       int(args.seeds.split(",")[0]), offline_dir)
    label = "synthetic SHD-format data, not SHD" if synthetic else "SHD"
    order = [s for s in ("pretrain", "sample", "class", "progressive", "report") if s in stages]
    failed = 0

    def stage(name: str) -> None:
        i = order.index(name) + 1
        print(f"\n[stage {i}/{len(order)}] {name} ({label}); {time.perf_counter() - t_start:.0f} s so far", flush=True)

    if "pretrain" in stages:
        stage("pretrain")
        rest = ["--data-dir", str(data_dir), "--device", args.device, "--quiet",
                "--batch-size", str(conf["batch_size"]["pretrain"])]
        targets = [("speaker", s) for s in parse_int_list(conf["speakers"], 0, 11, "speaker")]
        targets += [("class", c) for c in parse_int_list(conf["classes"], 0, 19, "class")] + [("classes", None)]
        jobs = [pretrain_job(scenario, held, seed, conf["pretrain_epochs"], runs, args.protocol, rest)
                for seed in parse_int_list(args.seeds, 0, 2**31 - 1, "seed") for scenario, held in targets]
        failed += run_jobs(jobs, parallel=args.jobs)
    for scenario, key, ids in (("speaker", "sample", conf["speakers"]), ("class", "class", conf["classes"])):
        if key in stages:
            stage(key)
            for grid in conf[key]:
                failed += run_sweep(sweep_args(args, runs, data_dir, scenario, conf, grid, ids), scenario)
    if "progressive" in stages:
        stage("progressive")
        failed += subprocess.run(progressive_jobs(args, runs, data_dir, conf)).returncode != 0
    if "report" in stages:
        stage("report")
        from sccl.report import build_report

        written = build_report(results, runs, title_note=f"Configuration: {name}; "
                               f"data: {label}; seeds {args.seeds}")
        print(f"[report] wrote {results / 'summary.csv'}, {results / 'REPORT.md'} and "
              f"{len(written.get('figures', []))} figure files in {results / 'figures'}")
    print(f"\n[done] {time.perf_counter() - t_start:.0f} s" + (f"; {failed} stage(s) had failed runs: rerun the same "
                                                              "command to retry them" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
