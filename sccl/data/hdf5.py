"""SHD HDF5 files: the layout, a validating reader, a writer, and binning into spike counts.

Layout of an SHD file (and of every file sccl writes):

    spikes/times        vlen float (float16 in the official files), seconds, one array per sample
    spikes/units        vlen uint16, channel ids (SHD: 0..699), same length as times
    labels              int >= 0 (SHD: 0-9 English "zero".."nine", 10-19 German "null".."neun")
    extra/speaker       int >= 0 (SHD: 0..11)
    extra/keys          byte strings, class id -> name            (optional when reading; sets the class count)
    extra/meta_info/*   per-speaker gender / age / body_height   (optional when reading)
    extra/source        merged files only: 0 = official train file, 1 = test file, 2 = validation file (SSC)

Binning follows the original code exactly: ``np.digitize(t, linspace(0, max_time, nb_steps))``, so a
spike at t lands in step i with edge[i-1] <= t < edge[i]; step 0 therefore never receives a spike,
and several spikes of one channel in one step add up to a count (the input is counts, not binary).
Unlike the original, spikes at or after ``max_time`` (index nb_steps) are dropped and counted.

Nothing here assumes SHD's shape: the channel count is the file's ``nb_units`` attribute, else SHD's 700
(:func:`channel_count`); the class count comes from ``extra/keys`` or the labels
(:mod:`sccl.data.shape`). ``NB_UNITS`` & co. are SHD's defaults (:data:`sccl.core.defaults.SHD`), for the synthetic data.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sccl.core.defaults import SHD
from sccl.core.errors import DataError
from sccl.data import datasets
from sccl.data.bins_cache import cache_path_for, read_cache, source_stamp, write_cache


# SHD's shape (the defaults; a file's own shape is read from it)
NB_UNITS = SHD["nb_units"]
NB_CLASSES = SHD["nb_classes"]
NB_SPEAKERS = SHD["nb_speakers"]
NB_STEPS = SHD["nb_steps"]
MAX_TIME = SHD["max_time"]
MAX_ID = 2**16 - 1  # labels, speakers and units are stored as uint16
UNITS_ATTR = "nb_units"  # a file attribute: the channel count, when not SHD's

REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels", "extra/speaker")
SOURCE_KEY = "extra/source"
SOURCE_NAMES = datasets.SOURCE_NAMES  # extra/source codes: train 0, test 1, valid 2

ENGLISH_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN_WORDS = ("null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun")
KEYS = tuple(f"english {w}" for w in ENGLISH_WORDS) + tuple(f"german {w}" for w in GERMAN_WORDS)


def default_keys(nb_classes: int) -> tuple[str, ...]:
    """Class names of a file that brings none: SHD's words for its first 20 ids, then "class <id>"."""
    return KEYS[:nb_classes] + tuple(f"class {i}" for i in range(len(KEYS), nb_classes))


def channel_count(declared) -> int:
    """The input channel count: the file's ``nb_units`` attribute when present, else SHD's (a file with more
    channels must declare them; one with fewer may, to get a smaller network)."""
    return NB_UNITS if declared is None else int(declared)


@dataclass
class SHDData:
    """All samples of one SHD file, in memory. ``times``/``units`` are object arrays of 1-D arrays."""

    times: np.ndarray
    units: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    path: Path | None = None
    source: np.ndarray | None = None  # 0 = train file, 1 = test file, 2 = validation file (merged files only)
    keys: np.ndarray | None = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)  # the file's attributes (description, nb_units, sources)
    nb_spikes: int | None = None  # the file's spike count and latest spike time (0.0 without spikes), found by the
    last_spike: float | None = None  # validation as it reads every spike (None: not validated)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def spike_counts(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.times), dtype=np.int64, count=len(self.times))


# ----------------------------------------------------------------------------------------------
# writing


def _vlen_dataset(group: h5py.Group, name: str, arrays, dtype) -> None:
    n = len(arrays)
    ds = group.create_dataset(name, (n,), dtype=h5py.vlen_dtype(dtype), maxshape=(None,), chunks=True)
    if n == 0:
        return
    obj = np.empty(n, dtype=object)
    for i, a in enumerate(arrays):
        obj[i] = np.asarray(a, dtype=dtype)
    try:
        ds[:] = obj
    except (TypeError, ValueError):  # equal-length arrays get broadcast as 2-D by h5py: write one by one
        for i in range(n):
            ds[i] = obj[i]


def _plain_dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    group.create_dataset(name, data=data, maxshape=(None,) + data.shape[1:], chunks=True)


def shd_image(data: SHDData, attrs: dict | None = None) -> bytes:
    """The bytes of an SHD file holding ``data``, built in memory: HDF5 never writes to the disk itself (it
    crashes, exit 139, when a disk fills during a write), so a full disk is a plain, catchable OSError."""
    with h5py.File(f"sccl-in-memory-{os.getpid()}-{id(data)}", "w", driver="core", backing_store=False) as f:
        _vlen_dataset(f, "spikes/times", data.times, np.float16)
        _vlen_dataset(f, "spikes/units", data.units, np.uint16)
        _plain_dataset(f, "labels", np.asarray(data.labels, dtype=np.uint16))
        _plain_dataset(f, "extra/speaker", np.asarray(data.speakers, dtype=np.uint16))
        nb_classes = int(np.max(data.labels)) + 1 if len(data.labels) else 0  # any integer dtype
        keys = data.keys if data.keys is not None else np.array([k.encode("ascii") for k in default_keys(nb_classes)])
        _plain_dataset(f, "extra/keys", np.asarray(keys))
        if data.source is not None:
            _plain_dataset(f, SOURCE_KEY, np.asarray(data.source, dtype=np.uint8))
        for name, values in data.meta.items():
            _plain_dataset(f, f"extra/meta_info/{name}", np.asarray(values))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f.flush()
        return f.id.get_file_image()


def estimated_size(data: SHDData) -> int:
    """Bytes of the file :func:`write_shd` writes, from above (within ~5 % for SHD-like samples): 4 bytes a spike
    plus the per-sample heap overhead."""
    return int(4 * data.spike_counts.sum() + 3000 * len(data) + 65536)


def write_shd(path: str | os.PathLike, data: SHDData, attrs: dict | None = None) -> None:
    """Write ``data`` in the SHD layout (float16 times, uint16 units, every dataset resizable), built in memory
    and written with one plain write (see :func:`shd_image`)."""
    image = shd_image(data, attrs)
    with open(path, "wb") as fh:
        fh.write(image)


# ----------------------------------------------------------------------------------------------
# reading and validation


# what h5py raises on a damaged file: OSError (I/O), KeyError / RuntimeError (bad object headers or B-trees),
# TypeError / ValueError (bad datatypes or shapes)
H5_ERRORS = (OSError, KeyError, RuntimeError, TypeError, ValueError)


def damage_reason(exc: BaseException) -> str:
    return str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc) or type(exc).__name__


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_sample_arrays(path: Path, times: np.ndarray, units: np.ndarray, n: int, nb_units: int,
                         first: int = 0) -> tuple[int, float]:
    """Check samples ``first .. first + n - 1`` (the arrays hold those; errors name the file's sample ids);
    returns their spike count and latest spike time."""
    for key, arr in (("spikes/times", times), ("spikes/units", units)):
        if len(arr) != n:
            raise DataError(f"{path}: '{key}' holds {len(arr)} samples but 'labels' holds {n}")
    lt = np.fromiter((len(a) for a in times), dtype=np.int64, count=n)
    lu = np.fromiter((len(a) for a in units), dtype=np.int64, count=n)
    if (lt != lu).any():
        i = _first_bad(lt != lu)
        raise DataError(
            f"{path}: 'spikes/times' and 'spikes/units' differ in length in sample {first + i} ({lt[i]} vs {lu[i]} "
            "spikes)"
        )
    if n == 0 or lt.sum() == 0:
        return 0, 0.0
    sample_of = first + np.repeat(np.arange(n), lt)
    all_t = np.concatenate(list(times)).astype(np.float64)
    all_u = np.concatenate(list(units))
    bad_t = ~np.isfinite(all_t) | (all_t < 0)
    if bad_t.any():
        j = _first_bad(bad_t)
        raise DataError(
            f"{path}: 'spikes/times' has a negative or non-finite time ({all_t[j]}) in sample {sample_of[j]}"
        )
    if not np.issubdtype(all_u.dtype, np.integer):
        raise DataError(f"{path}: 'spikes/units' must hold integers, found {all_u.dtype}")
    bad_u = (all_u < 0) | (all_u >= nb_units)
    if bad_u.any():
        j = _first_bad(bad_u)
        raise DataError(
            f"{path}: 'spikes/units' has unit {all_u[j]} outside [0, {nb_units}) in sample {sample_of[j]} (a file "
            f"with more channels declares them in its '{UNITS_ATTR}' attribute)"
        )
    return len(all_t), float(all_t.max())


def _check_range(path: Path, key: str, values: np.ndarray, high: int) -> np.ndarray:
    if not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{path}: '{key}' must hold integers, found {values.dtype}")
    bad = (values < 0) | (values >= high)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{path}: '{key}' has value {values[i]} outside [0, {high}) in sample {i}")
    return values.astype(np.int64)


CHECK_CHUNK = 1024  # samples read at a time by load_shd_tables (SSC-like 8k-spike samples: ~250 MiB of temporaries)


def load_shd(path: str | os.PathLike) -> SHDData:
    """Read and validate an SHD file. Any problem raises :class:`DataError` naming file, key and sample."""
    return _read_checked(Path(path), keep_spikes=True)


def load_shd_tables(path: str | os.PathLike) -> SHDData:
    """Validate an SHD file as :func:`load_shd` does, reading its spikes ``CHECK_CHUNK`` samples at a time (memory
    bounded at any file size); returns its data without the spikes (labels, speakers, source, keys, ...)."""
    return _read_checked(Path(path), keep_spikes=False)


def _read_checked(path: Path, keep_spikes: bool) -> SHDData:
    """The file's data (``keep_spikes=False``: every part but the spikes, which are only checked, chunk by chunk)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        try:  # a damaged object header raises KeyError / RuntimeError even from `key in f`
            missing = [key for key in REQUIRED_KEYS if key not in f]
            if missing:
                raise DataError(f"{path}: missing key '{missing[0]}' (not an SHD file?)")
            labels = np.asarray(f["labels"][:])
            speakers = np.asarray(f["extra/speaker"][:])
            times_ds, units_ds = f["spikes/times"], f["spikes/units"]
            source = np.asarray(f[SOURCE_KEY][:]) if SOURCE_KEY in f else None
            keys = np.asarray(f["extra/keys"][:]) if "extra/keys" in f else None
            attrs = dict(f.attrs)
            meta = {}
            if "extra/meta_info" in f:
                for name, ds in f["extra/meta_info"].items():
                    meta[name] = np.asarray(ds[:])
            labels, speakers, nb_units = _check_tables(path, labels, speakers, keys, meta, attrs)
            n = len(labels)
            if any(h5py.check_vlen_dtype(ds.dtype) is None for ds in (times_ds, units_ds)):
                raise DataError(f"{path}: 'spikes/times' and 'spikes/units' must be variable-length arrays")
            for key, ds in (("spikes/times", times_ds), ("spikes/units", units_ds)):
                if len(ds) != n:
                    raise DataError(f"{path}: '{key}' holds {len(ds)} samples but 'labels' holds {n}")
            # checked CHECK_CHUNK samples at a time: the checks' temporaries stay small at any file size
            times, units = (times_ds[:], units_ds[:]) if keep_spikes else (times_ds, units_ds)
            nb_spikes, last_spike = 0, 0.0
            for start in range(0, n, CHECK_CHUNK):
                stop = min(n, start + CHECK_CHUNK)
                count, last = _check_sample_arrays(path, times[start:stop], units[start:stop], stop - start, nb_units,
                                                   first=start)
                nb_spikes, last_spike = nb_spikes + count, max(last_spike, last)
        except H5_ERRORS as exc:
            raise DataError(f"{path}: damaged HDF5 file, could not read the SHD datasets ({damage_reason(exc)}); "
                            "replace it (download, merge or generate it again)") from None
    if source is not None:
        if len(source) != n:
            raise DataError(f"{path}: '{SOURCE_KEY}' holds {len(source)} samples but 'labels' holds {n}")
        source = _check_range(path, SOURCE_KEY, source, len(SOURCE_NAMES))
    if not keep_spikes:
        times = units = np.empty(0, object)
    return SHDData(times, units, labels, speakers, path=path, source=source, keys=keys, meta=meta, attrs=attrs,
                   nb_spikes=nb_spikes, last_spike=last_spike)


def _check_tables(path: Path, labels, speakers, keys, meta: dict, attrs: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """(labels, speakers, channel count) once the labels, the speakers and the ``nb_units`` attribute are checked."""
    n = len(labels)
    if labels.ndim != 1:
        raise DataError(f"{path}: 'labels' must be one-dimensional, found shape {labels.shape}")
    labels = _check_range(path, "labels", labels, MAX_ID + 1 if keys is None else len(keys))
    if len(speakers) != n:
        raise DataError(f"{path}: 'extra/speaker' holds {len(speakers)} samples but 'labels' holds {n}")
    tables = [len(v) for v in meta.values() if np.ndim(v) == 1]  # per-speaker tables bound the speaker ids
    speakers = _check_range(path, "extra/speaker", speakers, max(tables) if tables else MAX_ID + 1)
    declared = attrs.get(UNITS_ATTR)
    if declared is not None and not (np.ndim(declared) == 0 and np.issubdtype(np.asarray(declared).dtype, np.integer)
                                     and 1 <= int(declared) <= MAX_ID + 1):
        raise DataError(f"{path}: attribute '{UNITS_ATTR}' must be an integer in 1..{MAX_ID + 1}, got {declared!r}")
    return labels, speakers, channel_count(declared)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, remembered per process while its size and modification time are unchanged (sweeps ask
    for the data file's hash once per run stamp)."""
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, chunk)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# binning


@dataclass
class BinnedSpikes:
    """Per-step spike counts of every sample, stored sparse (CSR over samples).

    Sample i owns entries ``offsets[i]:offsets[i+1]`` of ``steps`` (uint8), ``units`` (uint16) and
    ``counts`` (uint8, >= 1), sorted by (step, unit). ``dropped`` = spikes at or after max_time.
    """

    offsets: np.ndarray
    steps: np.ndarray
    units: np.ndarray
    counts: np.ndarray
    nb_steps: int
    max_time: float
    dropped: int
    nb_units: int = NB_UNITS  # the input channel count (every unit id is below it)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def coo(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position in batch, step, unit, count) of the non-zero entries of the samples ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        starts, ends = self.offsets[indices], self.offsets[indices + 1]
        lengths = ends - starts
        batch_pos = np.repeat(np.arange(len(indices)), lengths)
        # gather entry positions without a Python loop: a running index inside each sample's slice
        run = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        entries = np.repeat(starts, lengths) + run
        return batch_pos, self.steps[entries], self.units[entries], self.counts[entries]

    def dense(self, indices, dtype=np.float32, time_major: bool = False) -> np.ndarray:
        """Dense counts, (B, T, channels) or (T, B, channels) when ``time_major``."""
        b, t, u, c = self.coo(indices)
        if time_major:
            out = np.zeros((self.nb_steps, len(np.atleast_1d(indices)), self.nb_units), dtype=dtype)
            out[t, b, u] = c
        else:
            out = np.zeros((len(np.atleast_1d(indices)), self.nb_steps, self.nb_units), dtype=dtype)
            out[b, t, u] = c
        return out


def bin_spikes(
    times: np.ndarray, units: np.ndarray, nb_steps: int = NB_STEPS, max_time: float = MAX_TIME, chunk: int = 256,
    nb_units: int | None = None, nb_spikes: int | None = None,
) -> BinnedSpikes:
    """Bin every sample, vectorised over chunks of samples: each spike gets the key
    (sample, step, unit) as one uint32, the keys are sorted, and each run of equal keys is one count.
    ``nb_units``: the channel count (default: SHD's, or more when a unit id is higher). ``times`` and ``units`` may
    be the file's h5py datasets: each chunk is then read when it is binned. ``nb_spikes`` (the spike count, counted
    here when not given) bounds the binned entries: the output is allocated once at that size and only its filled
    part is ever touched, so the peak memory is the binned set itself (growing lists of parts joined at the end
    took twice that, the freed parts staying in the allocator's heap)."""
    if nb_steps < 2 or nb_steps > 256:
        raise DataError(f"nb_steps must be in [2, 256], got {nb_steps}")
    if not max_time > 0:
        raise DataError(f"max_time must be positive, got {max_time}")
    edges = np.linspace(0, max_time, nb_steps)
    n = len(times)
    if nb_units is None:
        nb_units = max(NB_UNITS, max((int(u.max()) + 1 for u in units if len(u)), default=0))
    cells = nb_steps * nb_units
    chunk = max(1, min(chunk, (2**32 - 1) // cells))
    per_sample = np.zeros(n + 1, dtype=np.int64)
    if nb_spikes is None:
        nb_spikes = sum(len(t) for lo in range(0, n, chunk) for t in times[lo:lo + chunk])
    # np.empty of a large size maps fresh pages: the unfilled tail past the last entry is never made resident
    steps, unit_ids, counts = (np.empty(nb_spikes, dtype) for dtype in (np.uint8, np.uint16, np.uint8))
    filled = 0
    dropped = 0
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        lengths = np.fromiter((len(t) for t in times[lo:hi]), dtype=np.int64, count=hi - lo)
        if lengths.sum() == 0:
            continue
        s = np.digitize(np.concatenate(list(times[lo:hi])).astype(np.float64), edges).astype(np.uint32)
        u = np.concatenate(list(units[lo:hi])).astype(np.uint32)
        sample = np.repeat(np.arange(hi - lo, dtype=np.uint32), lengths)
        keep = s < nb_steps
        dropped += int(len(s) - keep.sum())
        key = np.sort(sample[keep] * np.uint32(cells) + s[keep] * np.uint32(nb_units) + u[keep])
        if len(key) == 0:
            continue
        first = np.empty(len(key), dtype=bool)
        first[0] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        run = np.diff(starts, append=len(key))
        if run.max() > 255:
            raise DataError(f"more than 255 spikes of one channel in one time step (samples {lo}..{hi - 1})")
        sample_nz, rest = np.divmod(key[starts], np.uint32(cells))
        step_nz, unit_nz = np.divmod(rest, np.uint32(nb_units))
        per_sample[lo + 1 : hi + 1] = np.bincount(sample_nz, minlength=hi - lo)
        end = filled + len(starts)
        if end > nb_spikes:
            raise DataError(f"nb_spikes={nb_spikes} is fewer than the spikes binned (samples 0..{hi - 1})")
        steps[filled:end], unit_ids[filled:end], counts[filled:end] = step_nz, unit_nz, run
        filled = end
    offsets = np.cumsum(per_sample)
    return BinnedSpikes(offsets, steps[:filled], unit_ids[:filled], counts[:filled], nb_steps, float(max_time), dropped,
                        int(nb_units))


def _bin_file(path: Path, nb_steps: int, max_time: float, nb_units: int) -> BinnedSpikes:
    """Validate the file (spikes read in chunks), then bin it straight from the file, a few hundred samples at a
    time: the spikes are never all in memory (SSC's would take several GiB)."""
    nb_spikes = load_shd_tables(path).nb_spikes
    try:
        with h5py.File(path, "r") as f:
            return bin_spikes(f["spikes/times"], f["spikes/units"], nb_steps, max_time, nb_units=nb_units,
                              nb_spikes=nb_spikes)
    except H5_ERRORS as exc:
        raise DataError(f"{path}: damaged HDF5 file, could not read the spikes ({damage_reason(exc)}); replace it "
                        "(download, merge or generate it again)") from None


def load_binned(
    path: str | os.PathLike, data: SHDData | None = None, nb_steps: int = NB_STEPS, max_time: float = MAX_TIME,
    use_cache: bool = True, nb_units: int | None = None,
) -> BinnedSpikes:
    """Binned counts of the file at ``path``, from the cache next to it while file and parameters match; a damaged
    cache is rebuilt, one that cannot be written is kept in memory (:mod:`sccl.data.bins_cache`). ``nb_units``: the
    file's declared channel count (its ``nb_units`` attribute), if any."""
    path = Path(path)
    cache = cache_path_for(path, nb_steps, max_time)
    stamp = source_stamp(path)
    if use_cache:
        z = read_cache(cache, stamp, nb_steps, channel_count(nb_units))
        if z is not None:
            return BinnedSpikes(z["offsets"], z["steps"], z["units"], z["counts"], nb_steps, max_time,
                                int(z["dropped"]), channel_count(nb_units))
    if data is None:
        binned = _bin_file(path, nb_steps, max_time, channel_count(nb_units))
    else:
        binned = bin_spikes(data.times, data.units, nb_steps, max_time, nb_units=channel_count(nb_units))
    if use_cache:
        write_cache(cache, stamp, binned.offsets, binned.steps, binned.units, binned.counts, binned.dropped)
    return binned
