"""CPU seconds per component, from /proc: a process tree's own time plus what its
reaped children left in the parent's cutime/cstime (PostgreSQL backends come and go)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["process_tree", "tree_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    total = 0
    for index, member in enumerate(process_tree(pid)):
        fields = _stat(member)
        if fields is None:
            continue
        # utime, stime at 11, 12 (after the ")" split); cutime, cstime at 13, 14.
        total += int(fields[11]) + int(fields[12])
        if index == 0:
            total += int(fields[13]) + int(fields[14])
    return total / _TICKS
