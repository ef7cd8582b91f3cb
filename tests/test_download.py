"""ensure_shd_files against a local HTTP server on 127.0.0.1 (never the real network)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import shutil
import socket
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from sccl.core.errors import DataError
from sccl.data import download
from sccl.data.download import DEFAULT_BASE_URL, ensure_shd_files, parse_md5sums
from sccl.data.hdf5 import SHDData, load_shd, write_shd
from sccl.data.provenance import RECORD_FILE


NAMES = ("shd_train", "shd_test")


def _sample_data(seed: int, n: int) -> SHDData:
    rng = np.random.default_rng(seed)
    times = np.empty(n, dtype=object)
    units = np.empty(n, dtype=object)
    for i in range(n):
        k = int(rng.integers(1, 30))
        times[i] = np.sort(rng.uniform(0, 1.3, k)).astype(np.float16)
        units[i] = rng.integers(0, 700, k).astype(np.uint16)
    return SHDData(times, units, rng.integers(0, 20, n), rng.integers(0, 12, n))


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    """Small real SHD files: {name: path of the .h5}."""
    root = tmp_path_factory.mktemp("originals")
    out = {}
    for seed, (name, n) in enumerate(zip(NAMES, (7, 4))):
        path = root / f"{name}.h5"
        write_shd(path, _sample_data(seed, n))
        out[name] = path
    return out


def _make_served(root: Path, originals: dict[str, Path], corrupt: str | None = None, listed=NAMES) -> Path:
    """A folder with <name>.h5.gz and md5sums.txt; ``corrupt`` names a .gz whose bytes differ from its MD5."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, h5 in originals.items():
        gz = gzip.compress(h5.read_bytes())
        if name in listed:
            lines.append(f"{_md5(gz)}  {name}.h5.gz")
        if name == corrupt:
            gz = gz[:-10] + b"\0" * 10
        (root / f"{name}.h5.gz").write_bytes(gz)
    lines.append(f"{_md5(b'other')}  shd_other.h5.gz")
    (root / "md5sums.txt").write_text("\n".join(lines) + "\n")
    return root


class _Server:
    """http.server in a thread on 127.0.0.1, port 0, serving ``datasets`` (a folder) under /datasets/
    like the real site and recording every requested path."""

    def __init__(self, datasets: Path):
        self.datasets = datasets
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        assert datasets.name == "datasets"
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(datasets.parent))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def gz_requests(self) -> list[str]:
        return [r for r in self.requests if r.endswith(".gz")]


@pytest.fixture
def serve(tmp_path, originals):
    servers = []

    def start(corrupt=None, listed=NAMES) -> _Server:
        served = _make_served(tmp_path / "www" / "datasets", originals, corrupt, listed)
        srv = _Server(served)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


def _fail_opener(url):
    pytest.fail(f"the network was touched: {url}")


def _assert_same(path: Path, original: Path) -> None:
    got, want = load_shd(path), load_shd(original)
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.speakers, want.speakers)
    assert len(got.times) == len(want.times)
    for a, b, c, d in zip(got.times, want.times, got.units, want.units):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)


def _leftovers(data_dir: Path) -> list[str]:
    """Files in the folder, but the record of verified files (sccl.data.provenance; checked in test_good_download)."""
    return sorted(p.name for p in data_dir.iterdir() if p.name != RECORD_FILE) if data_dir.exists() else []


def test_good_download(serve, originals, tmp_path):
    srv = serve()
    data_dir = tmp_path / "data" / "nested"  # created on demand
    train, test = ensure_shd_files(data_dir, base_url=srv.url, progress=False)
    assert (train, test) == (data_dir / "shd_train.h5", data_dir / "shd_test.h5")
    _assert_same(train, originals["shd_train"])
    _assert_same(test, originals["shd_test"])
    # the verified .gz files are kept; no temporary files remain
    assert _leftovers(data_dir) == ["shd_test.h5", "shd_test.h5.gz", "shd_train.h5", "shd_train.h5.gz"]
    # the record of what was verified (sccl.data.provenance): the unpacked files' SHA-256 and where they came from
    from sccl.data.hdf5 import file_sha256
    from sccl.data.provenance import read_record

    record = read_record(data_dir)
    assert record["shd_train.h5"]["sha256"] == file_sha256(train) and set(record) == {"shd_train.h5", "shd_test.h5"}
    assert srv.requests.count("/datasets/md5sums.txt") == 1
    assert sorted(srv.gz_requests()) == ["/datasets/shd_test.h5.gz", "/datasets/shd_train.h5.gz"]

    # second call: nothing is requested at all
    n = len(srv.requests)
    assert ensure_shd_files(data_dir, base_url=srv.url, progress=False) == (train, test)
    assert ensure_shd_files(data_dir, base_url=srv.url, opener=_fail_opener, progress=False) == (train, test)
    assert len(srv.requests) == n


def test_keep_gz_false(serve, originals, tmp_path):
    srv = serve()
    ensure_shd_files(tmp_path / "d", base_url=srv.url, progress=False, keep_gz=False)
    assert _leftovers(tmp_path / "d") == ["shd_test.h5", "shd_train.h5"]


def test_corrupted_download(serve, tmp_path):
    srv = serve(corrupt="shd_train")
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        ensure_shd_files(data_dir, base_url=srv.url, progress=False)
    msg = str(info.value)
    assert "shd_train.h5.gz" in msg and "checksum" in msg.lower()
    assert "expected" in msg and "got" in msg and DEFAULT_BASE_URL in msg
    assert _leftovers(data_dir) == []


def test_existing_files_need_no_network(originals, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name, path in originals.items():
        shutil.copy(path, data_dir / f"{name}.h5")
    # no server exists at all, and the opener fails the test if called
    paths = ensure_shd_files(data_dir, base_url="http://127.0.0.1:9/nowhere/", opener=_fail_opener)
    assert paths == (data_dir / "shd_train.h5", data_dir / "shd_test.h5")


def test_invalid_existing_h5_is_replaced(serve, originals, tmp_path):
    srv = serve()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(originals["shd_train"], data_dir / "shd_train.h5")
    (data_dir / "shd_test.h5").write_bytes(b"not hdf5 at all")
    ensure_shd_files(data_dir, base_url=srv.url, progress=False)
    assert srv.gz_requests() == ["/datasets/shd_test.h5.gz"]
    _assert_same(data_dir / "shd_test.h5", originals["shd_test"])


def test_server_404(tmp_path):
    empty = tmp_path / "www" / "datasets"
    empty.mkdir(parents=True)
    srv = _Server(empty)
    try:
        with pytest.raises(DataError) as info:
            ensure_shd_files(tmp_path / "data", base_url=srv.url, progress=False)
    finally:
        srv.close()
    msg = str(info.value)
    assert f"{srv.url}md5sums.txt" in msg and "404" in msg
    assert "Traceback" not in msg
    assert _leftovers(tmp_path / "data") == []


def test_gz_404_leaves_nothing(serve, tmp_path):
    srv = serve()
    (srv.datasets / "shd_test.h5.gz").unlink()
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as info:
        ensure_shd_files(data_dir, base_url=srv.url, progress=False, keep_gz=False)
    assert f"{srv.url}shd_test.h5.gz" in str(info.value)
    # train succeeded before test failed; no partial or temporary test file is left
    assert _leftovers(data_dir) == ["shd_train.h5"]


def test_server_down(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/datasets/"
    with pytest.raises(DataError) as info:
        ensure_shd_files(tmp_path / "data", base_url=url, progress=False)
    assert f"{url}md5sums.txt" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert _leftovers(tmp_path / "data") == []


def test_valid_gz_is_reused(serve, originals, tmp_path):
    srv = serve()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    www = srv.datasets
    shutil.copy(www / "shd_train.h5.gz", data_dir / "shd_train.h5.gz")
    (data_dir / "shd_test.h5.gz").write_bytes(b"stale partial download")  # wrong checksum: fetched again
    ensure_shd_files(data_dir, base_url=srv.url, progress=False)
    assert srv.gz_requests() == ["/datasets/shd_test.h5.gz"]
    _assert_same(data_dir / "shd_train.h5", originals["shd_train"])
    _assert_same(data_dir / "shd_test.h5", originals["shd_test"])
    assert (data_dir / "shd_test.h5.gz").read_bytes() == (www / "shd_test.h5.gz").read_bytes()


def test_file_missing_from_md5sums(serve, tmp_path):
    srv = serve(listed=("shd_train",))
    with pytest.raises(DataError, match=r"shd_test\.h5\.gz is not listed in .*md5sums\.txt"):
        ensure_shd_files(tmp_path / "data", base_url=srv.url, progress=False, keep_gz=False)
    assert "/datasets/shd_test.h5.gz" not in srv.requests


def test_env_var_overrides_default_url(serve, originals, tmp_path, monkeypatch):
    srv = serve()
    monkeypatch.setenv("SCCL_SHD_URL", srv.url.rstrip("/"))  # a missing trailing slash is fine
    train, test = ensure_shd_files(tmp_path / "data", progress=False)
    _assert_same(train, originals["shd_train"])
    assert srv.requests.count("/datasets/md5sums.txt") == 1


def test_injected_opener(originals, tmp_path):
    files = {}
    for name, h5 in originals.items():
        files[f"{name}.h5.gz"] = gzip.compress(h5.read_bytes())
    files["md5sums.txt"] = "".join(f"{_md5(v)} *{k}\n" for k, v in files.items()).encode()
    base = "mirror://shd/"
    calls = []

    def opener(url):
        calls.append(url)
        name = url[len(base):]
        if name not in files:
            raise urllib.error.URLError("no such file")
        return io.BytesIO(files[name])

    data_dir = tmp_path / "data"
    ensure_shd_files(data_dir, base_url=base, opener=opener, progress=False)
    assert calls == [base + "md5sums.txt", base + "shd_train.h5.gz", base + "shd_test.h5.gz"]
    _assert_same(data_dir / "shd_test.h5", originals["shd_test"])

    # an opener failing mid-read: DataError with the URL, nothing left behind
    class Broken(io.BytesIO):
        def read(self, n=-1):
            raise ConnectionResetError("connection reset by peer")

    def broken_opener(url):
        return io.BytesIO(files["md5sums.txt"]) if url.endswith("md5sums.txt") else Broken()

    other = tmp_path / "other"
    with pytest.raises(DataError, match=r"mirror://shd/shd_train\.h5\.gz.*connection reset"):
        ensure_shd_files(other, base_url=base, opener=broken_opener, progress=False)
    assert _leftovers(other) == []


def test_checksum_ok_but_not_gzip(tmp_path):
    junk = b"this is not a gzip file"
    files = {"md5sums.txt": f"{_md5(junk)}  shd_train.h5.gz\n{_md5(junk)}  shd_test.h5.gz\n".encode()}
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="could not unpack"):
        ensure_shd_files(data_dir, base_url="mirror://x/",
                         opener=lambda u: io.BytesIO(files.get(u[len("mirror://x/"):], junk)),
                         progress=False, keep_gz=False)
    assert _leftovers(data_dir) == ["shd_train.h5.gz"]  # verified archive kept; no .h5 or temp file


def test_parse_md5sums():
    text = "d41d8cd98f00b204e9800998ecf8427e  a.gz\nD41D8CD98F00B204E9800998ECF8427E *dir/b.gz\ngarbage\n\n"
    assert parse_md5sums(text) == {"a.gz": "d41d8cd98f00b204e9800998ecf8427e", "b.gz": "d41d8cd98f00b204e9800998ecf8427e"}


def test_default_opener_has_timeout(monkeypatch):
    seen = {}
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout=None: seen.update(t=timeout))
    download._default_opener("http://127.0.0.1:9/")
    assert seen["t"] and seen["t"] > 0
