"""Merge a dataset's official files into one: shd_train.h5 + shd_test.h5 -> shd_merged.h5, or (--dataset ssc)
ssc_train.h5 + ssc_valid.h5 + ssc_test.h5 -> ssc_merged.h5 (train samples first, then valid, then test).

    python heidelberg_unite_datasets.py [--data-dir ~/data/hdspikes] [--download] [--force]
    python heidelberg_unite_datasets.py --dataset ssc --data-dir ~/data/ssc --download
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from sccl.core.entry import run_cli
from sccl.core.errors import DataError
from sccl.data.datasets import PARTS, SOURCE_CODES, merged_file
from sccl.data.hdf5 import load_shd_tables
from sccl.data.merge import merge_folder, no_data_message, part_paths


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(PARTS), default="shd",
                   help="shd: Spiking Heidelberg Digits; ssc: Spiking Speech Commands (default: %(default)s)")
    p.add_argument("--data-dir", default="~/data/hdspikes",
                   help="folder with the dataset's files; one dataset per folder (default: %(default)s)")
    p.add_argument("--download", action="store_true",
                   help="download and checksum-verify the dataset's .h5.gz files first when the .h5 files are missing")
    p.add_argument("--force", action="store_true", help="overwrite an existing merged file (shd_merged.h5 / "
                   "ssc_merged.h5)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data_dir = Path(args.data_dir).expanduser()
    if (data_dir / merged_file(args.dataset)).exists() and not args.force:
        raise DataError(f"{data_dir / merged_file(args.dataset)} already exists; pass --force to overwrite it")
    if args.download:
        from sccl.data.download import ensure_files

        ensure_files(data_dir, args.dataset)
    elif not all(p.is_file() for p in part_paths(data_dir, args.dataset).values()):
        raise DataError(no_data_message(data_dir, args.dataset))
    out = merge_folder(data_dir, args.dataset, force=args.force)
    merged = load_shd_tables(out)  # no spikes: memory stays small at SSC's size
    parts = " + ".join(f"{int((merged.source == SOURCE_CODES[p]).sum())} {p}" for p in PARTS[args.dataset])
    print(f"wrote {out}: {len(merged)} samples ({parts})")
    speakers, counts = np.unique(merged.speakers, return_counts=True)
    if len(speakers) <= 50:
        print("samples per speaker: " + ", ".join(f"{s}: {c}" for s, c in zip(speakers, counts)))
    else:
        print(f"{len(speakers)} speakers, {counts.min()}-{counts.max()} samples each")


if __name__ == "__main__":
    sys.exit(run_cli(main))
