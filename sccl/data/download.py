"""Fetch a dataset's official files into a data folder: the Spiking Heidelberg Digits (shd_train.h5, shd_test.h5)
or the Spiking Speech Commands (ssc_train.h5, ssc_valid.h5, ssc_test.h5); see :mod:`sccl.data.datasets`.

:func:`ensure_files` returns at once, without any network access, when every ``.h5`` file is
already in the folder and looks like an SHD-layout file (they open as HDF5 and hold ``sccl.data.hdf5.REQUIRED_KEYS``).
Only when a file is missing or broken does it fetch ``md5sums.txt`` (once) from the base URL, then
for each such file:

* reuse ``<name>.h5.gz`` from the folder when its MD5 matches ``md5sums.txt``, otherwise download it
  to a temporary file in the folder (with a progress bar) and check its MD5;
* unpack it to a temporary file and rename that to ``<name>.h5`` (atomic, so an interrupted run never
  leaves a half-written ``.h5``); the verified ``.gz`` is kept unless ``keep_gz=False``.

Every failure (network error, HTTP error, checksum mismatch, a file missing from ``md5sums.txt``, a
broken archive) raises :class:`sccl.core.errors.DataError` with one clear message, and temporary files are
removed.

Environment:
    SCCL_SHD_URL   base URL to download from instead of ``DEFAULT_BASE_URL`` (e.g. a local mirror);
                   it applies whenever ``base_url`` is left at its default.

Offline use: place the ``.h5`` files (or the ``.h5.gz`` files plus ``md5sums.txt`` served from a mirror) in
the data folder by hand; they are downloadable from
https://zenkelab.org/datasets/.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

import h5py
from tqdm import tqdm

from sccl.core.disk import remove_stale_temps, temp_path
from sccl.core.errors import DataError
from sccl.data.datasets import LABELS, PARTS, part_files
from sccl.data.hdf5 import REQUIRED_KEYS
from sccl.data.provenance import write_record


DEFAULT_BASE_URL = "https://zenkelab.org/datasets/"
ENV_URL = "SCCL_SHD_URL"
MD5SUMS_NAME = "md5sums.txt"
TIMEOUT_S = 60.0
CHUNK = 1 << 20
_MAX_MD5SUMS_BYTES = 1 << 20

Opener = Callable[[str], object]


def _default_opener(url: str):
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)


def resolve_base_url(base_url: str = DEFAULT_BASE_URL) -> str:
    """The base URL in effect: ``SCCL_SHD_URL`` when set and ``base_url`` is the default."""
    env = os.environ.get(ENV_URL, "").strip()
    if env and base_url == DEFAULT_BASE_URL:
        base_url = env
    return base_url.rstrip("/") + "/"


def is_valid_shd_file(path: str | os.PathLike) -> bool:
    """Cheap check: the file opens as HDF5 and holds every key of ``REQUIRED_KEYS`` (no full validation)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return all(key in f for key in REQUIRED_KEYS)
    except (OSError, ValueError, KeyError, RuntimeError):
        return False


def file_md5(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manual_hint(data_dir: Path, dataset: str = "shd") -> str:
    return (
        f"retry, or download {', '.join(n + '.gz' for n in part_files(dataset))} by hand from {DEFAULT_BASE_URL} "
        f"and place them (or the unpacked .h5 files) in {data_dir}"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)  # URLError/HTTPError/timeouts are OSErrors


def _stream(url: str, opener: Opener, sink, hint: str, progress: bool, desc: str, limit: int | None = None):
    """Copy the body at ``url`` into ``sink`` (a callable taking bytes); DataError on any network error."""
    try:
        resp = opener(url)
    except _NETWORK_ERRORS as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # an HTTPError holds the open error response
        raise DataError(f"could not download {url}: {_reason(exc)}; {hint}") from None
    try:
        total = None
        headers = getattr(resp, "headers", None)
        if headers is not None:
            try:
                total = int(headers.get("Content-Length"))
            except (TypeError, ValueError):
                total = None
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress,
                  leave=False) as bar:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                got += len(block)
                if limit is not None and got > limit:
                    raise DataError(f"{url}: larger than {limit} bytes, not a checksum list; {hint}")
                sink(block)
                bar.update(len(block))
        if total is not None and got != total:
            raise DataError(
                f"could not download {url}: connection closed after {got} of {total} bytes; {hint}"
            )
    except _NETWORK_ERRORS as exc:
        raise DataError(f"could not download {url}: {_reason(exc)}; {hint}") from None
    finally:
        close = getattr(resp, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a finished response must not hide the real outcome
                pass


def parse_md5sums(text: str) -> dict[str, str]:
    """``{filename: md5}`` from lines ``<md5>  <filename>`` (``*filename`` binary marker accepted)."""
    sums = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, name = parts[0].lower(), parts[1].strip().lstrip("*")
        if len(digest) == 32 and all(c in "0123456789abcdef" for c in digest):
            sums[os.path.basename(name)] = digest
    return sums


def _fetch_md5sums(base: str, opener: Opener, hint: str) -> dict[str, str]:
    url = base + MD5SUMS_NAME
    buf = bytearray()
    _stream(url, opener, buf.extend, hint, progress=False, desc=MD5SUMS_NAME, limit=_MAX_MD5SUMS_BYTES)
    return parse_md5sums(buf.decode("utf-8", errors="replace"))


def _temp_path(data_dir: Path, name: str) -> Path:
    """``<name>.tmp<pid>`` (sccl.core.disk's naming), after removing the ones a killed process left behind."""
    remove_stale_temps(data_dir / name)
    return temp_path(data_dir / name)


def _download_gz(url: str, gz_path: Path, expected: str, opener: Opener, hint: str, progress: bool) -> None:
    """Download ``url`` to a temp file, check its MD5, then rename it to ``gz_path``."""
    tmp = _temp_path(gz_path.parent, gz_path.name)
    try:
        h = hashlib.md5()
        with open(tmp, "wb") as fh:
            def sink(block: bytes) -> None:
                h.update(block)
                fh.write(block)

            _stream(url, opener, sink, hint, progress, gz_path.name)
        actual = h.hexdigest()
        if actual != expected:
            raise DataError(
                f"{gz_path.name}: MD5 checksum mismatch after download from {url} "
                f"(expected {expected}, got {actual}); the download is corrupt or incomplete and was deleted; "
                f"{hint}"
            )
        os.replace(tmp, gz_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _gunzip(gz_path: Path, h5_path: Path, hint: str) -> str:
    """Unpack ``gz_path`` to ``h5_path``; returns the SHA-256 of the unpacked file (hashed while it is written)."""
    tmp = _temp_path(h5_path.parent, h5_path.name)
    h = hashlib.sha256()
    try:
        try:
            with gzip.open(gz_path, "rb") as src, open(tmp, "wb") as dst:
                while block := src.read(CHUNK):
                    h.update(block)
                    dst.write(block)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{gz_path}: could not unpack ({exc}); {hint}") from None
        if not is_valid_shd_file(tmp):
            raise DataError(
                f"{gz_path}: unpacks to a file that is not an SHD-layout HDF5 file (missing one of {', '.join(REQUIRED_KEYS)})"
            )
        os.replace(tmp, h5_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return h.hexdigest()


def ensure_shd_files(data_dir: str | os.PathLike, base_url: str = DEFAULT_BASE_URL, opener: Opener | None = None,
                     progress: bool = True, keep_gz: bool = True) -> tuple[Path, Path]:
    """``shd_train.h5`` and ``shd_test.h5`` in ``data_dir`` (see :func:`ensure_files`)."""
    return ensure_files(data_dir, "shd", base_url, opener, progress, keep_gz)  # type: ignore[return-value]


def ensure_files(
    data_dir: str | os.PathLike,
    dataset: str = "shd",
    base_url: str = DEFAULT_BASE_URL,
    opener: Opener | None = None,
    progress: bool = True,
    keep_gz: bool = True,
) -> tuple[Path, ...]:
    """Make sure the dataset's ``.h5`` files are in ``data_dir``; return their paths in :data:`PARTS` order
    (SHD: train, test; SSC: train, valid, test).

    No network access when all are present and valid. ``opener(url)`` must return a file-like object
    with ``.read(n)`` (default: ``urllib.request.urlopen`` with a timeout). See the module docstring.
    """
    if dataset not in PARTS:
        raise DataError(f"unknown dataset '{dataset}' (choose from {', '.join(PARTS)})")
    data_dir = Path(data_dir).expanduser()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create data folder {data_dir}: {exc}") from None
    h5_paths = tuple(data_dir / name for name in part_files(dataset))
    missing = [p for p in h5_paths if not is_valid_shd_file(p)]
    if not missing:
        return h5_paths

    hint = _manual_hint(data_dir, dataset)
    opener = opener or _default_opener
    base = resolve_base_url(base_url)
    sums = _fetch_md5sums(base, opener, hint)
    for h5_path in missing:  # every file is checked against the list before any is downloaded
        if h5_path.name + ".gz" not in sums:
            raise DataError(f"{h5_path.name}.gz is not listed in {base}{MD5SUMS_NAME}, so it cannot be verified; "
                            f"{hint}")
    for h5_path in missing:
        gz_path = h5_path.with_name(h5_path.name + ".gz")
        expected = sums[gz_path.name]
        if not (gz_path.is_file() and file_md5(gz_path) == expected):
            _download_gz(base + gz_path.name, gz_path, expected, opener, hint, progress)
        digest = _gunzip(gz_path, h5_path, hint)
        write_record(data_dir, h5_path.name, digest, expected, base)  # names the data (sccl.data.provenance)
        if not keep_gz:
            gz_path.unlink(missing_ok=True)
    if progress:
        print(f"{LABELS[dataset]} files ready in {data_dir}")
    return h5_paths
