"""Per-channel statistics and plotting envelopes, accumulated block by block."""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Count, mean, standard deviation and RMS of each channel's finite samples, plus
    the count of non-finite ones, merged across blocks with Chan et al.'s pairwise
    update, which stays accurate where sums of squares would cancel (a PPG trace with a
    large offset).

    Reference: T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise
    algorithm for computing sample variances", Stanford CS report STAN-CS-79-773, 1979.
    """

    def __init__(self, channels: int):
        self.count = np.zeros(channels)
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)
        self.mean_square = np.zeros(channels)
        self.non_finite = np.zeros(channels, dtype=np.int64)

    def update(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64)
        count = np.full(block.shape[1], block.shape[0], dtype=float)
        total_sum = block.sum(axis=0)
        if np.isfinite(total_sum).all():  # a NaN or infinity would have made its sum non-finite
            mean = total_sum / np.maximum(count, 1)
            square_sum = np.einsum("ij,ij->j", block, block)
            # Per block, sums of squares about the block's mean; the shift keeps them accurate.
            m2 = np.maximum(square_sum - count * mean**2, 0.0)
            if (m2 < 1e-6 * square_sum).any():  # too much cancelled: take the slow, exact road
                m2 = ((block - mean) ** 2).sum(axis=0)
            mean_square = square_sum / np.maximum(count, 1)
        else:
            finite = np.isfinite(block)
            self.non_finite += (~finite).sum(axis=0)
            clean = np.where(finite, block, 0.0)
            count = finite.sum(axis=0).astype(float)
            safe = np.maximum(count, 1)
            mean = clean.sum(axis=0) / safe
            m2 = (np.where(finite, block - mean, 0.0) ** 2).sum(axis=0)
            mean_square = (clean * clean).sum(axis=0) / safe
        total = self.count + count
        weight = np.divide(count, total, out=np.zeros_like(total), where=total > 0)
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * self.count * weight
        self.mean += delta * weight
        self.mean_square += (mean_square - self.mean_square) * weight
        self.count = total

    def to_dict(self, channel: int) -> dict[str, float | int]:
        count = int(self.count[channel])
        std = float(np.sqrt(self.m2[channel] / count)) if count else float("nan")
        return {"samples": count, "mean": float(self.mean[channel]) if count else None,
                "std": std if count else None, "rms": float(np.sqrt(self.mean_square[channel])) if count else None,
                "non_finite": int(self.non_finite[channel])}


class Envelope:
    """A min/max envelope of each channel in at most ``points`` bins, for plotting: every
    spike survives, however long the signal. Bin ``i`` covers samples
    ``[ceil(i * n / bins), ceil((i + 1) * n / bins))``."""

    def __init__(self, n_samples: int, channels: int, points: int = 2000):
        self.n = n_samples
        self.bins = max(1, min(points, n_samples))
        self.low = np.full((self.bins, channels), np.inf)
        self.high = np.full((self.bins, channels), -np.inf)

    def update(self, start: int, block: np.ndarray) -> None:
        # The bins that meet this block, from the bin edges: O(bins), not O(samples).
        stop = start + block.shape[0]
        first_bin, last_bin = start * self.bins // self.n, (stop - 1) * self.bins // self.n
        bins = np.arange(first_bin, last_bin + 1)
        starts = np.maximum(-(-bins * self.n // self.bins), start) - start
        with np.errstate(invalid="ignore"):
            self.low[bins] = np.minimum(self.low[bins], np.fmin.reduceat(block, starts, axis=0))
            self.high[bins] = np.maximum(self.high[bins], np.fmax.reduceat(block, starts, axis=0))

    def first_sample_of_bins(self) -> np.ndarray:
        return -(-np.arange(self.bins, dtype=np.int64) * self.n // self.bins)

    def to_dict(self, channel: int) -> dict[str, list]:
        def clean(values):  # JSON has no infinity: an empty bin (all NaN) is null
            finite = np.isfinite(values)
            listed = values.tolist()
            if finite.all():
                return listed
            return [value if keep else None for value, keep in zip(listed, finite.tolist())]

        return {"min": clean(self.low[:, channel]), "max": clean(self.high[:, channel])}
