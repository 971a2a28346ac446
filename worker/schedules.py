"""Calibration schedules as people write them, turned into Celery schedules.

Accepted: a crontab line of five fields (minute hour day-of-month month day-of-week,
in UTC, as ``crontab(5)`` reads them), the shorthands ``@hourly``, ``@daily``,
``@weekly`` and ``@monthly``, and ``@every <n><s|m|h|d>`` for a fixed interval
(robfig/cron's spelling).
"""

from __future__ import annotations

import re
from datetime import timedelta

from celery.schedules import crontab, schedule

from vitalq.errors import InvalidInput

_SHORTHANDS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
               "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}
_EVERY = re.compile(r"^@every\s+(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The shortest interval accepted: a calibration takes seconds, and the device runs one job at a time.
MIN_INTERVAL_S = 1.0


def parse_schedule(text: str) -> schedule:
    """The Celery schedule for ``text``; raises InvalidInput naming the field ``schedule``."""
    spec = " ".join(str(text).split())
    spec = _SHORTHANDS.get(spec, spec)
    every = _EVERY.match(spec)
    if every:
        seconds = float(every.group(1)) * _UNIT_S[every.group(2)]
        if seconds < MIN_INTERVAL_S:
            raise _invalid(text, f"the interval must be at least {MIN_INTERVAL_S:g} s")
        return schedule(timedelta(seconds=seconds))
    fields = spec.split(" ")
    if len(fields) != 5:
        raise _invalid(text, "expected five crontab fields (minute hour day-of-month month day-of-week), "
                             "@hourly, @daily, @weekly, @monthly or '@every 6h'")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except ValueError as exc:
        raise _invalid(text, str(exc)) from None


def _invalid(text: str, why: str) -> InvalidInput:
    return InvalidInput(f"invalid schedule {text!r}: {why}", {"fields": {"schedule": why}})
