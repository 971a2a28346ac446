"""Zero-phase IIR filtering of signals far larger than memory, exactly as ``sosfiltfilt``.

``scipy.signal.sosfiltfilt`` extends the signal at both ends by odd reflection
(``padlen = 3 * ntaps`` samples by default), filters it forwards from the steady state
``sosfilt_zi * ext[0]``, then backwards from ``sosfilt_zi * y[-1]``, and trims the
padding (Gustafsson's initial conditions are not used; SciPy's default "pad" method).
An IIR filter's whole memory is its state vector, so running ``sosfilt`` chunk by
chunk and carrying the state ``zf`` into the next chunk's ``zi`` performs the very same
arithmetic in the same order as one call on the whole array: the result is equal to
SciPy's to the last bit, whatever the chunk size, even chunks shorter than the padding.

Memory stays bounded and nothing of the signal's size is kept: the forward pass keeps
only the filter state at the start of each chunk; the backward pass walks the chunks
from the end, recomputes each chunk's forward output from its saved state (the same
arithmetic, so the same bits), filters it backwards, and writes the result to an
``.npy`` file with positioned writes (no memory map grows the resident set). The source
is read twice and the forward filter run twice, which costs less than writing and
reading back a float64 copy of the signal; a signal whose forward pass fits in
``KEEP_FORWARD_BYTES`` keeps it in memory instead.

References
----------
F. Gustafsson, "Determining the initial states in forward-backward filtering",
IEEE Transactions on Signal Processing 44(4), 988-992, 1996.
SciPy, ``scipy.signal.sosfiltfilt`` and ``scipy.signal.sosfilt_zi``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from scipy import signal

from ..errors import NonFiniteSample, SignalTooShort
from .summary import Envelope, RunningStats

Progress = Callable[[float, str], None]

DEFAULT_CHUNK = 1 << 20  # samples per channel per chunk
#: A chunk of all channels together holds at most this many bytes (float64 samples):
#: ``chunk_size`` is cut down for many channels. Sized by samples per channel alone, a
#: 32 MB raw upload declared as 1,024 channels took a worker to 1.3 GB.
MAX_CHUNK_BYTES = 16 * 1024**2
#: The min/max preview of all channels together holds at most this many bins (two
#: float64 values each): fewer points per channel for many channels.
MAX_PREVIEW_BINS = 1 << 18
#: A signal whose forward pass fits in this many bytes keeps it in memory instead of
#: recomputing it: small files then cost two filter passes, as in sosfiltfilt, not three.
KEEP_FORWARD_BYTES = 64 * 1024**2


class SignalSource(Protocol):
    """A multichannel signal read in blocks.

    ``read(start, stop)`` gives an array ``(stop - start, n_channels)`` of float32 or
    float64, the file's own floating type (integer samples come as float64): the odd
    extension is computed in that type, as ``sosfiltfilt`` computes it in its input's.
    """

    n_samples: int
    n_channels: int
    fs: float

    def read(self, start: int, stop: int) -> np.ndarray: ...


@dataclass
class MemorySource:
    """A signal held in memory as a ``SignalSource``: ``x`` of shape ``(n_samples,)`` or
    ``(n_samples, n_channels)``, sampled at ``fs`` Hz (for signals that fit in memory,
    and for examples and tests)."""

    x: np.ndarray
    fs: float

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64).reshape(len(self.x), -1)
        self.channel_names = [f"ch{i}" for i in range(self.n_channels)]

    @property
    def n_samples(self) -> int:
        return self.x.shape[0]

    @property
    def n_channels(self) -> int:
        return self.x.shape[1]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.x[start:stop]


NAN_POLICIES = ("raise", "interpolate")


def fill_non_finite(source: SignalSource, start: int, block: np.ndarray, policy: str) -> np.ndarray:
    """``block`` (samples ``start`` on) with NaN and infinities handled by ``policy``.

    "raise": NonFiniteSample naming the first bad sample's index and channel.
    "interpolate": each bad run is filled by linear interpolation between the finite
    samples around it (looked up beyond the block when the run crosses its edges); a
    run at the start or end of the signal takes the nearest finite value.
    """
    bad = ~np.isfinite(block)
    if not bad.any():
        return block
    names = getattr(source, "channel_names", None) or [str(i) for i in range(source.n_channels)]
    if policy == "raise":
        row, channel = np.argwhere(bad)[0]
        raise NonFiniteSample(f"sample {start + row} of channel {names[channel]} is {block[row, channel]}; "
                              f"use nan_policy=interpolate to fill such gaps", index=int(start + row),
                              channel=names[channel])
    block = np.array(block, dtype=np.float64)
    for channel in np.flatnonzero(bad.any(axis=0)):
        good = ~bad[:, channel]
        xp, fp = list(start + np.flatnonzero(good)), list(block[good, channel])
        if bad[0, channel]:
            before = _nearest_finite(source, channel, start - 1, -1)
            if before:
                xp.insert(0, before[0])
                fp.insert(0, before[1])
        if bad[-1, channel]:
            after = _nearest_finite(source, channel, start + block.shape[0], +1)
            if after:
                xp.append(after[0])
                fp.append(after[1])
        if not xp:
            raise NonFiniteSample(f"channel {names[channel]} has no finite sample", index=int(start),
                                  channel=names[channel])
        missing = np.flatnonzero(bad[:, channel])
        block[missing, channel] = np.interp(start + missing, xp, fp)
    return block


def _nearest_finite(source: SignalSource, channel: int, index: int, step: int, span: int = 65536):
    """(index, value) of the first finite sample of ``channel`` from ``index`` on in direction ``step``."""
    while 0 <= index < source.n_samples:
        lo, hi = (index, min(index + span, source.n_samples)) if step > 0 else (max(index - span + 1, 0), index + 1)
        column = source.read(lo, hi)[:, channel]
        finite = np.flatnonzero(np.isfinite(column))
        if finite.size:
            at = finite[0] if step > 0 else finite[-1]
            return lo + int(at), float(column[at])
        index = hi if step > 0 else lo - 1
    return None


def default_padlen(sos: np.ndarray) -> int:
    """``sosfiltfilt``'s default padding, in samples: 3 * (2 * sections + 1 - trailing zeros)."""
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


@dataclass
class FilterReport:
    """What a filtering run measured, per channel, before and after."""

    before: RunningStats
    after: RunningStats
    preview_before: Envelope
    preview_after: Envelope
    padlen: int
    chunks: int = 0

    def saw_input(self, start: int, block: np.ndarray) -> None:
        self.before.update(block)
        self.preview_before.update(start, block)

    def wrote_output(self, start: int, block: np.ndarray) -> None:
        self.after.update(block)
        self.preview_after.update(start, block)
        self.chunks += 1


class NpyWriter:
    """Writes a ``(n_samples, n_channels)`` ``.npy`` file block by block, at any position."""

    def __init__(self, path: Path, n_samples: int, n_channels: int, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.shape = (n_samples,) if n_channels == 1 else (n_samples, n_channels)
        self.row_bytes = self.dtype.itemsize * n_channels
        self.file = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.file, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                         "fortran_order": False, "shape": self.shape})
        self.offset = self.file.tell()
        self.file.truncate(self.offset + n_samples * self.row_bytes)

    def write(self, start: int, block: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(block, dtype=self.dtype)).cast("B")
        position = self.offset + start * self.row_bytes
        while data:  # pwrite may write less than asked
            written = os.pwrite(self.file.fileno(), data, position)
            data, position = data[written:], position + written

    def close(self) -> None:
        self.file.close()


def filter_source(
    source: SignalSource,
    sos: np.ndarray,
    out_path: Path,
    *,
    zero_phase: bool = True,
    nan_policy: str = "raise",
    out_dtype: str = "float32",
    chunk_size: int = DEFAULT_CHUNK,
    preview_points: int = 2000,
    progress: Progress | None = None,
) -> FilterReport:
    """Filter every channel of ``source`` with ``sos`` into the ``.npy`` file ``out_path``.

    Parameters
    ----------
    source : SignalSource
        The signal, ``n_samples`` by ``n_channels``, read in blocks.
    sos : ndarray, shape (n_sections, 6)
        Second-order sections (``ml.signals.design.design_sos``).
    out_path : Path
        Where the filtered signal is written, shape ``(n_samples,)`` for one channel or
        ``(n_samples, n_channels)``.
    zero_phase : bool
        True: forward-backward, equal to ``scipy.signal.sosfiltfilt(sos, x, axis=0)``.
        False: causal, equal to ``scipy.signal.sosfilt(sos, x, axis=0)``.
    nan_policy : {"raise", "interpolate"}
        What to do with NaN or infinite samples (see ``fill_non_finite``).
    out_dtype : {"float32", "float64"}
        Type of the written result; the computation is in float64 throughout.
    chunk_size : int
        Samples per channel read at once, at most MAX_CHUNK_BYTES of float64 samples of
        all channels together; memory is O(chunk_size * n_channels).
    progress : callable, optional
        ``progress(fraction, message)`` after every chunk; it may raise to stop.

    Returns
    -------
    FilterReport

    Raises
    ------
    SignalTooShort
        If the signal has no more samples than the padding (zero-phase only).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}")
    n, channels = source.n_samples, source.n_channels
    chunk_size = max(1, min(chunk_size, MAX_CHUNK_BYTES // (8 * channels)))
    preview_points = max(1, min(preview_points, MAX_PREVIEW_BINS // channels))
    padlen = default_padlen(sos) if zero_phase else 0
    if zero_phase and n <= padlen:
        raise SignalTooShort(f"the signal has {n} samples; this filter needs more than {padlen} "
                             f"(its padding at each end)", n_samples=n, padlen=padlen)
    report = FilterReport(RunningStats(channels), RunningStats(channels), Envelope(n, channels, preview_points),
                          Envelope(n, channels, preview_points), padlen)
    writer = NpyWriter(out_path, n, channels, np.dtype(out_dtype))
    try:
        if zero_phase:
            _zero_phase(source, sos, writer, chunk_size, report, progress, nan_policy)
        else:
            _causal(source, sos, writer, chunk_size, report, progress, nan_policy)
    finally:
        writer.close()
    return report


def _blocks(total: int, size: int):
    for start in range(0, total, size):
        yield start, min(start + size, total)


def _zero_phase(source, sos, writer, chunk_size, report: FilterReport, progress, nan_policy) -> None:
    n, edge = source.n_samples, report.padlen
    zi_unit = signal.sosfilt_zi(sos)[:, :, np.newaxis]  # (sections, 2, 1): broadcast over channels
    blocks = list(_blocks(n, chunk_size))
    total_chunks = 2 * len(blocks)

    def read(start: int, stop: int) -> np.ndarray:
        return fill_non_finite(source, start, source.read(start, stop), nan_policy)

    # The signal is extended by odd reflection at both ends, computed in the source's own
    # type as sosfiltfilt does: [left | x | right].
    first, last = read(0, 1)[0], read(n - 1, n)[0]
    left = 2 * first - read(1, edge + 1)[::-1]
    right = 2 * last - read(n - edge - 1, n - 1)[::-1]

    # Forward pass: keep only the filter state at the start of every block. The forward
    # output is recomputed, block by block, from these states during the backward pass:
    # the same arithmetic gives the same bits, and nothing of size n is written to disk.
    _, zi = signal.sosfilt(sos, left, axis=0, zi=zi_unit * left[0])
    states = []
    kept: list[np.ndarray] | None = []  # forward outputs, while they fit in KEEP_FORWARD_BYTES
    for done, (start, stop) in enumerate(blocks, 1):
        states.append(zi)
        raw = source.read(start, stop)
        report.saw_input(start, raw)
        forward, zi = signal.sosfilt(sos, fill_non_finite(source, start, raw, nan_policy), axis=0, zi=zi)
        if kept is not None:
            kept.append(forward)
            if sum(block.nbytes for block in kept) > KEEP_FORWARD_BYTES:
                kept = None  # too large to keep: recompute each block from its state instead
        if progress:
            progress(done / total_chunks, f"forward pass: {stop:,} of {n:,} samples")
    forward_right, _ = signal.sosfilt(sos, right, axis=0, zi=zi)

    # Backward pass, from the end: through the right padding (then dropped), then each block.
    _, zi = signal.sosfilt(sos, forward_right[::-1], axis=0, zi=zi_unit * forward_right[-1])
    for done, ((start, stop), state) in enumerate(zip(reversed(blocks), reversed(states)), len(blocks) + 1):
        if kept is not None:
            forward = kept.pop()
        else:
            forward, _ = signal.sosfilt(sos, read(start, stop), axis=0, zi=state)
        backward, zi = signal.sosfilt(sos, forward[::-1], axis=0, zi=zi)
        result = backward[::-1]
        writer.write(start, result)
        report.wrote_output(start, result)
        if progress:
            progress(done / total_chunks, f"backward pass: {n - start:,} of {n:,} samples")


def _causal(source, sos, writer, chunk_size, report: FilterReport, progress, nan_policy) -> None:
    n = source.n_samples
    zi = np.zeros((sos.shape[0], 2, source.n_channels))
    for start, stop in _blocks(n, chunk_size):
        raw = source.read(start, stop)
        report.saw_input(start, raw)
        y, zi = signal.sosfilt(sos, fill_non_finite(source, start, raw, nan_policy), axis=0, zi=zi)
        writer.write(start, y)
        report.wrote_output(start, y)
        if progress:
            progress(stop / n, f"{stop:,} of {n:,} samples")
