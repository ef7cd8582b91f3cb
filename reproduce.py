"""The main job: the whole pipeline in one command, on real SHD when found, else on the embedded
synthetic SHD-format dataset (generated offline; clearly labelled, never called SHD).

    python reproduce.py                      # embedded dataset unless SHD files are in --data-dir
    python reproduce.py --data-dir ~/data/hdspikes

Stages: data (merge, or generate the embedded set) -> pretraining of a speaker-held-out model -> its
accuracy. Rerunning skips finished stages.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from sccl.cli import run_cli  # noqa: E402
from sccl.merge import MERGED_FILE, TEST_FILE, TRAIN_FILE, ensure_merged  # noqa: E402
from sccl.pretraining import PretrainConfig, pretrain  # noqa: E402
from sccl.results import read_csv  # noqa: E402
from sccl.training import load_dataset  # noqa: E402

OFFLINE_DIR = ROOT / "data" / "offline"


def has_shd_files(folder: Path) -> bool:
    return (folder / MERGED_FILE).is_file() or ((folder / TRAIN_FILE).is_file() and (folder / TEST_FILE).is_file())


def resolve_data(data_dir: Path, offline_size: str, seed: int) -> Path:
    """The merged file to use: real SHD from data_dir when present, else the embedded synthetic set."""
    if has_shd_files(data_dir):
        print(f"[data] SHD files found in {data_dir}")
        return ensure_merged(data_dir)
    from sccl.offline import generate_dataset

    print(f"[data] no SHD files in {data_dir}: using the embedded synthetic SHD-format dataset "
          f"({offline_size}) in {OFFLINE_DIR} -- synthetic data, not SHD")
    if not has_shd_files(OFFLINE_DIR):
        t0 = time.perf_counter()
        generate_dataset(OFFLINE_DIR, size=offline_size, seed=seed)
        print(f"[data] generated in {time.perf_counter() - t0:.1f} s")
    return ensure_merged(OFFLINE_DIR)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="~/data/hdspikes", help="folder with real SHD files (default: %(default)s)")
    p.add_argument("--out-dir", default=str(ROOT / "results"), help="where runs go (default: results/)")
    p.add_argument("--offline-size", default="demo", choices=["tiny", "demo", "shd"],
                   help="size of the embedded dataset when no SHD files are found (default: %(default)s)")
    p.add_argument("--speaker", type=int, default=3, help="speaker held out in pretraining (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=30, help="pretraining epochs, quick configuration (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    merged = resolve_data(Path(args.data_dir).expanduser(), args.offline_size, args.seed)
    ds = load_dataset(merged)
    label = "synthetic SHD-format data, not SHD" if ds.synthetic else "SHD"
    print(f"[pretrain] speaker {args.speaker} held out, {args.epochs} epochs ({label})")
    folder = pretrain(PretrainConfig("speaker", args.speaker, epochs=args.epochs, seed=args.seed, device=args.device),
                      ds, Path(args.out_dir) / "runs")
    rows = read_csv(folder / "epochs.csv")
    last = rows[-1]
    print(f"[result] pretraining test accuracy {float(last['test_acc']):.3f} after {last['epoch']} epochs "
          f"(chance 0.05) on {label}; run folder {folder}")
    print(f"[done] {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    sys.exit(run_cli(main))
