"""The retention schedule: either an interval ("1h") or a 5-field cron expression ("0 3 * * *").

Only validation and classification live here; the daemon builds the APScheduler trigger.
"""

from __future__ import annotations

import re
from datetime import timedelta

from syncd.config.durations import DURATION_FORMS, parse_duration

__all__ = ["MIN_SCHEDULE_INTERVAL", "parse_schedule"]

#: Shorter intervals would only hammer the API with list calls.
MIN_SCHEDULE_INTERVAL = timedelta(seconds=1)

_SCHEDULE_FORMS = (
    f'an interval ({DURATION_FORMS}) or a 5-field cron expression such as "0 3 * * *" '
    "(minute hour day-of-month month day-of-week)"
)
_CRON_FIELDS = 5
_DIGIT = re.compile(r"\d")


def parse_schedule(text: str) -> timedelta | str:
    """Classify ``text`` as an interval (returned as ``timedelta``) or a cron expression (str).

    A cron expression comes back with its fields joined by single spaces.

    Raises:
        ValueError: neither form, or a cron field out of range; the message names both forms.
    """
    fields = text.split()
    if len(fields) == _CRON_FIELDS:
        return _check_cron(fields)
    try:
        interval = parse_duration(text)
    except ValueError:
        raise ValueError(f"expected {_SCHEDULE_FORMS}") from None
    if interval < MIN_SCHEDULE_INTERVAL:
        raise ValueError("an interval schedule must be at least 1s")
    return interval


def _check_cron(fields: list[str]) -> str:
    day_of_week = fields[4]
    # APScheduler 3 counts day-of-week from Monday = 0, while cron counts from Sunday = 0: a
    # numeric "0 3 * * 0" would silently run on Mondays. Names mean the same in both.
    if _DIGIT.search(day_of_week):
        raise ValueError(
            "cron day-of-week must use names (sun, mon, tue, wed, thu, fri, sat; ranges like "
            "mon-fri), not numbers: the scheduler would read 0 as Monday, unlike cron"
        )
    expression = " ".join(fields)
    try:
        from apscheduler.triggers.cron import CronTrigger  # 0.3 s: only for a cron schedule

        CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"invalid cron expression: {exc}") from None
    return expression
