"""Six parallel 50 MB request bodies against the real server (uvicorn, as ``python -m api``
runs it) must not grow the API's memory: the boundary refuses them at the limit, before any
token check or parse (issue 16 measured 145 -> 627 MB before)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from core.config import Settings
from tests.api_server import running_api

BODY = 50 * 1024 * 1024
BLOCK = b"x" * (1024 * 1024)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_big(port: int, chunked: bool, answers: list[bytes]) -> None:
    """PUT 50 MB (declared, or chunked without a length) and keep what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        head = "PUT /seats/count HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        head += (
            "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {BODY}\r\n\r\n"
        )
        conn.sendall(head.encode())
        with contextlib.suppress(OSError):
            for _ in range(BODY // len(BLOCK)):
                conn.sendall(b"100000\r\n" + BLOCK + b"\r\n" if chunked else BLOCK)
        with contextlib.suppress(OSError):
            answers.append(conn.recv(4096))


def send_small(port: int, answers: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        body = b'{"count": 5}'
        conn.sendall(
            b"PUT /seats/count HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        answers.append(conn.recv(4096))


def test_six_parallel_50_mb_bodies_do_not_grow_the_api(db_settings: Settings) -> None:
    with running_api(db_settings) as (port, pid):
        # A small refused request first, so the baseline includes the code paths' own memory.
        warm: list[bytes] = []
        send_small(port, warm)
        assert warm and b" 401 " in warm[0].split(b"\r\n")[0], warm
        before = rss_kib(pid)
        answers: list[bytes] = []
        threads = [
            threading.Thread(target=send_big, args=(port, n % 2 == 1, answers)) for n in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        after = rss_kib(pid)
        print(
            f"API RSS before {before / 1024:.1f} MB, after 6 x 50 MB bodies {after / 1024:.1f} MB"
        )
        assert len(answers) == 6 and all(b" 413 " in answer.split(b"\r\n")[0] for answer in answers)
        assert all(b"application/problem+json" in answer for answer in answers)
        assert after - before < 20 * 1024, (before, after)


def test_the_server_limits_request_heads_and_sends_no_banner(db_settings: Settings) -> None:
    """uvicorn as configured (api.__main__.uvicorn_options): a request head over
    ``api_max_header_bytes`` is refused by h11 (400) and no response names the server."""
    with running_api(db_settings) as (port, _pid):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            big = "x" * (db_settings.api_max_header_bytes + 1024)
            # Not yet ended (no blank line): h11 limits the head it holds while waiting for it.
            conn.sendall(f"GET /health HTTP/1.1\r\nHost: api\r\nX-Big: {big}\r\n".encode())
            refused = conn.recv(4096)
        assert refused.split(b"\r\n")[0].startswith(b"HTTP/1.1 400"), refused[:100]
        answers: list[bytes] = []
        send_small(port, answers)
        head = answers[0].split(b"\r\n\r\n")[0].lower()
        assert b"\r\nserver:" not in head and b"x-content-type-options: nosniff" in head


def test_a_slow_request_head_is_cut_off(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow-headers clients (a byte now and then, or nothing at all after connecting) are
    disconnected once ``api_header_timeout_seconds`` passes without a whole head, on a fresh
    and on a kept-alive connection; a client that sends its head in time is served."""
    monkeypatch.setenv("HELPLINE_API_HEADER_TIMEOUT_SECONDS", "2")

    def cut_off(conn: socket.socket, trickle: bytes) -> float:
        """Seconds until the server closes ``conn`` while we trickle ``trickle``."""
        started = time.monotonic()
        conn.settimeout(0.5)
        for byte in [trickle[i : i + 1] for i in range(len(trickle))] + [b""] * 40:
            with contextlib.suppress(OSError):
                if byte:
                    conn.sendall(byte)
            try:
                if conn.recv(4096) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:
                return time.monotonic() - started
        raise AssertionError("the server kept a slow head's connection for 20 s")

    with running_api(db_settings) as (port, _pid):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            assert (
                1.5
                <= cut_off(conn, b"GET /health HTTP/1.1\r\nHost: api\r\nX-Slow: " + b"a" * 60)
                < 5
            )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            assert 1.5 <= cut_off(conn, b"") < 5  # connected, said nothing
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n")  # in time: served
            assert conn.recv(4096).startswith(b"HTTP/1.1 ")
            time.sleep(0.5)  # kept alive; the next head trickles in
            assert 1.5 <= cut_off(conn, b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 60) < 5
