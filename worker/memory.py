"""A memory ceiling for each job, so that one job's input cannot take its machine.

The ceiling is Linux's limit on a process's data segment (``RLIMIT_DATA``: its heap and
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
from contextlib import contextmanager
from typing import Iterator

from vitalq.errors import MemoryLimit


def data_segment_bytes() -> int:
    """This process's data segment now (``VmData``), in bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))


@contextmanager
def ceiling(job_bytes: int) -> Iterator[None]:
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
