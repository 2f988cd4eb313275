"""A pytest plugin: the CPU seconds each test costs, its own and those of every process it starts (the app
servers, chromium, the sampler processes), read from /proc around each test: this process and its live
descendants, with the children they have reaped. Serial runs only (-n0); other processes on the machine do not
count, though they slow the test down.

Usage: PYTHONPATH=tests .venv/bin/python -m pytest -n0 -p cpu_profile [tests...]
prints the 25 tests that cost the most CPU, with their wall time, and the total per file (docs/testing.md).
With CPU_PROFILE_LOG=file, each test process (each pytest-xdist worker too) also appends a JSON line per test
to it: worker, start (Unix time), cpu, wall, test; a parallel run's timeline."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time

import pytest

_TICK = os.sysconf("SC_CLK_TCK")
_rows: list[tuple[float, float, str]] = []


def _stat(pid: int) -> tuple[int, int]:
    """(parent PID, CPU ticks of the process and of the children it has reaped)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(map(int, fields[11:15]))  # ppid; utime stime cutime cstime


def process_seconds(pid: int) -> float:
    """CPU seconds spent so far by process ``pid`` and the children it has reaped."""
    return _stat(pid)[1] / _TICK


def busy_seconds() -> float:
    """CPU seconds spent so far by this process and its live descendants, with the children they reaped."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):  # gone meanwhile
                stats[int(entry)] = _stat(int(entry))
    children = collections.defaultdict(list)
    for pid, (ppid, _) in stats.items():
        children[ppid].append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += children[pid]
    return total / _TICK


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall, start = busy_seconds(), time.monotonic(), time.time()
    yield
    _rows.append((busy_seconds() - cpu, time.monotonic() - wall, item.nodeid))
    if os.environ.get("CPU_PROFILE_LOG"):
        with open(os.environ["CPU_PROFILE_LOG"], "a") as f:
            f.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "start": start,
                                "cpu": _rows[-1][0], "wall": _rows[-1][1], "test": item.nodeid}) + "\n")


def pytest_terminal_summary(terminalreporter):
    if not _rows:
        return
    w = terminalreporter
    rows = sorted(_rows, reverse=True)
    w.section("busy CPU seconds per test (all processes)")
    w.line(f"total {sum(r[0] for r in rows):.0f} s of CPU over {sum(r[1] for r in rows):.0f} s of tests")
    for cpu, wall, node in rows[:25]:
        w.line(f"{cpu:7.1f} s CPU {wall:7.1f} s wall  {node}")
    files = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for cpu, wall, node in rows:
        f = files[node.split("::")[0]]
        f[0], f[1], f[2] = f[0] + cpu, f[1] + wall, f[2] + 1
    w.line("per file:")
    for name, (cpu, wall, n) in sorted(files.items(), key=lambda kv: -kv[1][0])[:15]:
        w.line(f"{cpu:7.1f} s CPU {wall:7.1f} s wall  {n:4d} tests  {name}")
