"""Class and speaker ids for :mod:`sccl.audio.convert`: from a map the user gives, or from the names present.

``--classes`` takes an ordered, comma-separated list of class names (id = position), a CSV file with columns
``label,id`` (explicit ids: unique integers >= 0, gaps allowed) or ``shd-digits`` (SHD's 20 keywords in SHD's
order: English ``zero``..``nine`` are 0-9, German ``null``..``neun`` 10-19). With a map, ids do not depend on
which classes a folder holds: a mapped class without recordings simply has no samples, and a label the map
lacks is an error. Without one, ids follow the sorted names present (numerically when all are numbers), so two
folders with different classes number them differently. ``--speakers-order`` does the same for speakers (a
comma-separated list only).

Every problem is one :class:`~sccl.core.errors.ConfigError` line.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sccl.audio.files import _sorted_names
from sccl.core.errors import ConfigError
from sccl.data.hdf5 import ENGLISH_WORDS, GERMAN_WORDS, KEYS, MAX_ID


SHD_DIGITS = "shd-digits"  # --classes: SHD's own keywords, in SHD's order
SHOWN = 12  # names listed at most in an error line


@dataclass(frozen=True)
class IdMap:
    """Names -> ids, and the name stored for each id 0..max (``names[i]``: id i's name; gaps get ``class <i>``)."""

    ids: dict[str, int]
    names: tuple[str, ...]
    source: str  # how the ids were chosen, for the files' attributes and the messages

    def id_list(self) -> str:
        """``0=zero, 1=one, ...``: the mapping used, one line."""
        return ", ".join(f"{i}={name}" for name, i in sorted(self.ids.items(), key=lambda item: item[1]))


def _from_positions(names: list[str], source: str) -> IdMap:
    return IdMap({name: i for i, name in enumerate(names)}, tuple(names), source)


def _shown(names) -> str:
    names = list(names)
    more = f", ... ({len(names)} in all)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def parse_name_list(flag: str, text: str) -> list[str]:
    """``a,b,c`` -> the names in order; one error line for an empty or repeated name."""
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise ConfigError(f"{flag} {text!r}: empty name in the comma-separated list")
    repeated = [name for name, n in Counter(names).items() if n > 1]
    if repeated:
        raise ConfigError(f"{flag}: '{repeated[0]}' is listed twice (each name gets one id, its position)")
    if len(names) > MAX_ID + 1:
        raise ConfigError(f"{flag}: {len(names)} names, at most {MAX_ID + 1} (ids are stored as uint16)")
    return names


def _parse_id(table: Path, line: int, text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"--classes {table}, line {line}: id '{text}' is not an integer >= 0")
    value = int(text)
    if value > MAX_ID:
        raise ConfigError(f"--classes {table}, line {line}: id {value} is above {MAX_ID} (ids are stored as uint16)")
    return value


def read_class_table(table: Path) -> IdMap:
    """A CSV file with columns ``label,id``; ids unique integers >= 0, gaps allowed."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise ConfigError(f"--classes {table}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--classes {table}: cannot read the class table ({exc})") from None
    if not rows or not {"label", "id"} <= set(rows[0]):
        raise ConfigError(f"--classes {table}: the class table needs the columns label,id and at least one row")
    ids: dict[str, int] = {}
    first_line_of_id: dict[int, int] = {}
    for line, row in enumerate(rows, start=2):
        if row["label"] is None or row["id"] is None:
            raise ConfigError(f"--classes {table}, line {line}: needs both a label and an id")
        label = row["label"].strip()
        if not label:
            raise ConfigError(f"--classes {table}, line {line}: empty label")
        class_id = _parse_id(table, line, row["id"])
        if label in ids:
            raise ConfigError(f"--classes {table}, line {line}: label '{label}' is listed twice")
        if class_id in first_line_of_id:
            raise ConfigError(f"--classes {table}, line {line}: id {class_id} is already given to another label "
                              f"(line {first_line_of_id[class_id]}); ids must be unique")
        ids[label] = class_id
        first_line_of_id[class_id] = line
    by_id = {i: name for name, i in ids.items()}
    names = tuple(by_id.get(i, f"class {i}") for i in range(max(by_id) + 1))
    return IdMap(ids, names, f"--classes {table}")


def class_map(spec: str | None, labels) -> IdMap:
    """The class ids: from ``--classes`` (``spec``) when given, else from the sorted names in ``labels``."""
    if spec is None:
        return _from_positions(_sorted_names(labels), "sorted names of the classes present")
    if spec == SHD_DIGITS:
        # matched against the spoken words; stored under SHD's key names ("english zero", ...)
        return IdMap({word: i for i, word in enumerate(ENGLISH_WORDS + GERMAN_WORDS)}, KEYS, f"--classes {spec}")
    if spec.lower().endswith(".csv"):
        return read_class_table(Path(spec))
    if "," not in spec and Path(spec).is_file():
        raise ConfigError(f"--classes {spec}: a class table must be a .csv file with columns label,id")
    return _from_positions(parse_name_list("--classes", spec), f"--classes {spec}")


def speaker_map(order: str | None, speakers) -> IdMap:
    """The speaker ids: from ``--speakers-order`` when given, else from the sorted names in ``speakers``."""
    if order is None:
        return _from_positions(_sorted_names(speakers), "sorted names of the speakers present")
    return _from_positions(parse_name_list("--speakers-order", order), f"--speakers-order {order}")


def check_covered(what: str, flag: str, id_map: IdMap, found: list[tuple[str, Path]]) -> None:
    """One error line naming the labels (or speakers) that the map lacks; ``found``: (name, recording) pairs."""
    missing = [name for name in _sorted_names(name for name, _ in found) if name not in id_map.ids]
    if not missing:
        return
    example = next(path for name, path in found if name == missing[0]).name
    many = len(missing) > 1
    raise ConfigError(f"{flag}: {what}{'s' if many else ''} {_shown(repr(m) for m in missing)} of the recordings "
                      f"{'are' if many else 'is'} not in the map (e.g. {example}); the map has {_shown(id_map.ids)}: "
                      f"add {'them' if many else 'it'} or leave those recordings out")


def present_in_id_order(id_map: IdMap, names) -> list[str]:
    """The names present, in the order of their ids."""
    return sorted(set(names), key=id_map.ids.__getitem__)
