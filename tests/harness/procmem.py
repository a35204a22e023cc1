"""Memory of a running proxy, as the tests that bound it need it.

Each worker maps one fixed area of receive buffers for its io_uring provided-buffer ring
(userspace/proxy/worker.cpp: 4096 buffers of 16 KB, 64 MB). The kernel hands the buffers out
round-robin, so every burst of traffic touches buffers no earlier burst did until the whole area
is resident: RSS grows by up to 64 MB per worker that is not per-connection memory and never
grows past it. A bound on what connections keep must leave those areas out."""

from __future__ import annotations

RECV_BUFFER_AREA_KB = 4096 * 16  # one worker's receive buffers, in kB


def rss_kb(pid: int) -> int:
    """VmRSS of the process, in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_outside_recv_buffers_kb(pid: int) -> int:
    """RSS minus the resident part of the workers' receive-buffer areas (anonymous private
    mappings of exactly RECV_BUFFER_AREA_KB), in kB."""
    total = 0
    size = rss = 0
    anon = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                if anon and size == RECV_BUFFER_AREA_KB:
                    total += rss
                size = rss = 0
                anon = len(parts) == 5 and parts[1] == "rw-p" and parts[4] == "0"
            elif parts[0] == "Size:":
                size = int(parts[1])
            elif parts[0] == "Rss:":
                rss = int(parts[1])
    if anon and size == RECV_BUFFER_AREA_KB:
        total += rss
    return rss_kb(pid) - total
