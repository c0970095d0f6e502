"""Measuring a command for the benchmarks: wall time, CPU time and peak resident memory of its process tree."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    rss = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0.0)
        stack.extend(children.get(current, []))
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes) since boot, from /proc/stat (Linux)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def run_measured(cmd: list[str], interval_s: float = 0.2) -> dict:
    """Run ``cmd``, sampling the resident memory of its process tree every ``interval_s`` seconds (Linux /proc).

    Returns ``wall`` (s), ``cpu`` (user + system s of the finished children), ``peak_mb`` (MB, sum over the tree,
    sampled), ``largest_mb`` (MB, the largest single child process, from getrusage), ``returncode`` and
    ``output`` (stdout and stderr together), and ``machine_cores``: how many cores the whole machine kept busy
    on average meanwhile (every process; ``cpu / wall`` well below it means other processes took the rest).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = machine_busy_s()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(interval_s)
    wall = time.perf_counter() - start
    machine_cores = (machine_busy_s() - busy_before) / wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mb": peak, "largest_mb": after.ru_maxrss / 1e3,
            "returncode": proc.returncode, "output": proc.stdout.read(), "machine_cores": machine_cores}
