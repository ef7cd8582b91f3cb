"""Merge shd_train.h5 + shd_test.h5 into shd_merged.h5 (train samples first, then test).

    python heidelberg_unite_datasets.py [--data-dir ~/data/hdspikes] [--download] [--force]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from sccl.cli import run_cli
from sccl.data import load_shd
from sccl.errors import DataError
from sccl.merge import MERGED_FILE, TEST_FILE, TRAIN_FILE, merge_files, no_data_message


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="~/data/hdspikes", help="folder with the SHD files (default: %(default)s)")
    p.add_argument("--download", action="store_true",
                   help="download and checksum-verify shd_{train,test}.h5.gz first when the .h5 files are missing")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {MERGED_FILE}")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data_dir = Path(args.data_dir).expanduser()
    train, test = data_dir / TRAIN_FILE, data_dir / TEST_FILE
    if args.download:
        from sccl.download import ensure_shd_files

        train, test = ensure_shd_files(data_dir)
    elif not train.is_file() or not test.is_file():
        raise DataError(no_data_message(data_dir))
    out = merge_files(train, test, data_dir / MERGED_FILE, force=args.force)
    merged = load_shd(out)
    print(f"wrote {out}: {len(merged)} samples ({int((merged.source == 0).sum())} train + "
          f"{int((merged.source == 1).sum())} test)")
    speakers, counts = np.unique(merged.speakers, return_counts=True)
    print("samples per speaker: " + ", ".join(f"{s}: {c}" for s, c in zip(speakers, counts)))


if __name__ == "__main__":
    sys.exit(run_cli(main))
