"""Shared fixtures: tiny SHD-layout files written by the tests themselves."""

import numpy as np
import pytest

from sccl.data import SHDData, write_shd


def random_shd(n: int, seed: int = 0, speakers=None, labels=None, max_time: float = 1.3) -> SHDData:
    """n samples of random spikes; every speaker/label combination cycles unless given."""
    rng = np.random.default_rng(seed)
    times, units = np.empty(n, object), np.empty(n, object)
    for i in range(n):
        k = int(rng.integers(5, 60))
        times[i] = np.sort(rng.uniform(0, max_time, k)).astype(np.float16)
        units[i] = rng.integers(0, 700, k).astype(np.uint16)
    labels = np.arange(n) % 20 if labels is None else np.asarray(labels)
    speakers = (np.arange(n) // 20) % 12 if speakers is None else np.asarray(speakers)
    meta = {"gender": np.array([b"female", b"male"] * 6), "age": np.arange(20, 32, dtype=np.uint16),
            "body_height": np.linspace(1.6, 1.9, 12)}
    return SHDData(times, units, labels, speakers, meta=meta)


@pytest.fixture
def shd_pair(tmp_path):
    """(train_path, test_path, train_data, test_data) of a tiny official-like pair."""
    train = random_shd(240, seed=1)
    test = random_shd(60, seed=2, speakers=np.r_[np.full(40, 4), np.arange(20) % 12])
    write_shd(tmp_path / "shd_train.h5", train)
    write_shd(tmp_path / "shd_test.h5", test)
    return tmp_path / "shd_train.h5", tmp_path / "shd_test.h5", train, test


@pytest.fixture(scope="session")
def embedded_tiny(tmp_path_factory):
    """The tiny embedded dataset, generated and loaded once per session; tests only read it (their runs go to
    their own folders)."""
    from sccl.merge import ensure_merged
    from sccl.offline import generate_dataset
    from sccl.training import load_dataset

    root = tmp_path_factory.mktemp("embedded_tiny")
    generate_dataset(root, size="tiny", seed=0)
    return load_dataset(ensure_merged(root, quiet=True))
