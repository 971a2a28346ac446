"""The chunked zero-phase filter against SciPy, every reader, and bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from ml.errors import CorruptFile, EmptyInput, NonFiniteSample, ParseError, UnsupportedFormat
from ml.signals import FilterSpec, default_padlen, design_sos, filter_source, open_signal, sniff
from ml.signals.chunked import SignalTooShort
from ml.signals.design import FilterDesignError

FS = 250.0


class ArraySignal:
    """An in-memory source, as a reader would give."""

    def __init__(self, x: np.ndarray, fs: float = FS):
        self.x = x if x.ndim == 2 else x[:, None]
        self.n_samples, self.n_channels = self.x.shape
        self.fs = fs
        self.channel_names = [f"ch{i}" for i in range(self.n_channels)]

    def read(self, start, stop):
        return np.array(self.x[start:stop])


def run(source, sos, tmp_path, **options) -> np.ndarray:
    out = tmp_path / "out.npy"
    filter_source(source, sos, out, out_dtype="float64", **options)
    y = np.load(out)
    return y if y.ndim == 2 else y[:, None]


SPECS = [
    FilterSpec("butter", "bandpass", (0.5, 8.0), 4),
    FilterSpec("cheby1", "lowpass", (40.0,), 6, ripple_db=0.5),
    FilterSpec("cheby2", "highpass", (0.7,), 3, attenuation_db=50),
    FilterSpec("bessel", "bandstop", (45.0, 55.0), 2),
    FilterSpec("ellip", "bandpass", (1.0, 30.0), 5, ripple_db=1, attenuation_db=60),
    FilterSpec(None, notch_hz=50.0, notch_harmonics=2),
    FilterSpec("butter", "bandpass", (0.5, 40.0), 4, notch_hz=60.0),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.family}-{s.btype}-{s.notch_hz}")
@pytest.mark.parametrize("n, channels, chunk", [(10_007, 1, 1000), (4_099, 3, 7), (257, 2, 1), (60_000, 1, 59_999)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_phase_equals_sosfiltfilt_to_the_bit(spec, n, channels, chunk, dtype, tmp_path, rng):
    sos = design_sos(spec, FS)
    assert n > default_padlen(sos)  # every case is long enough to filter: none is skipped
    x = (rng.standard_normal((n, channels)) * 50 + 500).astype(dtype)
    np.testing.assert_array_equal(run(ArraySignal(x), sos, tmp_path, chunk_size=chunk),
                                  signal.sosfiltfilt(sos, x, axis=0))


@pytest.mark.parametrize("spec", SPECS[:3] + SPECS[-1:], ids=lambda s: f"{s.family}-{s.btype}")
@pytest.mark.parametrize("chunk", [7, 1000, 4096])
def test_forward_pass_recomputed_from_saved_states_is_just_as_exact(spec, chunk, tmp_path, monkeypatch, rng):
    """Signals too large to keep their forward pass recompute it block by block."""
    import ml.signals.chunked

    monkeypatch.setattr(ml.signals.chunked, "KEEP_FORWARD_BYTES", 0)
    sos = design_sos(spec, FS)
    x = (rng.standard_normal((20_011, 2)) * 50 + 500).astype(np.float32)
    np.testing.assert_array_equal(run(ArraySignal(x), sos, tmp_path, chunk_size=chunk),
                                  signal.sosfiltfilt(sos, x, axis=0))


def test_chunks_and_preview_are_bounded_by_bytes_across_channels(tmp_path, rng, monkeypatch):
    """Chunks were sized by samples per channel alone: a 32 MB raw upload declared as
    1,024 channels took a worker to 1.3 GB. Now the chunk of all channels together (and
    the preview) is bounded by bytes, and the result is still SciPy's to the bit."""
    import ml.signals.chunked

    monkeypatch.setattr(ml.signals.chunked, "MAX_CHUNK_BYTES", 8 * 512 * 100)  # 100 samples of 512 channels
    monkeypatch.setattr(ml.signals.chunked, "MAX_PREVIEW_BINS", 512 * 50)
    x = rng.standard_normal((3_001, 512))

    class Watched(ArraySignal):
        largest = 0

        def read(self, start, stop):
            Watched.largest = max(Watched.largest, (stop - start) * self.n_channels * 8)
            return super().read(start, stop)

    sos = design_sos(SPECS[0], FS)
    out = tmp_path / "out.npy"
    report = filter_source(Watched(x), sos, out, out_dtype="float64", chunk_size=1 << 20, preview_points=2000)
    assert 0 < Watched.largest <= 8 * 512 * 100
    assert report.preview_before.bins == 50
    np.testing.assert_array_equal(np.load(out), signal.sosfiltfilt(sos, x, axis=0))


def test_causal_equals_sosfilt(tmp_path, rng):
    sos = design_sos(SPECS[0], FS)
    x = rng.standard_normal((9_999, 2))
    np.testing.assert_array_equal(run(ArraySignal(x), sos, tmp_path, zero_phase=False, chunk_size=1234),
                                  signal.sosfilt(sos, x, axis=0))


def test_float32_output_is_the_rounded_result(tmp_path, rng):
    sos = design_sos(SPECS[0], FS)
    x = rng.standard_normal(5_000)
    filter_source(ArraySignal(x), sos, tmp_path / "y.npy", out_dtype="float32", chunk_size=999)
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == (5_000,)
    np.testing.assert_array_equal(y, signal.sosfiltfilt(sos, x).astype(np.float32))


def test_summary_and_envelope_match_numpy_and_keep_spikes(tmp_path, rng):
    sos = design_sos(FilterSpec("butter", "lowpass", (5.0,), 2), FS)
    x = rng.standard_normal(100_003) + 700.0
    x[54_321] = 2_000.0  # one spike
    report = filter_source(ArraySignal(x), sos, tmp_path / "y.npy", out_dtype="float64", chunk_size=4096,
                           preview_points=500)
    y = np.load(tmp_path / "y.npy")
    before, after = report.before.to_dict(0), report.after.to_dict(0)
    assert before["samples"] == after["samples"] == x.size
    assert before["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert before["std"] == pytest.approx(x.std(), rel=1e-9)
    assert before["rms"] == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-12)
    assert after["std"] == pytest.approx(y.std(), rel=1e-9)
    envelope = report.preview_before.to_dict(0)
    assert len(envelope["max"]) == 500 and max(envelope["max"]) == 2_000.0
    assert min(envelope["min"]) == x.min()


def test_non_finite_samples_fail_with_the_first_index_or_are_interpolated(tmp_path, rng):
    sos = design_sos(SPECS[0], FS)
    x = rng.standard_normal((20_000, 2))
    x[5_000:5_010, 1] = np.nan
    x[12_345, 0] = np.inf
    x[:3, 0] = np.nan  # a leading run takes the nearest finite value
    with pytest.raises(NonFiniteSample) as failure:
        run(ArraySignal(x), sos, tmp_path, chunk_size=1000)
    assert failure.value.details == {"index": 0, "channel": "ch0"}

    filled = x.copy()
    for channel in range(2):
        bad = ~np.isfinite(filled[:, channel])
        filled[bad, channel] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), filled[~bad, channel])
    # Runs cross chunk edges (chunk 1003): interpolation looks beyond the block.
    result = run(ArraySignal(x), sos, tmp_path, chunk_size=1003, nan_policy="interpolate")
    np.testing.assert_array_equal(result, signal.sosfiltfilt(sos, filled, axis=0))


def test_signal_shorter_than_the_padding_is_refused(tmp_path, rng):
    sos = design_sos(SPECS[0], FS)
    with pytest.raises(SignalTooShort, match="needs more than"):
        run(ArraySignal(rng.standard_normal(default_padlen(sos))), sos, tmp_path)


@pytest.mark.parametrize("spec, fs, field", [
    (FilterSpec("butter", "lowpass", (50.0,)), 100.0, "cutoff_hz"),
    (FilterSpec("butter", "highpass", (0.0,)), 100.0, "cutoff_hz"),
    (FilterSpec("butter", "bandpass", (8.0, 0.5)), 100.0, "cutoff_hz"),
    (FilterSpec("butter", "bandpass", (5.0,)), 100.0, "cutoff_hz"),
    (FilterSpec("butter", "lowpass", (5.0,), order=13), 100.0, "order"),
    (FilterSpec("chebyshev", "lowpass", (5.0,)), 100.0, "family"),
    (FilterSpec(None, notch_hz=60.0), 100.0, "notch_hz"),
    (FilterSpec(None), 100.0, "family"),
    (FilterSpec("ellip", "bandpass", (1.0, 30.0), 4, ripple_db=50, attenuation_db=40), 250.0, "ripple_db"),
    (FilterSpec("ellip", "bandpass", (1.0, 30.0), 4, ripple_db=1e-300), 250.0, "ripple_db"),
    (FilterSpec("cheby1", "bandpass", (1.0, 30.0), 4, ripple_db=1e-300), 250.0, "ripple_db"),
])
def test_filter_design_checks_against_the_sample_rate(spec, fs, field):
    with pytest.raises(FilterDesignError) as failure:
        design_sos(spec, fs)
    assert failure.value.details["field"] == field


# --- every format, read in blocks and filtered exactly --------------------------------------


def write_edf(path: Path, data: np.ndarray, fs: float, bdf: bool = False) -> np.ndarray:
    """Writes ``data`` (samples x channels) and returns the physical values as stored."""
    import pyedflib

    kind = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    with pyedflib.EdfWriter(str(path), data.shape[1], file_type=kind) as writer:
        headers = [{"label": f"PPG{i}", "dimension": "uV", "sample_frequency": fs,
                    "physical_min": -1000.0, "physical_max": 1000.0,
                    "digital_min": -8388608 if bdf else -32768, "digital_max": 8388607 if bdf else 32767}
                   for i in range(data.shape[1])]
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.ascontiguousarray(data[:, i]) for i in range(data.shape[1])])
    with pyedflib.EdfReader(str(path)) as reader:
        return np.stack([reader.readSignal(i) for i in range(data.shape[1])], axis=1)


def make_file(fmt: str, tmp_path: Path, rng: np.random.Generator) -> tuple[Path, dict, np.ndarray]:
    """A file of ``fmt``, the params to read it, and the samples it holds."""
    fs = 128.0
    x = np.cumsum(rng.standard_normal((7_777, 3)), axis=0) * 10
    if fmt == "npy":
        np.save(tmp_path / "s.npy", x.astype(np.float32))
        return tmp_path / "s.npy", {"fs": fs}, x.astype(np.float32)
    if fmt == "npy-fortran":
        np.save(tmp_path / "s.npy", np.asfortranarray(x))
        return tmp_path / "s.npy", {"fs": fs}, x
    if fmt == "raw-int16":
        samples = np.clip(x, -32768, 32767).astype("<i2")
        samples.tofile(tmp_path / "s.bin")
        return tmp_path / "s.bin", {"format": "raw", "dtype": "int16", "n_channels": 3, "fs": fs}, samples.astype(float)
    if fmt == "raw-f4-big":
        samples = x.astype(">f4")
        samples.tofile(tmp_path / "s.dat")
        return tmp_path / "s.dat", {"format": "raw", "dtype": ">f4", "n_channels": 3, "fs": fs}, samples.astype(float)
    if fmt == "csv-header-time":
        times = np.arange(x.shape[0]) / fs * 1000.0
        rows = "\n".join(f"{t:.6f},{a:.6f},{b:.6f}" for t, a, b in zip(times, x[:, 0], x[:, 1]))
        (tmp_path / "s.csv").write_text("time_ms,red,ir\n" + rows + "\n")
        values = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1, usecols=(1, 2))
        return tmp_path / "s.csv", {"time_column": "time_ms", "time_unit": "ms"}, values
    if fmt == "csv-plain":
        np.savetxt(tmp_path / "s.txt", x[:, :1], fmt="%.5f")
        return tmp_path / "s.txt", {"fs": fs}, np.loadtxt(tmp_path / "s.txt")[:, None]
    if fmt in ("edf", "bdf"):
        path = tmp_path / f"s.{fmt}"
        return path, {}, write_edf(path, np.clip(x, -999, 999), fs, bdf=fmt == "bdf")
    if fmt == "wfdb":
        import wfdb

        wfdb.wrsamp("rec", fs=fs, units=["mV"] * 3, sig_name=["I", "II", "V1"], p_signal=x / 100,
                    fmt=["16"] * 3, write_dir=str(tmp_path))
        stored = wfdb.rdrecord(str(tmp_path / "rec")).p_signal
        with zipfile.ZipFile(tmp_path / "rec.zip", "w") as archive:
            archive.write(tmp_path / "rec.hea", "rec.hea")
            archive.write(tmp_path / "rec.dat", "rec.dat")
        return tmp_path / "rec.zip", {}, stored
    raise AssertionError(fmt)


FORMAT_CASES = ["npy", "npy-fortran", "raw-int16", "raw-f4-big", "csv-header-time", "csv-plain", "edf", "bdf", "wfdb"]


@pytest.mark.parametrize("fmt", FORMAT_CASES)
def test_every_format_is_filtered_exactly(fmt, tmp_path, rng):
    path, params, samples = make_file(fmt, tmp_path, rng)
    source = open_signal(path, params, tmp_path)
    assert source.fs == pytest.approx(128.0)
    assert (source.n_samples, source.n_channels) == samples.shape
    sos = design_sos(FilterSpec("butter", "bandpass", (0.5, 20.0), 3), source.fs)
    result = run(source, sos, tmp_path, chunk_size=1000)
    np.testing.assert_array_equal(result, signal.sosfiltfilt(sos, samples, axis=0))


def test_channels_are_chosen_by_name_or_index(tmp_path, rng):
    path, params, samples = make_file("edf", tmp_path, rng)
    source = open_signal(path, {**params, "channels": ["PPG2", 0]}, tmp_path)
    assert source.channel_names == ["PPG2", "PPG0"]
    np.testing.assert_array_equal(source.read(10, 20), samples[10:20][:, [2, 0]])


@pytest.mark.parametrize("fmt, expected", [("npy", "npy"), ("edf", "edf"), ("bdf", "bdf"), ("wfdb", "wfdb"),
                                           ("csv-plain", "csv")])
def test_format_is_recognised_from_content_not_name(fmt, expected, tmp_path, rng):
    path, _, _ = make_file(fmt, tmp_path, rng)
    disguised = path.rename(tmp_path / "upload.bin")
    assert sniff(disguised) == expected


@pytest.mark.parametrize("content, params, error, detail", [
    (b"", {}, EmptyInput, None),
    (bytes(range(256)) * 8, {}, UnsupportedFormat, None),
    (b"\x00" * 1001, {"format": "raw", "dtype": "int16", "n_channels": 2, "fs": 100}, CorruptFile, None),
    (b"1.0\n2.0\n3.5\nabc\n4.0\n", {"fs": 10}, ParseError, {"line": 4}),
    (b"t,v\n0,1\n1,2\n2,x\n", {"time_column": "t"}, ParseError, {"line": 4}),
])
def test_bad_files_raise_their_codes(content, params, error, detail, tmp_path):
    path = tmp_path / "upload"
    path.write_bytes(content)
    with pytest.raises(error) as failure:
        open_signal(path, params, tmp_path)
    if detail:
        assert failure.value.details == detail


def test_truncated_npy_is_corrupt(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros(1000))
    data = (tmp_path / "s.npy").read_bytes()
    (tmp_path / "s.npy").write_bytes(data[:-10])
    with pytest.raises(CorruptFile, match="truncated"):
        open_signal(tmp_path / "s.npy", {"fs": 10}, tmp_path)


MEMORY_CHILD = """
import sys
from pathlib import Path
from ml.signals import FilterSpec, design_sos, filter_source, open_signal
source = open_signal(Path(sys.argv[1]), {"fs": 250.0}, Path(sys.argv[2]).parent)
filter_source(source, design_sos(FilterSpec("butter", "bandpass", (0.5, 8.0), 4), 250.0), Path(sys.argv[2]))
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


@pytest.mark.slow
def test_memory_stays_bounded_on_a_signal_larger_than_the_bound(tmp_path):
    """Zero-phase filtering of a 300 MB recording peaks well under its size (in memory,
    sosfiltfilt would hold it twice over as float64); run in a process of its own so the
    peak resident set is the filter's alone."""
    import subprocess
    import sys

    samples = 75_000_000  # float32: 300 MB
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(samples,))
    for start in range(0, samples, 5_000_000):
        big[start:start + 5_000_000] = np.sin(np.arange(start, start + 5_000_000) * (2 * np.pi * 1.2 / 250.0))
    big.flush()
    del big
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path / "big.npy"), str(tmp_path / "out.npy")],
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024
    assert peak_mb < 256, f"peak resident memory {peak_mb:.0f} MB for a 300 MB file"
    out = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert out.shape == (samples,) and 0.9 < float(np.abs(out[10_000_000:10_100_000]).max()) < 1.1  # the pulse band kept


def test_the_job_s_filter_defaults_are_filter_spec_s():
    from worker.kinds import get_kind

    filled = get_kind("signal.filter").validate({"fs": 100})
    assert FilterSpec.from_params(filled) == FilterSpec() == FilterSpec.from_params({})
    # One cutoff as a number, as SciPy takes Wn; "none" is the notch alone.
    assert FilterSpec.from_params({"btype": "lowpass", "cutoff_hz": 5}).cutoff_hz == (5.0,)
    assert FilterSpec.from_params({"family": "none", "notch_hz": 50}).family is None
