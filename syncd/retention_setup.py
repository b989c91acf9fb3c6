"""The configuration's ``[retention]`` table and per-folder ages, turned into plain values.

Config stays at the edge: the daemon and the CLI call these, and the retention job only ever sees
:class:`~syncd.retention_job.RetentionSettings` and an APScheduler trigger.
"""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Config, RetentionConfig
from syncd.retention import FolderPolicy
from syncd.retention_job import RetentionSettings

__all__ = ["retention_settings", "retention_trigger"]


def retention_settings(config: Config) -> RetentionSettings:
    """Policies keyed by folder (its absolute path, as the store knows it), plus the guards."""
    return RetentionSettings(
        policies={
            str(folder.path): FolderPolicy(
                max_age=folder.retention, keep_current=folder.keep_current
            )
            for folder in config.folders
            if folder.retention is not None
        },
        dry_run=config.retention.dry_run,
        max_deletes=config.retention.max_deletes_per_run,
        names={str(folder.path): folder.name for folder in config.folders},
    )


def retention_trigger(retention: RetentionConfig) -> IntervalTrigger | CronTrigger:
    """When the daemon runs retention: every interval, or on the cron expression, in UTC."""
    interval = retention.schedule_interval
    if interval is not None:
        return IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC)
    cron = retention.schedule_cron
    assert cron is not None  # the config accepts nothing else
    return CronTrigger.from_crontab(cron, timezone=UTC)
