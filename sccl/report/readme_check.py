"""The README check: a committed result block (they live in docs/RESULTS.md, see
:data:`sccl.report.build.BLOCK_FILES`; "README" in the messages means that committed text) against the one the
runs give now, cell by cell, within bands.

A block's numbers come from short float32 runs, and float32 results depend on the CPU (:mod:`sccl.core.numerics`): on
another machine a run moves by about as much as another seed would move it. So a mean ± std cell is compared
within a band derived from the seeds' own spread, and every other cell exactly:

* **mean** m ± s over n seeds: ``|m_new - m_old| <= K * sqrt(s_old^2 / n + s_new^2 / n) + u``: K standard
  errors of the difference of two means of n seeds (K = 4, :data:`K`), plus u, one unit of the last printed
  digit (rounding);
* **std**: ``|ln(s_new / s_old)| <= K / sqrt(n - 1)``, each std first raised to :data:`STD_FLOOR` (1, a point:
  a saturated accuracy has std 0.00 on one machine and 2.06 on another when one seed flips a few samples): ln s
  of n values has a
  standard error of about 1 / sqrt(2 (n - 1)), so K standard errors of the difference of two. (The linear band
  ``K * max(s_old, s_new) / sqrt(2 (n - 1))`` is max(s_old, s_new) at K = 2, n = 3, never below
  ``|s_new - s_old|``: it could not fail on these 3-seed tables.) With 3 seeds a std may change by a factor of up
  to e^1.41 = 4.1;
* n is the number of seeds, the first factor of the row's n column ("3 × 1": 3 seeds × 1 held-out id; the
  smaller of "3 × 1 / 3 × 1"): the std is over per-seed means (:data:`sccl.report.build.METRIC_DEFINITIONS`);
* timing cells (a number followed by " s": seconds per epoch) are the machine's and are not compared; nor are
  test decisions (a column whose header names a paired t-test: yes / no): they follow from the Δ ± std cell
  before them, which is compared, and flip with it inside its band;
* everything else is compared exactly: text (headings, captions, settings), integers (counts, bytes, n, ids,
  epochs), and bare floats without a std (learning rates, KB, ratios), which are counted in the result line.

On a machine with the float32 numerics fingerprint the block records (:mod:`sccl.core.numerics`: the same kernels),
the runs are the same and every number must be identical (timings aside): a changed number fails there whatever its
band. The bands are for the other machines; a fingerprint is never a reason to skip a number.

A row added or removed, a header or caption changed, a number that moved outside its band: each is one failure
line naming the block, table, row, column, both values and the band. Nothing is masked, on any machine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sccl.report.methods import TIMING_UNIT


#: the band's half-width in standard errors. On another CPU a run behaves like a fresh seed, and a block holds
#: hundreds of means, so two standard errors fail by chance: the quick configuration's first three blocks rerun with
#: ATEN_CPU_CAPABILITY=avx2 (same code) gave 24 cells outside 2, 11 outside 3 and none outside 4 (largest 3.75)
K = 4.0
#: stds below this are raised to it before their ratio is taken (the tables' units: % or pp)
STD_FLOOR = 1.0
_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_PAIR = re.compile(rf"({_NUM}) ± ({_NUM})")
_TIMING = re.compile(rf"^{_NUM}{re.escape(TIMING_UNIT)}$")
_BARE_FLOAT = re.compile(r"^-?\d[\d,]*\.\d+\D{0,1}$")
_NUMERICS = re.compile(r"^<!-- numerics: (\w+) -->$")
_N_HEADER = re.compile(r"^(n\b|seeds\b)")
_DERIVED_HEADER = re.compile(r"paired t\b")  # a test's decision on the cell before it
_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+$")


@dataclass
class Table:
    """One markdown table of a block: where it is (the caption before it), its header and rows (cells)."""

    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Parsed:
    text: list[str]  # every non-table line, tables as a placeholder (so their places compare too)
    tables: list[Table]
    numerics: str | None  # the fingerprint recorded in the block (information only)


@dataclass
class Result:
    """The comparison of one block: ``failures`` (lines), ``largest`` |Δ| of a mean in standard errors, counts."""

    name: str
    failures: list[str] = field(default_factory=list)
    largest: float = 0.0
    changed: int = 0  # cells not identical (within bands when no failure)
    bare: int = 0  # bare floats compared exactly
    timings: int = 0  # timing and test-decision cells not compared
    exact: bool = False  # the block was made with this machine's float32 numerics: its numbers must be identical

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line: identical, within bands, or the number of failures."""
        notes = [f"{self.bare} bare float(s) compared exactly"] if self.bare else []
        notes += [f"{self.timings} timing or test-decision cell(s) not compared"] if self.timings else []
        tail = f" ({'; '.join(notes)})" if notes else ""
        if self.failures:
            return f"block '{self.name}': {len(self.failures)} difference(s) outside the bands or not numbers{tail}"
        if not self.changed:
            same = " (this machine's float32 numerics: compared exactly)" if self.exact else ""
            return f"block '{self.name}': identical{same}{tail}"
        return (f"block '{self.name}': within bands ({self.changed} cell(s) differ; largest |Δ| of a mean = "
                f"{self.largest:.2f} standard errors, K = {K:g}){tail}")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_block(text: str) -> Parsed:
    """Split a block into its text lines and tables (a table: consecutive lines starting with '|', the first its
    header when the second is a separator)."""
    lines = [ln.rstrip() for ln in text.strip("\n").splitlines()]
    out, tables, numerics, caption, i = [], [], None, "", 0
    while i < len(lines):
        line = lines[i]
        m = _NUMERICS.match(line.strip())
        if m:
            numerics, i = m.group(1), i + 1
            continue
        if not line.lstrip().startswith("|"):
            out.append(line)
            caption = line.strip() or caption
            i += 1
            continue
        end = i
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        rows = [_cells(ln) for ln in lines[i:end] if not _SEPARATOR.match(ln.strip())]
        has_header = end - i > 1 and _SEPARATOR.match(lines[i + 1].strip())
        header, rows = (rows[0], rows[1:]) if has_header else ([], rows)
        title = caption.strip("*")[:60] + ("…" if len(caption) > 60 else "")
        tables.append(Table(title, header, rows))
        out.append(f"<table {len(tables)}>")
        i = end
    return Parsed(out, tables, numerics)


def seeds_of(cell: str) -> int | None:
    """The number of seeds an n cell means: "3" -> 3, "3 × 1" -> 3, "3 × 1 / 2 × 1" -> 2 (None: not an n)."""
    parts = [p.strip().split("×")[0].strip() for p in cell.split("/")]
    return min(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else None


def _value(text: str) -> float:
    return float(text.replace(",", ""))


def _unit(*texts: str) -> float:
    """One unit of the last printed digit of the coarser of the numbers."""
    return max(10.0 ** -len(t.split(".")[1]) if "." in t else 1.0 for t in texts)


def _pairs(old: str, new: str, n: int | None, where: str, result: Result) -> None:
    """Compare two cells holding the same text around one or more mean ± std pairs."""
    po, pn = _PAIR.findall(old), _PAIR.findall(new)
    if _PAIR.sub("#", old) != _PAIR.sub("#", new) or len(po) != len(pn):
        result.failures.append(f"{where}: README '{old}', runs '{new}' (not the same form)")
        return
    if n is None or n < 2:
        result.failures.append(f"{where}: README '{old}', runs '{new}': no n of at least 2 seeds in the row to "
                               "size the band")
        return
    if result.exact:
        result.failures.append(f"{where}: README '{old}', runs '{new}' (compared exactly: the block was made with "
                               "this machine's float32 numerics, so a rerun gives the same numbers)")
        return
    for (mo, so), (mn, sn) in zip(po, pn):
        m_old, s_old, m_new, s_new = map(_value, (mo, so, mn, sn))
        se = math.sqrt((s_old ** 2 + s_new ** 2) / n)
        mean_band = K * se + _unit(mo, mn)
        std_band = K / math.sqrt(n - 1)
        dm, ds = abs(m_new - m_old), abs(math.log(max(s_new, STD_FLOOR) / max(s_old, STD_FLOOR)))
        if se > 0:
            result.largest = max(result.largest, dm / se)
        if dm > mean_band + 1e-9:
            result.failures.append(f"{where}: README {mo} ± {so}, runs {mn} ± {sn}: the mean moved by {dm:.4g}, "
                                   f"band ±{mean_band:.4g} ({K:g} standard errors of n = {n} seeds + rounding)")
        if ds > std_band + 1e-9:
            result.failures.append(f"{where}: README {mo} ± {so}, runs {mn} ± {sn}: the std changed by a factor of "
                                   f"{math.exp(ds):.3g}, band: up to {math.exp(std_band):.3g} ({K:g} standard errors "
                                   f"of ln std over n = {n} seeds, stds below {STD_FLOOR:g} raised to it)")


def _compare_table(name: str, index: int, old: Table, new: Table, result: Result) -> None:
    where = f"block '{name}', table {index}" + (f" ({old.title})" if old.title else "")
    if old.header != new.header:
        result.failures.append(f"{where}: header README '{' | '.join(old.header)}', runs '{' | '.join(new.header)}'")
        return
    if len(old.rows) != len(new.rows):
        gone = [r[0] for r in old.rows if r[0] not in {x[0] for x in new.rows}]
        came = [r[0] for r in new.rows if r[0] not in {x[0] for x in old.rows}]
        result.failures.append(f"{where}: {len(old.rows)} rows in the README, {len(new.rows)} from the runs"
                               + (f"; only in the README: {', '.join(gone)}" if gone else "")
                               + (f"; only from the runs: {', '.join(came)}" if came else ""))
        return
    n_cols = [j for j, h in enumerate(old.header) if _N_HEADER.match(h)]
    for r, (ro, rn) in enumerate(zip(old.rows, new.rows), start=1):
        if len(ro) != len(rn):
            result.failures.append(f"{where}, row {r} ({ro[0]}): {len(ro)} cells in the README, {len(rn)} from the "
                                   "runs")
            continue
        seeds = [s for j in n_cols for s in (seeds_of(ro[j]), seeds_of(rn[j])) if s is not None]
        n = min(seeds) if seeds else None
        for j, (a, b) in enumerate(zip(ro, rn)):
            column = old.header[j] if j < len(old.header) else f"column {j + 1}"
            cell = f"{where}, row {r} ({ro[0]}), column '{column}'"
            if (_TIMING.match(a) and _TIMING.match(b)) or _DERIVED_HEADER.search(column):
                result.timings += 1
                continue
            if "±" in a or "±" in b:
                if a != b:
                    result.changed += 1
                    _pairs(a, b, n, cell, result)
                continue
            result.bare += bool(_BARE_FLOAT.match(a))
            if a != b:
                result.changed += 1
                result.failures.append(f"{cell}: README '{a}', runs '{b}' (compared exactly)")


def compare_blocks(name: str, old: str, new: str, here: str | None = None) -> Result:
    """Compare the README's block ``old`` with the generated ``new`` (see the module docstring); ``here``: this
    machine's float32 numerics fingerprint: when the block records the same one, every number must be identical
    (timings aside), since the same kernels give the same runs."""
    result = Result(name, exact=here is not None and parse_block(old).numerics == here)
    a, b = parse_block(old), parse_block(new)
    if a.text != b.text:
        for k, (x, y) in enumerate(zip(a.text + [""] * len(b.text), b.text + [""] * len(a.text))):
            if x != y:
                result.failures.append(f"block '{name}': text line {k + 1} differs: README '{x[:100]}', "
                                       f"runs '{y[:100]}'")
                break
    for index, (ta, tb) in enumerate(zip(a.tables, b.tables), start=1):
        _compare_table(name, index, ta, tb, result)
    return result


def numerics_note(old: str, here: str) -> str | None:
    """A line of information when the block was made with other float32 numerics than this machine's."""
    recorded = parse_block(old).numerics
    if recorded and recorded != here:
        return (f"(made with float32 numerics {recorded}, here {here}: other kernels, so numbers may differ within "
                "their bands)")
    return None
