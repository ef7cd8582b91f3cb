"""The published datasets in the SHD layout and the files each one comes as.

    shd   Spiking Heidelberg Digits: shd_train.h5, shd_test.h5 (no validation file)
    ssc   Spiking Speech Commands:   ssc_train.h5, ssc_valid.h5, ssc_test.h5 (35 keywords)

Both are merged into one ``<name>_merged.h5`` whose ``extra/source`` records each sample's file by the codes of
:data:`SOURCE_CODES` (train 0 and test 1 for every dataset, so that an SHD merge reads as before; valid 2).
A data folder holds one dataset: :func:`detect` finds which from the files present.
"""

from __future__ import annotations

from pathlib import Path

from sccl.core.errors import DataError


#: the parts each dataset comes in, in the order a merge concatenates them
PARTS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}
LABELS = {"shd": "SHD", "ssc": "SSC"}
SOURCE_CODES = {"train": 0, "test": 1, "valid": 2}
SOURCE_NAMES = tuple(sorted(SOURCE_CODES, key=SOURCE_CODES.get))
DEFAULT = "shd"


def part_file(dataset: str, part: str) -> str:
    return f"{dataset}_{part}.h5"


def part_files(dataset: str) -> tuple[str, ...]:
    return tuple(part_file(dataset, part) for part in PARTS[dataset])


def merged_file(dataset: str) -> str:
    return f"{dataset}_merged.h5"


def dataset_of_name(file_name: str) -> str | None:
    """``'ssc'`` for ``ssc_valid.h5``, ``ssc_test.h5.gz`` or ``ssc_merged.h5``; None for a name of no dataset."""
    for dataset, parts in PARTS.items():
        if any(file_name.startswith(f"{dataset}_{p}.h5") for p in parts + ("merged",)):
            return dataset
    return None


def _present(data_dir: Path, dataset: str) -> bool:
    return (data_dir / merged_file(dataset)).is_file() or all((data_dir / f).is_file() for f in part_files(dataset))


def detect(data_dir: str | Path) -> str:
    """The dataset whose merged file or complete set of part files ``data_dir`` holds (SHD when none does: the
    messages then name SHD's files). A folder with two datasets is one clear error."""
    data_dir = Path(data_dir).expanduser()
    found = [d for d in PARTS if _present(data_dir, d)]
    if len(found) > 1:
        raise DataError(f"{data_dir} holds the files of {' and '.join(LABELS[d] for d in found)}: keep each dataset "
                        "in its own folder (pass that folder as --data-dir)")
    return found[0] if found else DEFAULT
