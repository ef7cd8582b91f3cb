"""The result-block check compares numbers within seed bands on every machine, never masks them
(sccl/report/readme_check.py); the README stays short and every relative link of the README and docs/ resolves."""

import math
import re
from pathlib import Path

from sccl.report import build as report
from sccl.report.readme_check import STD_FLOOR, K, compare_blocks, parse_block, seeds_of


ROOT = Path(__file__).resolve().parents[1]

BLOCK = """<!-- numerics: {fp} -->
Sample-incremental (new speaker): accuracy (%) per strategy; data: synthetic SHD-format data, not SHD.

| strategy | depth | lr | n (seeds × speakers) | old before → after | new after | memory stored (B) | s / epoch |
|---|---|---|---|---|---|---|---|
| naive | – | 0.0002 | 3 × 1 | 61.08 ± 2.71 → 61.17 ± 4.12 | 83.33 ± 6.51 | 0 | 0.10 s |
| LR | 1 | 0.0002 | 3 × 1 | 61.08 ± 2.71 → 67.71 ± 2.70 | 83.33 ± 6.51 | 1,280,000 | 0.20 s |
"""


def block(fp="0123456789ab") -> str:
    return BLOCK.format(fp=fp)


def changed(old: str, new: str):
    return compare_blocks("sample_incremental", old, new)


def test_identical_blocks_pass_and_say_so():
    result = changed(block(), block())
    assert result.ok and result.summary() == ("block 'sample_incremental': identical (2 bare float(s) compared "
                                              "exactly; 2 timing or test-decision cell(s) not compared)")


def test_the_numerics_fingerprint_and_timings_are_information_only():
    result = changed(block(), block(fp="ba9876543210").replace("0.10 s", "3.52 s"))
    assert result.ok and "identical" in result.summary()


def test_a_change_within_the_band_passes_and_reports_its_size():
    # band of 83.33 ± 6.51 over 3 seeds: 2 * sqrt(2 * 6.51^2 / 3) + 0.01 = 10.64
    result = changed(block(), block().replace("83.33 ± 6.51 | 0 |", "90.00 ± 5.00 | 0 |"))
    se = math.sqrt((6.51 ** 2 + 5.00 ** 2) / 3)
    assert result.ok, result.failures
    assert f"largest |Δ| of a mean = {(90.00 - 83.33) / se:.2f} standard errors" in result.summary()


def test_every_accuracy_changed_to_99_99_fails():
    planted = re.sub(r"\d+\.\d\d ±", "99.99 ±", block())
    result = changed(block(), planted)
    assert not result.ok and len(result.failures) >= 4
    band = K * math.sqrt(2 * 2.71 ** 2 / 3) + 0.01
    assert any("row 1 (naive), column 'old before → after': README 61.08 ± 2.71, runs 99.99 ± 2.71: the mean moved "
               f"by 38.91, band ±{band:.4g}" in f for f in result.failures), result.failures


def test_a_mean_moved_by_five_standard_errors_fails():
    se = math.sqrt(2 * 2.70 ** 2 / 3)
    moved = f"{67.71 + 5 * se:.2f}"
    result = changed(block(), block().replace("67.71 ± 2.70", f"{moved} ± 2.70"))
    assert [f.split(": README")[1] for f in result.failures] == [
        f" 67.71 ± 2.70, runs {moved} ± 2.70: the mean moved by {5 * se:.4g}, band ±{K * se + 0.01:.4g} "
        f"({K:g} standard errors of n = 3 seeds + rounding)"]
    assert "table 1 (Sample-incremental (new speaker)" in result.failures[0] and "row 2 (LR)" in result.failures[0]


def test_a_std_outside_its_band_fails():
    limit = math.exp(K / math.sqrt(3 - 1))  # ln of a std of 3 seeds may move by K standard errors (K = 2: x4.11)
    table = "| method | n | old |\n|---|---|---|\n| naive | 3 × 1 | 50.00 ± {} |\n"
    for std, factor, inside in ((2.71, 0.95 * limit, True), (2.71, 1.1 * limit, False),
                                (40.00, 1 / (0.95 * limit), True), (40.00, 1 / (1.1 * limit), False)):
        new = f"{std * factor:.2f}"
        result = compare_blocks("x", table.format(f"{std:.2f}"), table.format(new))
        assert result.ok == inside, (new, result.failures)
        if not inside:
            ratio = max(float(new) / std, std / float(new))
            assert len(result.failures) == 1, result.failures
            assert f"the std changed by a factor of {ratio:.3g}, band: up to {limit:.3g}" in result.failures[0]


def test_a_zero_std_is_a_saturated_accuracy_not_a_change():
    """Stds below STD_FLOOR count as STD_FLOOR: 1.19 ± 2.06 (one seed at 3.57 %) against 0.00 ± 0.00 passes; a
    spread appearing from nothing, beyond the factor allowed, does not."""
    table = "| method | n | old |\n|---|---|---|\n| naive | 3 × 1 | {} |\n"
    limit = math.exp(K / math.sqrt(2))
    assert STD_FLOOR == 1.0 and limit > 2.06
    assert compare_blocks("x", table.format("1.19 ± 2.06"), table.format("0.00 ± 0.00")).ok
    grown = f"{1.2 * limit:.2f}"
    result = compare_blocks("x", table.format("50.00 ± 0.00"), table.format(f"50.00 ± {grown}"))
    assert len(result.failures) == 1 and f"the std changed by a factor of {float(grown):.3g}" in result.failures[0]


def test_integers_text_and_bare_floats_are_compared_exactly():
    for old, new in (("1,280,000", "1,280,001"),  # bytes
                     ("| 3 × 1 | 61.08 ± 2.71 → 61.17", "| 4 × 1 | 61.08 ± 2.71 → 61.17"),  # n
                     ("0.0002 | 3 × 1 | 61.08 ± 2.71 → 67.71", "0.0003 | 3 × 1 | 61.08 ± 2.71 → 67.71"),  # bare float
                     ("| naive |", "| naïve |"), ("per strategy;", "per method;"),  # text
                     ("83.33 ± 6.51 | 0 |", "83.33 | 0 |")):  # a std lost
        assert block().count(old) == 1
        result = changed(block(), block().replace(old, new))
        assert len(result.failures) == 1, (old, result.failures)
    assert "README '1,280,000', runs '1,280,001' (compared exactly)" in changed(
        block(), block().replace("1,280,000", "1,280,001")).failures[0]


def test_a_paired_test_decision_follows_its_delta_and_is_not_compared_alone():
    table = ("| scenario | n LR / n cLR | Δ (pp) | Δ ≠ 0 (paired t, 5 %) |\n|---|---|---|---|\n"
             "| sample_incremental | 3 × 1 / 3 × 1 | {} | {} |\n")
    result = compare_blocks("compression", table.format("-14.32 ± 5.10", "yes"), table.format("-9.80 ± 5.90", "no"))
    assert result.ok and "1 timing or test-decision cell(s) not compared" in result.summary()
    result = compare_blocks("compression", table.format("-14.32 ± 5.10", "yes"), table.format("30.00 ± 4.00", "no"))
    assert len(result.failures) == 1 and "column 'Δ (pp)'" in result.failures[0]


def test_a_row_added_or_removed_fails():
    lines = block().splitlines(keepends=True)
    extra = ("| rehearsal | – | 0.0002 | 3 × 1 | 61.08 ± 2.71 → 68.75 ± 1.50 | 80.21 ± 1.80 | 17,920,000 | "
             "0.38 s |\n")
    for old, new, says in ((block(), block() + extra, "only from the runs: rehearsal"),
                           (block(), "".join(lines[:-1]), "only in the README: LR")):
        result = changed(old, new)
        assert len(result.failures) == 1 and says in result.failures[0], result.failures


def test_a_table_without_an_n_cannot_size_its_bands():
    result = compare_blocks("x", "| a | 61.2 ± 1.5 |\n", "| a | 61.3 ± 1.5 |\n")
    assert not result.ok and "no n of at least 2 seeds" in result.failures[0]


def test_seeds_of_an_n_cell():
    assert [seeds_of(c) for c in ("3", "3 × 1", "3 × 2 / 2 × 1", "–", "3 s")] == [3, 3, 2, None, None]


def _doc_blocks() -> dict[str, str]:
    """Every generated block of the files that hold them (report.BLOCK_FILES: docs/RESULTS.md)."""
    blocks = {}
    for name in report.BLOCK_FILES:
        text = (ROOT / name).read_text()
        blocks.update(re.findall(r"<!-- results:([\w.-]+) -->\n(.*?)<!-- /results:\1 -->", text, re.S))
    return blocks


def test_every_block_is_in_the_block_files():
    assert set(_doc_blocks()) == set(report.README_BLOCKS)


def test_the_first_doc_block_passes_against_itself_and_fails_with_one_planted_change():
    name, text = next(iter(_doc_blocks().items()))
    assert parse_block(text).tables, f"the first block '{name}' of {report.BLOCK_FILES} has no table"
    same = compare_blocks(name, text, text)
    assert same.ok and ": identical" in same.summary()
    first = re.search(r"(\d+\.\d+) ± (\d+\.\d+)", text)
    mean, std = float(first.group(1)), float(first.group(2))
    moved = f"{mean + 5 * std:.2f} ± {first.group(2)}"  # 5 stds: 5 * sqrt(3/2) standard errors of 3 seeds
    result = compare_blocks(name, text, text.replace(first.group(0), moved, 1))
    assert len(result.failures) == 1 and f"runs {moved}" in result.failures[0]


def test_the_command_fails_on_a_block_from_another_machine_with_changed_numbers(tmp_path, capsys):
    """The check run by .ci/run (update_readme with check=True, per file): nothing is masked when the fingerprints
    differ."""
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n<!-- results:sample_incremental -->\n\n{block()}\n<!-- /results:sample_incremental -->\n")
    generated = {"sample_incremental": block(fp=report.fingerprint())}
    assert report.update_readme(readme, generated, check=True) == []
    out = capsys.readouterr().out
    assert "block 'sample_incremental': identical" in out and "made with float32 numerics 0123456789ab" in out
    generated = {"sample_incremental": re.sub(r"\d+\.\d\d ±", "99.99 ±", generated["sample_incremental"])}
    assert report.update_readme(readme, generated, check=True) == ["sample_incremental"]
    out = capsys.readouterr().out
    assert "outside the bands" in out and "runs 99.99 ± 2.71" in out


def test_on_the_machine_that_made_the_block_every_number_must_be_identical():
    """Same float32 numerics (the fingerprint the block records): the same runs, so a change inside the seed band
    fails there; on another machine the same change is within its band."""
    old = ("<!-- numerics: aaaaaaaaaaaa -->\n| method | n | ACC |\n|---|---|---|\n| LR | 3 | 77.63 ± 8.71 |\n")
    new = old.replace("77.63", "78.63")
    assert not compare_blocks("b", old, new, here="aaaaaaaaaaaa").ok
    assert compare_blocks("b", old, new, here="bbbbbbbbbbbb").ok
    assert compare_blocks("b", old, old, here="aaaaaaaaaaaa").ok
    timing = old.replace("| ACC |\n|---|---|---|", "| ACC | s / epoch |\n|---|---|---|---|").replace(
        "8.71 |", "8.71 | 0.10 s |")
    assert compare_blocks("b", timing, timing.replace("0.10 s", "0.30 s"), here="aaaaaaaaaaaa").ok


# ----------------------------------------------------------------------------------------------
# the README and docs/: short, and every relative link resolves

_LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation (backticks included) dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # no headings inside code
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def test_the_readme_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move the detail into docs/ (at most 300)"


def test_every_relative_link_of_the_readme_and_docs_points_to_an_existing_file():
    broken, checked = [], 0
    for path in _markdown_files():
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
                continue
            file, _, anchor = target.partition("#")
            where = (path.parent / file).resolve() if file else path
            checked += 1
            if not where.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no file {where})")
            elif anchor and where.suffix == ".md" and anchor not in _anchors(where):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no heading #{anchor} in {where.name})")
    assert checked and not broken, "\n".join(broken)


def test_the_slug_of_a_heading_is_githubs():
    assert _slug("The model (`sccl/net/model.py`)") == "the-model-scclnetmodelpy"
    assert _slug("The tuned settings (`python -m sccl.cli.tune`)") == "the-tuned-settings-python--m-scclclitune"
