"""The main job: the whole study in one command.

    python reproduce.py                          # quick configuration (minutes on a 2-core CPU)
    python reproduce.py --full --data-dir ~/data/hdspikes --jobs 8   # the paper's configuration on real SHD

Data: real SHD when shd_train.h5 + shd_test.h5 (or shd_merged.h5) are in --data-dir; otherwise the embedded
synthetic SHD-format dataset is generated into data/offline/<size> and every table and figure says
"synthetic SHD-format data, not SHD". Stages: data -> pretraining -> sample-incremental -> class-incremental
-> progressive -> speakers -> report (results/summary.csv, results/REPORT.md, results/figures/). Every run is a separate
process; rerunning skips what is finished, so an interrupted study resumes where it stopped.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from sccl.cli.cl_sweep import ID_FLAGS, most_replay_batches, run_sweeps, sweep_jobs, sweep_parser  # noqa: E402
from sccl.core.entry import run_cli  # noqa: E402
from sccl.core.errors import ConfigError  # noqa: E402
from sccl.data.merge import MERGED_FILE, TEST_FILE, TRAIN_FILE, ensure_merged, merged_path  # noqa: E402
from sccl.data.offline import dataset_problem, generate_dataset  # noqa: E402
from sccl.data.provenance import SYNTHETIC_LABEL, file_label  # noqa: E402
from sccl.data.splits import SPLIT_HELP, SPLITS  # noqa: E402
from sccl.jobs.launch import add_launcher_flags, check_launcher_args, launch, launcher_argv  # noqa: E402
from sccl.jobs.study_fit import fit_to_data, read_labels_and_speakers  # noqa: E402
from sccl.jobs.sweep import id_list, parse_int_list, pretrain_job, run_jobs  # noqa: E402
from sccl.report.build import build_report  # noqa: E402


OFFLINE_ROOT = ROOT / "data" / "offline"  # one folder per size: data/offline/<size>
STAGES = ("pretrain", "sample_incremental", "class_incremental", "progressive", "speakers", "report")

# Every configuration: per scenario, the held-out ids (two-task scenarios), the epochs per new task, the batch size
# and its grids, each a command line of python -m sccl.cli.cl_sweep (the scenario's settings come first, a grid's
# own flags after them and win: e.g. its --epochs). A grid's --lr applies to all its runs (without one: the
# scenario's default, sccl/core/defaults.py); --set sweeps a strategy's own flag.
CONFIGS = {
    "quick": {
        # Sized for ~15 minutes on a 2-core CPU: 3 seeds, each with its own pretrained models (25 epochs at lr 1e-3
        # instead of the paper's 200 at 2e-4: ~75 % test accuracy on the demo data, where 12 epochs gave ~61 %; lr
        # 1.5e-3 or 3e-3, batch 32 or reshuffled batches reached less after 20 epochs, class 7 held out, seed 3);
        # one held-out speaker and one held-out class (their old test sets hold
        # ~350 and ~380 samples, the new speaker's ~32 and the new class's ~20); the speakers scenario adds six
        # speakers one at a time. The class-incremental latent runs use lr 1e-3: with one new-class batch per
        # epoch they do not learn the new class at 2e-4 within 30 epochs; naive fine-tuning trains all seven
        # parameters and keeps 2e-4 (at 1e-3 the whole network falls silent on this data). Test accuracy is
        # measured every 5 epochs and after each task's last (eval_every): evaluation took 40-67 % of the time of a
        # run that trains the whole network, and the results do not depend on it (only epochs.csv is sparser).
        "pretrain_epochs": 25, "pretrain_lr": 1e-3, "pretrain_batch_size": 64, "seeds": "0,1,2",
        "sample_incremental": {"ids": "3", "epochs": 10, "batch_size": 64, "eval_every": 5, "grids": [
            "--strategies naive",
            "--strategies rehearsal --rehearsal-batches 4",
            "--strategies latent_replay --depths 1,3 --latent-batches 8 --subsample none,10",
            # beyond replay (issue 10): SI equals naive fine-tuning in a two-task scenario (no importance for the
            # unobserved pretraining), so it runs in the sequences only
            # HLOP (projection.subspace=hebbian) runs in the class-incremental grid only: its step costs ~3.6x a
            # naive one, and the projection runs of three scenarios took ~17 % of the study's CPU time
            "--strategies joint,ewc,lwf,projection"]},
        "class_incremental": {"ids": "7", "epochs": 30, "batch_size": 64, "eval_every": 5, "grids": [
            "--strategies naive",
            "--strategies latent_replay --depths 2,3 --latent-batches 1 --subsample none,10 --lr 1e-3",
            "--strategies ewc,lwf,projection --set projection.subspace=svd,hebbian",
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample none --lr 1e-3 "
            "--set latent_replay.regularizer=ewc,lwf,projection",
            # threshold 1/c (auto); gain 1: without it the new class is never learnt
            "--strategies latent_replay_fewer_steps --lr 1e-3 --set latent_replay_fewer_steps.latent-batches=1 "
            "--set latent_replay_fewer_steps.readout-gain=1,auto",
            "--strategies joint --lr 1e-3 --epochs 10",  # the union: 10 epochs at the pretraining lr
            # on-device footprint: the compressed latent replay above at int16 and int8, and three byte budgets for
            # the learning state (the runs choose their stored steps: S = 10, 25 and 50 on this data)
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample 10 --lr 1e-3 --precisions int16,int8",
            "--strategies latent_replay --depths 2 --latent-batches 1 --lr 1e-3 "
            "--set latent_replay.budget-bytes=262144,524288,1048576"]},
        "progressive": {"epochs": 10, "batch_size": 64, "eval_every": 5, "grids": [
            # k = 0: the frozen network without replay
            "--strategies latent_replay --depths 2 --latent-batches 0,1 --subsample none --lr 1e-3",
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample 50 --lr 1e-3",
            # LwF's warm-up was tuned as 5 of 30 class-incremental epochs: here 1 of 5, so that it distils at all
            "--strategies naive,ewc,si,lwf,projection --epochs 5 --set lwf.lwf-warmup-epochs=1",
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample none --lr 1e-3 "
            "--set latent_replay.regularizer=si",
            "--strategies joint --lr 1e-3 --epochs 2"]},
        # speakers 0-5 hold about half the training samples of the other groups: 40 epochs (~80 % test accuracy
        # on the demo data, where 25 gave 70.3 +- 8.2 %)
        "speakers": {"first_speakers": "0-5", "epochs": 3, "batch_size": 64, "pretrain_epochs": 40, "grids": [
            "--strategies naive",
            "--strategies latent_replay --depths 1 --latent-batches 2 --subsample none"]},
    },
    "smoke": {  # the smallest end-to-end run (for the test): tiny data, small batches, 1-2 epochs
        "pretrain_epochs": 2, "pretrain_lr": None, "pretrain_batch_size": 16, "seeds": "0",
        "sample_incremental": {"ids": "3", "epochs": 2, "batch_size": 16, "grids": [
            "--strategies naive,rehearsal,latent_replay --depths 1,3 --latent-batches 1 --rehearsal-batches 1 "
            "--subsample none",
            "--strategies latent_replay --depths 1 --latent-batches 1 --subsample 10 --lr 1e-3"]},
        "class_incremental": {"ids": "7", "epochs": 2, "batch_size": 8, "grids": [
            "--strategies naive",
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample 10 --lr 1e-3"]},
        "progressive": {"epochs": 1, "batch_size": 4, "grids": [
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample none --lr 1e-3"]},
        "speakers": {"first_speakers": "0-5", "epochs": 1, "batch_size": 8, "grids": [
            "--strategies naive,latent_replay --depths 1 --latent-batches 1 --subsample none"]},
    },
    "full": {  # the paper's grids (50 / 50 / 20 epochs; 200 epochs of pretraining)
        "pretrain_epochs": 200, "pretrain_lr": None, "pretrain_batch_size": 64, "seeds": "0",
        "sample_incremental": {"ids": "0-11", "epochs": 50, "batch_size": 64, "grids": [
            "--strategies naive,latent_replay --depths 0-3 --latent-batches 10,20,40,80 --subsample none",
            "--strategies rehearsal --rehearsal-batches 1,2,3,4,5",
            "--strategies latent_replay_subsampled --depths 0-3 --latent-batches 10,20,40,80 --subsample 50,20,10",
            "--strategies joint,ewc,si,lwf,projection --set projection.subspace=svd,hebbian",
            "--strategies latent_replay --depths 1 --latent-batches 40 --subsample none,10 "
            "--set latent_replay.regularizer=ewc,lwf,projection"]},
        "class_incremental": {"ids": "0-19", "epochs": 50, "batch_size": 64, "grids": [
            "--strategies naive,rehearsal,latent_replay --depths 0-3 --latent-batches 1,2,3,4 --rehearsal-batches 2 "
            "--subsample none",
            "--strategies latent_replay_subsampled --depths 0-3 --latent-batches 1,2,3,4 --subsample 50,20,10",
            "--strategies joint,ewc,si,lwf,projection --set projection.subspace=svd,hebbian",
            "--strategies latent_replay --depths 2 --latent-batches 2 --subsample none,10 "
            "--set latent_replay.regularizer=ewc,lwf,projection",
            # fewer-step replay takes no sweep axes: its depth and memory are swept as its own flags
            "--strategies latent_replay_fewer_steps --set latent_replay_fewer_steps.latent-depth=1,2 "
            "--set latent_replay_fewer_steps.latent-batches=2"]},
        "progressive": {"epochs": 20, "batch_size": 64, "grids": [
            "--strategies latent_replay --depths 0-3 --latent-batches 1-4 --subsample none,50",
            "--strategies naive,joint,ewc,si,lwf,projection --set projection.subspace=svd,hebbian",
            "--strategies latent_replay --depths 2 --latent-batches 1 --subsample none,50 "
            "--set latent_replay.regularizer=ewc,lwf,projection"]},
        "speakers": {"first_speakers": "0-5", "epochs": 20, "batch_size": 64, "grids": [
            "--strategies naive,rehearsal,latent_replay --depths 1-3 --latent-batches 2 --rehearsal-batches 1 "
            "--subsample none,10"]},
    },
}


def has_shd_files(folder: Path) -> bool:
    return (folder / MERGED_FILE).is_file() or ((folder / TRAIN_FILE).is_file() and (folder / TEST_FILE).is_file())


def resolve_data(data_dir: Path, offline_size: str, seed: int, offline_dir: Path | None = None,
                 workers: int = 1, force: bool = False, dry_run: bool = False) -> tuple[Path, bool]:
    """(folder holding the merged file, synthetic?): real SHD from data_dir, else the embedded dataset of that size
    in its own folder (data/offline/<size>), so that a smoke run's tiny set is never reused by a plain run. The
    embedded dataset is (re)generated when missing, half-generated or damaged, and with ``force`` in any case.
    ``dry_run``: only say what would be generated or merged."""
    if has_shd_files(data_dir):
        print(f"[data] SHD-layout files found in {data_dir}", flush=True)
        if dry_run and not merged_path(data_dir).is_file():
            print(f"[data] would merge them into {merged_path(data_dir)}", flush=True)
        else:
            ensure_merged(data_dir)
        return data_dir, False
    offline_dir = offline_dir or OFFLINE_ROOT / offline_size
    print(f"[data] no SHD files in {data_dir}: using the embedded synthetic SHD-format dataset ({offline_size}) "
          f"in {offline_dir} -- synthetic data, not SHD", flush=True)
    problem = "--force" if force else dataset_problem(offline_dir)
    if problem and dry_run:
        print(f"[data] would generate {offline_dir} ({problem})", flush=True)
        return offline_dir, True
    if problem:
        print(f"[data] generating {offline_dir} ({problem})", flush=True)
        t0 = time.perf_counter()
        generate_dataset(offline_dir, size=offline_size, seed=seed, progress=True, workers=workers, force=True)
        print(f"[data] generated in {time.perf_counter() - t0:.0f} s", flush=True)
    ensure_merged(offline_dir)
    return offline_dir, True


def sweep_args(args, runs_dir: Path, data_dir: Path, scenario: str, conf: dict, grid: str) -> argparse.Namespace:
    """One grid of one scenario as the testsuite's parsed command line: the scenario's settings, then the grid's."""
    sc = conf[scenario]
    argv = [ID_FLAGS[scenario][0], sc["ids"]] if scenario in ID_FLAGS else []
    argv += ["--first-speakers", sc["first_speakers"]] if scenario == "speakers" else []
    argv += ["--seeds", args.seeds or conf["seeds"], "--epochs", str(sc["epochs"]), "--batch-size",
             str(sc["batch_size"]), "--eval-every", str(sc.get("eval_every", 1)), "--pretrain-epochs",
             str(pretrain_epochs(conf, scenario)), "--jobs", str(args.jobs), "--retries", "1", "--data-dir",
             str(data_dir), "--out-dir", str(runs_dir), "--split", args.split, "--device", args.device]
    argv += (["--dry-run"] if args.dry_run else []) + launcher_argv(args) + shlex.split(grid)
    return sweep_parser(scenario).parse_args(argv)


def grid_replay_batches(conf: dict) -> dict[str, int]:
    """Per scenario, the most replay batches a run of its grids stores (what its batch size must fill)."""
    return {scenario: max(most_replay_batches(sweep_parser(scenario).parse_args(shlex.split(grid)), scenario)
                          for grid in conf[scenario]["grids"]) for scenario in STAGES[1:-1]}


def pretrain_epochs(conf: dict, scenario: str) -> int:
    """The epochs of a scenario's pretraining: its own ``pretrain_epochs`` where it has one, else the config's."""
    return conf[scenario].get("pretrain_epochs", conf["pretrain_epochs"])


def pretrain_jobs(args, runs: Path, data_dir: Path, conf: dict) -> list:
    rest = ["--data-dir", str(data_dir), "--device", args.device, "--quiet",
            "--batch-size", str(conf["pretrain_batch_size"])]
    rest += ["--lr", str(conf["pretrain_lr"])] if conf["pretrain_lr"] else []
    data_file = merged_path(data_dir)  # ids are checked against the data's (sccl.data.shape)
    targets = [("sample_incremental", s, None) for s in id_list(conf["sample_incremental"]["ids"], data_file, "speaker")]
    targets += [("class_incremental", c, None) for c in id_list(conf["class_incremental"]["ids"], data_file, "class")]
    targets += [("progressive", None, None),
                ("speakers", None, tuple(id_list(conf["speakers"]["first_speakers"], data_file, "speaker")))]
    return [pretrain_job(scenario, held, seed, pretrain_epochs(conf, scenario), runs, args.split, rest,
                         first_speakers=first, data_file=data_file)
            for seed in parse_int_list(args.seeds or conf["seeds"], 0, 2**31 - 1, "seed")
            for scenario, held, first in targets]


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
    p.add_argument("--offline-dir", help="where the embedded dataset is generated (default: data/offline/<size>)")
    p.add_argument("--force", action="store_true", help="regenerate the embedded dataset even if it is complete (a "
                   "missing, half-generated or damaged one is regenerated anyway); never touches real SHD files")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one process and thread each (default: 2)")
    p.add_argument("--seeds", default=None,
                   help="comma-separated seeds (default: the configuration's: 0,1,2 quick, 0 smoke and full)")
    p.add_argument("--split", "--protocol", dest="split", choices=SPLITS, default="paper", help=SPLIT_HELP)
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size of every continual-learning run (default: the configuration's, 64); on a data "
                        "file whose tasks cannot fill it, it is lowered to what every run can fill, saying so")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--stages", default="all", help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    p.add_argument("--dry-run", action="store_true", help="only list (or, on Slurm, show the arrays) what would run")
    add_launcher_flags(p)
    args = p.parse_args(argv)
    check_launcher_args(args)
    stages = set(STAGES) if args.stages == "all" else set(args.stages.split(","))
    unknown = stages - set(STAGES)
    if unknown:
        raise ConfigError(f"unknown stage(s): {', '.join(sorted(unknown))} (choose from {', '.join(STAGES)})")
    if args.full and args.smoke:
        raise ConfigError("choose --full or --smoke, not both")
    name = "full" if args.full else "smoke" if args.smoke else "quick"
    conf = CONFIGS[name]
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
        conf = {k: {**v, "batch_size": args.batch_size} if k in STAGES[1:-1] else v for k, v in conf.items()}
    seeds = args.seeds or conf["seeds"]
    offline_size = "tiny" if args.smoke else args.offline_size
    results = Path(args.results_dir)
    runs = results / "runs"
    t_start = time.perf_counter()
    data_dir, synthetic = resolve_data(Path(args.data_dir).expanduser(), offline_size,
                                       int(seeds.split(",")[0]), Path(args.offline_dir) if args.offline_dir else None,
                                       workers=max(1, args.jobs), force=args.force, dry_run=args.dry_run)
    data_file = merged_path(data_dir)
    if data_file.is_file():  # (a dry run may have found it still to be made)
        label = SYNTHETIC_LABEL if synthetic else file_label(data_file)
        conf, notes = fit_to_data(conf, *read_labels_and_speakers(data_file),
                                  parse_int_list(seeds, 0, 2**31 - 1, "seed"), grid_replay_batches(conf),
                                  args.split)
        for line in notes:
            print(f"[data] {line}", flush=True)
    else:
        label = SYNTHETIC_LABEL if synthetic else "SHD-layout data, not merged yet"
    order = [s for s in STAGES if s in stages]
    failed = 0

    def stage(name: str) -> None:
        print(f"\n[stage {order.index(name) + 1}/{len(order)}] {name} ({label}); "
              f"{time.perf_counter() - t_start:.0f} s so far", flush=True)

    if args.launcher == "slurm":  # one pretraining array, one continual-learning array after it; then return
        pre = pretrain_jobs(args, runs, data_dir, conf) if "pretrain" in stages else []
        cl = [job for scenario in STAGES[1:-1] if scenario in stages for grid in conf[scenario]["grids"]
              for job in sweep_jobs(sweep_args(args, runs, data_dir, scenario, conf, grid), scenario)[1]]
        launch([("pretrain", pre), ("continual", cl)], args, runs)
        print(f"[slurm] when the arrays are done: python -m sccl.report --results-dir {results}")
        return
    if "pretrain" in stages:
        stage("pretrain")
        failed += run_jobs(pretrain_jobs(args, runs, data_dir, conf), parallel=args.jobs, dry_run=args.dry_run)
    for scenario in STAGES[1:-1]:
        if scenario in stages:
            stage(scenario)
            failed += run_sweeps([sweep_args(args, runs, data_dir, scenario, conf, grid)
                                  for grid in conf[scenario]["grids"]], scenario)
    if "report" in stages and not args.dry_run:
        stage("report")
        written = build_report(results, runs, title_note=f"Configuration: {name}; data: {label}; seeds {seeds}")
        print(f"[report] wrote {results / 'summary.csv'}, {results / 'REPORT.md'} and "
              f"{len(written.get('figures', []))} figure files in {results / 'figures'}")
    print(f"\n[done] {time.perf_counter() - t_start:.0f} s" + (f"; {failed} run(s) failed: each stage's last line "
                                                              "says why, and whether rerunning can help"
                                                              if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(run_cli(main))
