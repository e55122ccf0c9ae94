"""Open-file headroom for the processes that hold a socket per user or per call."""

from __future__ import annotations

import resource

#: The soft limit taken when the hard limit is unlimited.
UNLIMITED_SOFT = 65536


def raise_fd_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (systemd's default soft
    limit is 1,024: 1,000 desks' sockets alone would exhaust it); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_SOFT)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want
