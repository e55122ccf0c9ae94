"""systemd's notify protocol (``sd_notify``): one datagram to ``$NOTIFY_SOCKET``.

Written here rather than taken from a library: the protocol is one ``sendto`` of a
``KEY=VALUE`` line to a Unix datagram socket (an abstract one when the path starts with
``@``); python-systemd needs libsystemd's headers to build. Outside systemd (no
``NOTIFY_SOCKET``) every call does nothing, so services call it unconditionally.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=...``) to systemd.

    True if sent; False outside systemd or when the socket is gone (never raises: a service
    must not die because its supervisor went away)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True
