"""The configuration's ``[retention]`` table and per-folder ages, turned into plain values.

Config stays at the edge: the daemon and the CLI call these, and the retention job only ever sees
:class:`~syncd.retention_job.RetentionSettings` and an APScheduler trigger.
"""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import Config, RetentionConfig
from syncd.folder_specs import folder_spec
from syncd.retention import FolderPolicy
from syncd.retention_job import RetentionSettings

__all__ = ["retention_settings", "retention_trigger"]


def retention_settings(config: Config) -> RetentionSettings:
    """Policies keyed by folder (its key in the store), plus the guards."""
    keyed = [(folder_spec(folder, config.node.name).key, folder) for folder in config.folders]
    return RetentionSettings(
        policies={
            key: FolderPolicy(max_age=folder.retention, keep_current=folder.keep_current)
            for key, folder in keyed
            if folder.retention is not None
        },
        dry_run=config.retention.dry_run,
        max_deletes=config.retention.max_deletes_per_run,
        names={key: folder.name for key, folder in keyed},
        # The unmounted guard looks at the folder where this node mounts it.
        roots={key: folder.path for key, folder in keyed},
    )


def retention_trigger(retention: RetentionConfig) -> IntervalTrigger | CronTrigger:
    """When the daemon runs retention: every interval, or on the cron expression, in UTC."""
    interval = retention.schedule_interval
    if interval is not None:
        return IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC)
    cron = retention.schedule_cron
    assert cron is not None  # the config accepts nothing else
    return CronTrigger.from_crontab(cron, timezone=UTC)
