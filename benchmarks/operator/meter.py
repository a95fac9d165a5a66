"""Readings of the operator process from outside it: CPU seconds and memory from /proc.

The benchmark never asks the operator how it is doing; it reads what the kernel accounts
to the operator's pid, so the figures include everything the process does (kopf, the
Kubernetes client, boto3, the garbage collector), and the machine's load average next to
each figure says how busy the shared machine was while it was taken.
"""

import dataclasses
import math
import os
import time
from collections.abc import Sequence

__all__ = ["Meter", "Window", "percentile"]

_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(max(math.ceil(fraction * len(ordered)), 1), len(ordered))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True)
class Window:
    """What the operator consumed between two readings."""

    seconds: float
    cpu_seconds: float
    rss_mib: float  # at the end of the window
    peak_rss_mib: float  # the process's high-water mark so far (VmHWM)
    load: tuple[float, float]  # 1-minute load average at the start and at the end

    @property
    def cpu_share(self) -> float:
        """Percent of one core."""
        return 100.0 * self.cpu_seconds / self.seconds if self.seconds else float("nan")

    @property
    def load_note(self) -> str:
        return f"{self.load[0]:.1f}-{self.load[1]:.1f}"


class Meter:
    """CPU and RSS of one pid, from /proc/<pid>/stat and /proc/<pid>/status."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as handle:
            # The command name may hold spaces; the fields after its closing ')' do not.
            fields = handle.read().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / _TICKS

    def _status_kib(self, field: str) -> float:
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
        raise LookupError(f"{field} not in /proc/{self.pid}/status")

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        return self._status_kib("VmHWM") / 1024

    def start(self) -> tuple[float, float, float]:
        return time.monotonic(), self.cpu_seconds(), os.getloadavg()[0]

    def since(self, mark: tuple[float, float, float]) -> Window:
        started, cpu, load = mark
        return Window(
            seconds=time.monotonic() - started,
            cpu_seconds=self.cpu_seconds() - cpu,
            rss_mib=self.rss_mib(),
            peak_rss_mib=self.peak_rss_mib(),
            load=(load, os.getloadavg()[0]),
        )

    def idle(self, seconds: float) -> Window:
        """Sit still for `seconds` and report what the operator used meanwhile."""
        mark = self.start()
        time.sleep(seconds)
        return self.since(mark)
