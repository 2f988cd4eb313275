"""A pytest plugin: the machine's busy CPU seconds per test (all processes: the app servers, chromium, the
sampler processes a test starts), read from /proc/stat around each test. Serial runs only (-n0), on an
otherwise quiet machine: another process's CPU would count too.

Usage: PYTHONPATH=tests .venv/bin/python -m pytest -n0 -p cpu_profile [tests...]
prints the 25 tests that cost the most CPU, with their wall time, and the total per file (docs/testing.md)."""

from __future__ import annotations

import collections
import os
import time

import pytest

_TICK = os.sysconf("SC_CLK_TCK")
_rows: list[tuple[float, float, str]] = []


def busy_seconds() -> float:
    """CPU seconds every core has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        ticks = list(map(int, f.readline().split()[1:9]))  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = busy_seconds(), time.monotonic()
    yield
    _rows.append((busy_seconds() - cpu, time.monotonic() - wall, item.nodeid))


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
