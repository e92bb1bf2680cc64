"""Retention: old days of readings to object storage (Parquet), verified, then dropped;
and back."""

from sensorium.archive._archiver import (
    ArchiveError,
    DayResult,
    archivable_days,
    archive_day,
    restore_day,
)
from sensorium.archive._store import ObjectStore, StoreOptions

__all__ = [
    "ArchiveError",
    "DayResult",
    "ObjectStore",
    "StoreOptions",
    "archivable_days",
    "archive_day",
    "restore_day",
]
