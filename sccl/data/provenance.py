"""What the data is, named honestly: "SHD" (or "SSC") only for the official files, the embedded set as synthetic, anything
else by its own name.

The official files are recognised by their checksums: :mod:`sccl.data.download` verifies each ``.h5.gz`` against the
official ``md5sums.txt`` and records the SHA-256 of the unpacked ``.h5`` in ``<data dir>/sccl-verified.json``;
:data:`sccl.core.defaults.OFFICIAL_SHD_SHA256` may list known values too. A merge hashes its two sources once and
records them (name, SHA-256, official or not) in the merged file's attributes, so reading the label later costs
nothing. A file merged before this record existed is named by its own name, not "SHD": merge it again
(``--force``) to have it recognised.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from sccl.core.defaults import OFFICIAL_SHD_SHA256
from sccl.core.disk import atomic_write_bytes
from sccl.data.datasets import LABELS, dataset_of_name
from sccl.data.hdf5 import file_sha256


SHD_LABEL = "SHD"
SYNTHETIC_LABEL = "synthetic SHD-format data, not SHD"
LAYOUT_PREFIX = "SHD-layout data: "
RECORD_FILE = "sccl-verified.json"
OFFICIAL_URL = "https://zenkelab.org/datasets/"
SOURCES_ATTR = "sources"  # merged files: JSON list of {"name", "sha256", "official"}


def read_record(folder: Path) -> dict:
    """``{file name: {"sha256", "gz_md5", "url"}}`` of the files a download verified in ``folder`` ({} if none)."""
    try:
        record = json.loads((Path(folder) / RECORD_FILE).read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def write_record(folder: Path, name: str, sha256: str, gz_md5: str, url: str) -> None:
    """Add one verified file to the folder's record (best effort: a read-only folder only loses the label)."""

    record = read_record(folder)
    record[name] = {"sha256": sha256, "gz_md5": gz_md5, "url": url}
    try:
        atomic_write_bytes(Path(folder) / RECORD_FILE, json.dumps(record, indent=1).encode(), what=RECORD_FILE)
    except Exception:  # noqa: BLE001 - the record is optional
        pass


def is_official(path: Path, sha256: str) -> bool:
    """The file's checksum is a known official one, or a download verified it against the official server."""
    if sha256 in OFFICIAL_SHD_SHA256.values():
        return True
    entry = read_record(Path(path).parent).get(Path(path).name, {})
    return entry.get("sha256") == sha256 and entry.get("url") == OFFICIAL_URL


def source_record(paths: list[Path]) -> str:
    """The merged file's ``sources`` attribute: each source's name, SHA-256 and whether it is official."""

    out = []
    for p in paths:
        digest = file_sha256(p)
        out.append({"name": Path(p).name, "sha256": digest, "official": is_official(p, digest)})
    return json.dumps(out)


def data_label(attrs: dict, path: Path) -> str:
    """"SHD" or "SSC" (official files, named by the dataset their file names belong to), the synthetic label, or "SHD-layout data: <name>" (the file's ``name`` or ``description``
    attribute, else its folder and file name)."""
    sources = attrs.get(SOURCES_ATTR)
    if sources is not None:
        try:
            entries = json.loads(sources if isinstance(sources, str) else bytes(sources).decode())
            if entries and all(e.get("official") for e in entries):
                return LABELS.get(dataset_of_name(str(entries[0].get("name", ""))), SHD_LABEL)
        except (ValueError, TypeError, AttributeError):
            pass
    description = _text(attrs.get("description"))
    if "synthetic" in description:
        return SYNTHETIC_LABEL
    name = _text(attrs.get("name")) or description.split(";")[0].strip()
    if name.startswith(LAYOUT_PREFIX):  # a description that already says so (sccl.audio.convert's): one prefix, not two
        name = name[len(LAYOUT_PREFIX):].strip()
    if not name:
        path = Path(path)
        name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return LAYOUT_PREFIX + name


def file_label(path: Path) -> str:
    """:func:`data_label` of a merged file, read from its attributes."""

    with h5py.File(path, "r") as f:
        return data_label(dict(f.attrs), Path(path))


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
