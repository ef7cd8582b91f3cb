"""Protocol splits: disjoint, complete, held-out data absent from pretraining, seeded, saved as npz."""

import numpy as np
import pytest

from sccl.core.errors import ConfigError, DataError
from sccl.data.splits import Split, make_batches, make_split


N = 2000
RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 20, N)
SPEAKERS = RNG.integers(0, 12, N)
SOURCE = (SPEAKERS == 4) | (SPEAKERS == 5) | (RNG.random(N) < 0.05)


def _check_partition(split, members_of):
    seen = np.concatenate(list(split.sets.values()))
    assert len(seen) == len(np.unique(seen)), "a sample is in two sets"
    for name, idx in split.sets.items():
        assert set(idx) <= set(members_of(name)), name


@pytest.mark.parametrize("kind", ["paper", "official"])
def test_speaker_split(kind):
    s = make_split("sample_incremental", 3, LABELS, SPEAKERS, SOURCE, kind=kind, seed=1)
    pre = np.r_[s["pretrain_train"], s["pretrain_test"]]
    new = np.r_[s["new_train"], s["new_test"]]
    assert not (SPEAKERS[pre] == 3).any() and (SPEAKERS[new] == 3).all()
    np.testing.assert_array_equal(np.sort(np.r_[pre, new]), np.arange(N))  # complete: nothing lost
    assert len(np.unique(np.r_[pre, new])) == N                               # disjoint
    if kind == "official":
        assert not SOURCE[s["pretrain_train"]].any() and SOURCE[s["pretrain_test"]].all()


def test_paper_fraction_is_a_clean_fifth_per_label():
    s = make_split("class_incremental", 7, LABELS, SPEAKERS, seed=0)
    for name in ("pretrain", "new"):
        tr, te = s[f"{name}_train"], s[f"{name}_test"]
        n = len(tr) + len(te)
        assert len(te) == int(np.floor(n / 5 + 0.5))
        for label in np.unique(LABELS[np.r_[tr, te]]):
            n_label = (LABELS[np.r_[tr, te]] == label).sum()
            assert (LABELS[te] == label).sum() in (n_label // 5, -(-n_label // 5))
    assert (LABELS[s["new_train"]] == 7).all() and not (LABELS[s["pretrain_train"]] == 7).any()
    assert not (LABELS[s["pretrain_test"]] == 7).any()


def test_small_group_with_one_sample_per_label_still_gets_a_fifth():
    labels, speakers = np.r_[np.arange(20), np.arange(20)], np.r_[np.full(20, 3), np.full(20, 1)]
    s = make_split("sample_incremental", 3, labels, speakers, seed=0)
    assert len(s["new_test"]) == 4 and len(s["new_train"]) == 16
    assert len(np.unique(labels[s["new_test"]])) == 4


def test_progressive_split_sets():
    s = make_split("progressive", None, LABELS, SPEAKERS, seed=0)
    assert s.new_groups == tuple(range(10, 20))
    assert (LABELS[np.r_[s["pretrain_train"], s["pretrain_test"]]] < 10).all()
    for c in range(10, 20):
        assert (LABELS[s[f"new_train_{c}"]] == c).all() and (LABELS[s[f"new_test_{c}"]] == c).all()
    seen = np.concatenate(list(s.sets.values()))
    np.testing.assert_array_equal(np.sort(seen), np.arange(N))


def test_seeding():
    a = make_split("sample_incremental", 2, LABELS, SPEAKERS, seed=5)
    b = make_split("sample_incremental", 2, LABELS, SPEAKERS, seed=5)
    c = make_split("sample_incremental", 2, LABELS, SPEAKERS, seed=6)
    for k in a.sets:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["pretrain_train"], c["pretrain_train"])
    assert set(a["new_test"]) != set(c["new_test"])


def test_save_load_round_trip_without_pickles(tmp_path):
    s = make_split("progressive", None, LABELS, SPEAKERS, seed=3)
    s.save(tmp_path / "split.npz")
    with np.load(tmp_path / "split.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = Split.load(tmp_path / "split.npz")
    assert (back.scenario, back.kind, back.held_out, back.seed) == ("progressive", "paper", None, 3)
    for k in s.sets:
        np.testing.assert_array_equal(back[k], s[k])
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(DataError):
        Split.load(tmp_path / "bad.npz")


def test_errors():
    with pytest.raises(ConfigError, match="speaker must be in 0..11"):
        make_split("sample_incremental", 12, LABELS, SPEAKERS)
    with pytest.raises(ConfigError, match="class must be in 0..19"):
        make_split("class_incremental", -1, LABELS, SPEAKERS)
    with pytest.raises(ConfigError, match="speaker 3 has no samples"):
        make_split("sample_incremental", 3, LABELS[SPEAKERS != 3], SPEAKERS[SPEAKERS != 3])
    with pytest.raises(ConfigError, match="speakers 4 and 5 are only in the official test file"):
        make_split("sample_incremental", 4, LABELS, SPEAKERS, SOURCE, kind="official")
    with pytest.raises(ConfigError, match="needs a merged file"):
        make_split("sample_incremental", 1, LABELS, SPEAKERS, None, kind="official")


def test_batches_drop_last_or_keep():
    idx = np.arange(130)
    b = make_batches(idx, 64)
    assert [len(x) for x in b] == [64, 64]
    assert [len(x) for x in make_batches(idx, 64, drop_last=False)] == [64, 64, 2]
    np.testing.assert_array_equal(np.concatenate(make_batches(idx, 64, drop_last=False)), idx)
