"""Ceilings on what one job may take, so that one job's input cannot take its machine:
memory (``memory_ceiling``) and disk (``DiskMeter``).

The memory ceiling is Linux's limit on a process's data segment (``RLIMIT_DATA``: its heap and
private writable mappings, where NumPy's arrays live), raised for the length of a job to
what the worker process held when the job started plus ``VITALQ_MAX_JOB_MEMORY_BYTES``.
An allocation beyond it fails at once (``MemoryError``), before the memory is touched:
the job ends ``MEMORY_LIMIT``, its arrays are freed as the error unwinds, and the
process goes on to its next job. The address-space limit (``RLIMIT_AS``) would count
what libraries only reserve (thread stacks, allocator arenas, OpenVINO's pools), and
watching the resident set from a thread comes too late for an allocation made at once.
"""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vitalq.errors import DiskLimit, MemoryLimit

from .storage import bytes_under


def data_segment_bytes() -> int:
    """This process's data segment now (``VmData``), in bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))


@contextmanager
def memory_ceiling(job_bytes: int) -> Iterator[None]:
    """Within the block, at most ``job_bytes`` more memory; beyond it, ``MemoryLimit``.
    ``job_bytes`` 0: no ceiling."""
    if job_bytes <= 0:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = data_segment_bytes() + job_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    except MemoryError:
        raise MemoryLimit(f"the job needed more than the {job_bytes / 1024**2:.0f} MiB of memory one job may "
                          "have", {"limit_bytes": job_bytes}) from None
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


class DiskMeter:
    """The disk a job's folders take (bytes of blocks written, so a sparse file counts
    what it holds), measured at most every ``interval_s`` seconds; ``check`` raises
    DiskLimit beyond ``limit_bytes`` (0: no limit). A job writes between its progress
    points, where it is checked: vitalq's kinds write their large outputs chunk by chunk,
    each chunk a progress point."""

    def __init__(self, folders: Callable[[], Iterable[Path]], limit_bytes: int, interval_s: float = 1.0):
        self.folders, self.limit_bytes, self.interval_s = folders, limit_bytes, interval_s
        self._checked = time.monotonic()

    def check(self, now: bool = False) -> None:
        if self.limit_bytes <= 0 or (not now and time.monotonic() - self._checked < self.interval_s):
            return
        self._checked = time.monotonic()
        used = sum(bytes_under(folder, allocated=True) for folder in self.folders())
        if used > self.limit_bytes:
            raise DiskLimit(f"the job wrote more than the {self.limit_bytes / 1024**2:.0f} MiB of disk one job may "
                            "fill", {"limit_bytes": self.limit_bytes})
