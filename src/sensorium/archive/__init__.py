"""Retention: old days of readings to object storage (Parquet), verified, then dropped;
and back."""

from sensorium.archive._archiver import (
    ArchiveError,
    ArchiveStatistics,
    DayResult,
    archivable_days,
    archive_day,
    archive_due_days,
    keep_archiving,
    restore_day,
)
from sensorium.archive._metrics import ArchiveCollector
from sensorium.archive._store import ObjectStore, StoreOptions, store_of

__all__ = [
    "ArchiveCollector",
    "ArchiveError",
    "ArchiveStatistics",
    "DayResult",
    "ObjectStore",
    "StoreOptions",
    "archivable_days",
    "archive_day",
    "archive_due_days",
    "keep_archiving",
    "restore_day",
    "store_of",
]
