"""Signal files read in blocks, whatever their size: NumPy ``.npy``, raw binary, CSV,
EDF/EDF+ and BDF, and WFDB records.

The format is recognised from the content (``sniff``), never from the file name alone;
raw binary has no signature, so it must be asked for with ``format="raw"``. Every
reader gives a ``SignalSource``: ``n_samples``, ``n_channels``, ``fs`` (Hz),
``channel_names``, and ``read(start, stop)`` -> float32/float64 array
``(stop - start, n_channels)``.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..archives import UnpackLimits, check_members, open_zip
from ..errors import CorruptFile, EmptyInput, InvalidInput, ParseError, TooLarge, UnsupportedFormat
from ..text import bounded_lines, head

FORMATS = ("npy", "raw", "csv", "edf", "bdf", "wfdb")
RAW_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
#: Largest WFDB record accepted inside a zip, and most members, so a zip bomb is refused.
MAX_UNZIPPED_BYTES = 16 * 1024**3
MAX_ZIP_MEMBERS = 64
#: A WFDB header is a few lines a signal.
MAX_HEADER_BYTES = 1024**2
#: Columns of a CSV signal (the channels a raw file may have).
MAX_CSV_COLUMNS = 1024
#: What ``probe_signal`` reads of a CSV: its first lines, a few thousand rows.
PROBE_BYTES = 64 * 1024


def sniff(path: Path) -> str:
    """The format of the file at ``path`` from its first bytes: one of FORMATS but "raw".

    Raises EmptyInput or UnsupportedFormat.
    """
    with open(path, "rb") as file:
        head = file.read(4096)
    if not head:
        raise EmptyInput("the file is empty")
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"0       ") and len(head) >= 256:
        return "edf"
    if head.startswith(b"\xffBIOSEMI"):
        return "bdf"
    if head.startswith(b"PK\x03\x04"):
        return "wfdb"
    if _looks_like_csv(head):
        return "csv"
    raise UnsupportedFormat("not a signal file vitalq recognises (npy, CSV, EDF/EDF+, BDF, or a zip of a "
                            "WFDB record); raw binary must be declared with format=raw", formats=list(FORMATS))


def _looks_like_csv(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return False
        text = head[:exc.start].decode("utf-8")
    lines = [line for line in text.splitlines() if line.strip()][:10]
    return bool(lines) and all(line.isprintable() for line in lines) and any(c.isdigit() for c in text)


def open_signal(path: Path, params: dict[str, Any], workdir: Path,
                unpack: UnpackLimits | None = None) -> "ArraySource | EdfSource | WfdbSource":
    """A reader of the file at ``path`` as ``params`` describe it.

    ``params`` may hold ``format`` ("auto" or one of FORMATS), ``fs`` (Hz), ``channels``
    (names or 0-based indices to keep), and for raw files ``dtype`` and ``n_channels``;
    for CSV ``time_column`` and ``time_unit``. ``workdir`` is a scratch folder (CSV is
    parsed into it once; WFDB zips are unpacked there, within ``unpack``'s limits).
    """
    return _open(path, params, workdir, probe=False, unpack=unpack)[0]


@dataclass(frozen=True)
class SignalProbe:
    """What a bounded look at a signal file tells: enough to check a filter request."""

    fs: float
    n_channels: int
    channel_names: list[str]
    #: None when the look did not reach the end of the file (a long CSV).
    n_samples: int | None


def probe_signal(path: Path, params: dict[str, Any], workdir: Path, unpack: UnpackLimits | None = None) -> SignalProbe:
    """Read only what a check before queueing may read, whatever the file's size: the
    first ``PROBE_BYTES`` of a CSV, a zip's directory and its ``.hea`` member, an EDF
    header (no annotations), a ``.npy`` header. Raises what ``open_signal`` raises about
    what it reads, and TooLarge for a CSV whose first line does not fit in the probe."""
    source, complete = _open(path, params, workdir, probe=True, unpack=unpack)
    return SignalProbe(float(source.fs), source.n_channels, list(source.channel_names),
                       source.n_samples if complete else None)


def _open(path: Path, params: dict[str, Any], workdir: Path, probe: bool, unpack: UnpackLimits | None):
    """(source, whether it holds the whole file)."""
    fmt = params.get("format") or "auto"
    if fmt == "auto":
        fmt = sniff(path)
    elif path.stat().st_size == 0:
        raise EmptyInput("the file is empty")
    complete = True
    if fmt == "npy":
        source = open_npy(path, params.get("fs"))
    elif fmt == "raw":
        source = open_raw(path, params.get("dtype"), params.get("n_channels", 1), params.get("fs"))
    elif fmt == "csv":
        if probe:
            text, complete = head(path, PROBE_BYTES, "the CSV file")
            path = workdir / "head.csv"
            path.write_text(text, encoding="utf-8")
        # Columns are chosen while parsing, so no Selection below.
        return parse_csv(path, workdir / "parsed.f64", fs=params.get("fs"), time_column=params.get("time_column"),
                         time_unit=params.get("time_unit", "s"), columns=params.get("channels")), complete
    elif fmt in ("edf", "bdf"):
        return EdfSource(path, params.get("channels"), annotations=not probe), True
    elif fmt == "wfdb":
        source = WfdbSource.from_zip(path, workdir, header_only=probe, unpack=unpack)
    else:
        raise UnsupportedFormat(f"unknown format {fmt!r}", formats=list(FORMATS))
    channels = params.get("channels")
    return (source if not channels else Selection(source, channels)), complete


@dataclass
class ArraySource:
    """Blocks of a file laid out as ``(n_samples, n_channels)`` rows from ``offset`` on,
    read with positioned reads into private buffers (no memory map grows the resident set).
    ``fortran`` is for column-major ``.npy`` files, one channel after the other."""

    path: Path
    dtype: np.dtype
    n_samples: int
    n_channels: int
    fs: float
    offset: int = 0
    fortran: bool = False
    channel_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.channel_names = self.channel_names or [f"ch{i}" for i in range(self.n_channels)]
        self._file = open(self.path, "rb")

    def read(self, start: int, stop: int) -> np.ndarray:
        count = stop - start
        if self.fortran:
            block = np.empty((count, self.n_channels), dtype=self.dtype)
            for channel in range(self.n_channels):
                self._file.seek(self.offset + (channel * self.n_samples + start) * self.dtype.itemsize)
                block[:, channel] = np.fromfile(self._file, dtype=self.dtype, count=count)
        else:
            self._file.seek(self.offset + start * self.n_channels * self.dtype.itemsize)
            block = np.fromfile(self._file, dtype=self.dtype, count=count * self.n_channels)
            block = block.reshape(count, self.n_channels)
        return block if block.dtype.kind == "f" and block.dtype.itemsize in (4, 8) and block.dtype.isnative \
            else block.astype(np.float64)


def _need_fs(fs: Any, why: str) -> float:
    if fs is None:
        raise InvalidInput(f"give the sample rate fs in Hz: {why}", field="fs")
    return float(fs)


def open_npy(path: Path, fs: Any) -> ArraySource:
    """A ``.npy`` file of shape ``(n_samples,)`` or ``(n_samples, n_channels)``."""
    fs = _need_fs(fs, ".npy files do not record one")
    with open(path, "rb") as file:
        try:
            major, _minor = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(file)
        except ValueError as exc:
            raise CorruptFile(f"not a valid .npy file: {exc}") from None
        offset = file.tell()
    if dtype.kind not in "iuf" or len(shape) not in (1, 2):
        raise UnsupportedFormat(f"a .npy signal must be numeric with 1 or 2 dimensions, not {dtype} {shape}")
    n_samples = shape[0]
    n_channels = shape[1] if len(shape) == 2 else 1
    expected = offset + n_samples * n_channels * dtype.itemsize
    if path.stat().st_size < expected:
        raise CorruptFile(f"the .npy file is truncated: {path.stat().st_size} bytes, its header promises {expected}",
                          size=path.stat().st_size, expected=expected)
    if n_samples == 0 or n_channels == 0:
        raise EmptyInput("the .npy file holds no samples")
    return ArraySource(path, dtype, n_samples, n_channels, fs, offset, fortran and n_channels > 1)


def open_raw(path: Path, dtype: Any, n_channels: Any, fs: Any) -> ArraySource:
    """Headerless interleaved samples: ``dtype`` (little-endian unless "<"/">" says), ``n_channels``."""
    if dtype is None:
        raise InvalidInput("raw binary needs its dtype", field="dtype", accepted=list(RAW_DTYPES))
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise InvalidInput(f"unknown dtype {dtype!r}", field="dtype", accepted=list(RAW_DTYPES)) from None
    if dtype.byteorder == "=":
        dtype = dtype.newbyteorder("<")
    if dtype.kind not in "iuf":
        raise InvalidInput(f"raw samples must be integers or floats, not {dtype}", field="dtype")
    fs = _need_fs(fs, "raw binary has no header")
    n_channels = int(n_channels)
    frame = dtype.itemsize * n_channels
    size = path.stat().st_size
    if size % frame:
        raise CorruptFile(f"the file's {size} bytes are not a whole number of {n_channels}-channel {dtype.name} "
                          f"frames ({frame} bytes each): truncated, or the dtype or channel count is wrong",
                          size=size, frame_bytes=frame)
    return ArraySource(path, dtype, size // frame, n_channels, fs)


class Selection:
    """Some channels of a source, chosen by name or 0-based index."""

    def __init__(self, source, channels: list):
        self.indices = [_column_index(c, list(source.channel_names), "channels") for c in channels]
        self.source = source
        self.n_samples, self.n_channels, self.fs = source.n_samples, len(self.indices), source.fs
        self.channel_names = [source.channel_names[i] for i in self.indices]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.source.read(start, stop)[:, self.indices]


class EdfSource:
    """EDF, EDF+ and BDF through pyedflib, in physical units. The channels read (all, or
    ``channels`` by label or index) must share one sample rate."""

    def __init__(self, path: Path, channels: list | None = None, annotations: bool = True):
        import pyedflib

        # EDF+ annotations are read from every data record: a header-only look skips them.
        mode = pyedflib.READ_ALL_ANNOTATIONS if annotations else pyedflib.DO_NOT_READ_ANNOTATIONS
        try:
            self.reader = pyedflib.EdfReader(str(path), mode)
        except OSError as exc:  # its message names the file's path on this server: not shown
            reason = str(exc).replace(str(path), "").strip(": ") or "unreadable header"
            raise CorruptFile(f"not a readable EDF/BDF file: {reason}") from None
        labels = self.reader.getSignalLabels()
        self.indices = [_column_index(c, labels, "channels") for c in channels] if channels else list(range(len(labels)))
        rates = {labels[i]: float(self.reader.getSampleFrequency(i)) for i in self.indices}
        if len(set(rates.values())) > 1:
            raise InvalidInput("the channels have different sample rates; choose channels of one rate with "
                             "the channels parameter", field="channels", rates=rates)
        lengths = {int(self.reader.getNSamples()[i]) for i in self.indices}
        self.channel_names = [labels[i] for i in self.indices]
        self.n_channels = len(self.indices)
        self.fs = next(iter(rates.values()), 0.0)
        self.n_samples = min(lengths, default=0)
        if self.n_samples == 0:
            raise EmptyInput("the EDF file holds no samples")

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.stack([self.reader.readSignal(i, start, stop - start) for i in self.indices], axis=1)


class WfdbSource:
    """A WFDB record (``.hea`` header and its signal files) uploaded as one zip."""

    def __init__(self, record_path: Path):
        import wfdb

        try:
            self.header = wfdb.rdheader(str(record_path))
        except Exception as exc:  # wfdb raises a variety of errors for bad headers
            raise CorruptFile(f"not a readable WFDB header: {exc}") from None
        self.record_path = record_path
        self.n_samples = int(self.header.sig_len or 0)
        self.n_channels = int(self.header.n_sig or 0)
        self.fs = float(self.header.fs)
        self.channel_names = list(self.header.sig_name or [])
        if self.n_samples == 0 or self.n_channels == 0:
            raise EmptyInput("the WFDB record holds no samples")

    @classmethod
    def from_zip(cls, path: Path, workdir: Path, header_only: bool = False,
                 unpack: UnpackLimits | None = None) -> "WfdbSource":
        """The record in the zip at ``path``, unpacked into ``workdir`` (with
        ``header_only``, its ``.hea`` member alone: what its signals are, not their samples)."""
        with open_zip(path, max_members=MAX_ZIP_MEMBERS) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            check_members(members, max_total_bytes=MAX_UNZIPPED_BYTES, max_members=MAX_ZIP_MEMBERS, limits=unpack)
            headers = [m for m in members if m.filename.lower().endswith(".hea")]
            if len(headers) != 1:
                raise UnsupportedFormat("a zip must hold exactly one WFDB record (one .hea file and its signal files)")
            if headers[0].file_size > MAX_HEADER_BYTES:
                raise TooLarge(f"the WFDB header is larger than {MAX_HEADER_BYTES} bytes", limit_bytes=MAX_HEADER_BYTES)
            target = workdir / "wfdb"
            target.mkdir(parents=True, exist_ok=True)
            for member in headers if header_only else members:  # flattened: names from the zip never become paths
                name = Path(member.filename).name
                if re.fullmatch(r"[\w.+-]{1,128}", name):
                    with archive.open(member) as src, open(target / name, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
        return cls(target / Path(headers[0].filename).stem)

    def read(self, start: int, stop: int) -> np.ndarray:
        import wfdb

        try:
            record = wfdb.rdrecord(str(self.record_path), sampfrom=start, sampto=stop, physical=True)
        except Exception as exc:
            raise CorruptFile(f"the WFDB signal file cannot be read: {exc}") from None
        if record.p_signal is None or record.p_signal.shape[0] != stop - start:
            raise CorruptFile("the WFDB signal file is shorter than its header says")
        return record.p_signal.astype(np.float64, copy=False)


def parse_csv(path: Path, target: Path, *, fs: Any = None, time_column: Any = None, time_unit: str = "s",
              columns: list | None = None, block_rows: int = 200_000) -> ArraySource:
    """Parse a CSV signal once into raw float64 rows at ``target`` and read those.

    A header row is detected (a first row that is not numeric). ``columns`` picks
    channels by header name or 0-based index (default: every column but the time
    column). The sample rate is ``fs`` or, with ``time_column``, the median step of
    that column (numbers in ``time_unit``, "s" or "ms", or ISO 8601 date-times).

    Raises ParseError naming the 1-based line of the first value that is not a number,
    TooLarge for a line longer than ``ml.text.MAX_LINE_BYTES``, InvalidInput for more than
    ``MAX_CSV_COLUMNS`` columns.
    """
    with open(path, "r", encoding="utf-8", errors="strict", newline="") as file:
        try:
            first = next((line for line in bounded_lines(file) if line.strip()), "")
        except UnicodeDecodeError:
            raise UnsupportedFormat("the CSV file is not UTF-8 text") from None
        delimiter = _delimiter(first)
        if first.count(delimiter) >= MAX_CSV_COLUMNS:
            raise InvalidInput(f"the CSV file has more than {MAX_CSV_COLUMNS} columns", field="file",
                             limit_columns=MAX_CSV_COLUMNS)
        cells = [c.strip().strip('"') for c in first.rstrip("\r\n").split(delimiter)]
        has_header = not all(_is_number(c) for c in cells if c != "")
        names = cells if has_header else [f"col{i}" for i in range(len(cells))]
        time_index = _column_index(time_column, names, "time_column") if time_column is not None else None
        if columns:
            keep = [_column_index(c, names, "channels") for c in columns]
        else:
            keep = [i for i in range(len(names)) if i != time_index]
        if not keep:
            raise InvalidInput("the CSV file has no signal column", field="channels")
        file.seek(0)
        lines = bounded_lines(file)
        line_number = 0
        if has_header:
            for line in lines:
                line_number += 1
                if line.strip():
                    break
        rows = 0
        times: list[np.ndarray] = []
        with open(target, "wb") as out:
            try:
                while block := list(itertools.islice(lines, block_rows)):
                    values, block_times = _parse_block(block, delimiter, keep, time_index, line_number)
                    line_number += len(block)
                    out.write(values.tobytes())
                    rows += values.shape[0]
                    if block_times is not None:
                        times.append(block_times)
            except UnicodeDecodeError:
                raise UnsupportedFormat(f"the CSV file is not UTF-8 text after line {line_number}") from None
    if rows == 0:
        raise EmptyInput("the CSV file holds no samples")
    if time_index is not None:
        fs = _fs_from_times(np.concatenate(times), time_unit)
    fs = _need_fs(fs, "or name a time_column in the CSV")
    return ArraySource(target, np.dtype("<f8"), rows, len(keep), fs, channel_names=[names[i] for i in keep])


def _delimiter(line: str) -> str:
    for candidate in (",", ";", "\t"):
        if candidate in line:
            return candidate
    return ","


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _column_index(column: Any, names: list[str], field_name: str) -> int:
    if isinstance(column, int) and 0 <= column < len(names):
        return column
    if isinstance(column, str) and column in names:
        return names.index(column)
    raise InvalidInput(f"no channel or column {column!r}; the file has {', '.join(names)}", field=field_name,
                     available=names)


def _parse_block(block: list[str], delimiter: str, keep: list[int], time_index: int | None, lines_before: int):
    rows = [line for line in block]
    try:
        values = np.loadtxt(io.StringIO("".join(rows)), delimiter=delimiter, usecols=keep, dtype=np.float64,
                            ndmin=2, comments=None, skiprows=0)
    except ValueError as exc:
        line = lines_before + _failing_row(rows, delimiter, keep) + 1
        raise ParseError(f"line {line}: not a number in a signal column ({exc})", line=line) from None
    times = None
    if time_index is not None:
        raw = [r.split(delimiter)[time_index].strip().strip('"') for r in rows if r.strip()]
        try:
            times = np.array(raw, dtype=np.float64)
        except ValueError:
            try:
                times = np.array(raw, dtype="datetime64[us]").astype(np.int64) / 1e6
            except ValueError:
                line = lines_before + 1
                raise ParseError(f"the time column has values that are neither numbers nor ISO dates, near line {line}",
                                 line=line) from None
    return values, times


def _failing_row(rows: list[str], delimiter: str, keep: list[int]) -> int:
    seen = -1
    for index, row in enumerate(rows):
        if not row.strip():
            continue
        seen = index
        cells = row.rstrip("\r\n").split(delimiter)
        if any(i >= len(cells) or not _is_number(cells[i].strip().strip('"')) for i in keep):
            return index
    return max(seen, 0)


def _fs_from_times(times: np.ndarray, unit: str) -> float:
    if times.size < 2:
        raise InvalidInput("the time column needs at least two samples to give a sample rate", field="time_column")
    step = float(np.median(np.diff(times)))
    step = step / 1000.0 if unit == "ms" else step
    if not step > 0:
        raise InvalidInput("the time column does not increase", field="time_column")
    return 1.0 / step
