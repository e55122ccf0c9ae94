"""``python -m bench agi``: our FastAGIServer vs panoramisk 1.4's ``fast_agi.Application``.

Both serve the same 10-command IVR (``bench.agi_server``) on the stdlib asyncio event loop, each
in its own process pinned to CPU 0, driven by the compiled generator (``agi_loadgen.c``) on
CPU 1. Two phases per server, each on a fresh server process:

* throughput: ``--sessions`` sessions, ``--concurrency`` at a time, replies sent at once:
  server CPU seconds per session, sessions/s, turnaround percentiles under saturation;
* concurrency: ``--concurrent`` sessions open together, Asterisk "thinking" (a prompt playing)
  ``--think-ms`` before each reply: the server's memory per session (RSS delta while all are
  parked at their first command) and p50/p99 command turnaround (generator-side: reply sent
  -> next command received).
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import ServerProcess, loadgen_binary, machine, ratio, run_loadgen

TARGETS = {
    "cpu_per_session_ratio_max": 0.5,
    "concurrent_sessions": 2000,
    "p99_turnaround_ms_max": 2.0,
    "memory_per_session_kb_max": 15.0,
}


def _throughput(binary: Any, impl: str, sessions: int, concurrency: int) -> dict[str, Any]:
    with ServerProcess(impl) as server:
        run_loadgen(binary, server.port, sessions=min(300, sessions), concurrency=concurrency)
        cpu0 = server.cpu()
        gen = run_loadgen(binary, server.port, sessions=sessions, concurrency=concurrency)
        cpu = server.cpu() - cpu0
    return {
        "sessions": sessions,
        "ok": gen["ok"],
        "failed": gen["failed"] + gen["timed_out"],
        "server_cpu_s": round(cpu, 3),
        "cpu_ms_per_session": round(cpu / sessions * 1000, 4),
        "sessions_per_s": round(gen["ok"] / gen["elapsed_s"], 1),
        "saturated_p50_ms": round(gen["p50_us"] / 1000, 3),
        "saturated_p99_ms": round(gen["p99_us"] / 1000, 3),
        "generator_cpu_s": gen["generator_cpu_s"],
        "elapsed_s": gen["elapsed_s"],
    }


def _concurrency(binary: Any, impl: str, concurrent: int, think: tuple[int, int]) -> dict[str, Any]:
    with ServerProcess(impl) as server:
        run_loadgen(binary, server.port, sessions=100, concurrency=20)
        rss0 = server.rss()
        held: dict[str, int] = {}

        def measure() -> None:
            held["rss"] = server.rss()
            held["fds"] = server.fds()

        gen = run_loadgen(
            binary,
            server.port,
            sessions=concurrent,
            concurrency=concurrent,
            think_ms=think,
            hold=measure,
            idle_timeout_ms=max(10_000, think[1] * 4),
        )
    delta = held.get("rss", rss0) - rss0
    return {
        "concurrent": concurrent,
        "think_ms": list(think),
        "ok": gen["ok"],
        "failed": gen["failed"] + gen["timed_out"],
        "turnarounds": gen["turnarounds"],
        "p50_ms": round(gen["p50_us"] / 1000, 3),
        "p90_ms": round(gen["p90_us"] / 1000, 3),
        "p99_ms": round(gen["p99_us"] / 1000, 3),
        "max_ms": round(gen["max_us"] / 1000, 3),
        "rss_delta_mb": round(delta / 2**20, 2),
        "memory_per_session_kb": round(delta / concurrent / 1024, 2),
        "server_fds_while_held": held.get("fds"),
    }


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench agi", description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--concurrent", type=int, default=2000)
    parser.add_argument("--think-ms", type=int, nargs=2, default=(500, 1500))
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.concurrency, args.concurrent, args.think_ms = 300, 16, 100, (20, 60)
    think = (int(args.think_ms[0]), int(args.think_ms[1]))
    results: dict[str, dict[str, Any]] = {}
    with loadgen_binary() as binary:
        for impl in ("ours", "panoramisk"):
            results[impl] = {
                "throughput": _throughput(binary, impl, args.sessions, args.concurrency),
                "concurrency": _concurrency(binary, impl, args.concurrent, think),
            }
    ours, peer = results["ours"], results["panoramisk"]
    ratios = {
        "cpu_per_session": ratio(
            ours["throughput"]["cpu_ms_per_session"], peer["throughput"]["cpu_ms_per_session"]
        ),
        "sessions_per_s": ratio(
            ours["throughput"]["sessions_per_s"], peer["throughput"]["sessions_per_s"]
        ),
        "p99_at_concurrency": ratio(ours["concurrency"]["p99_ms"], peer["concurrency"]["p99_ms"]),
        "memory_per_session": ratio(
            ours["concurrency"]["memory_per_session_kb"],
            peer["concurrency"]["memory_per_session_kb"],
        ),
    }
    oc = ours["concurrency"]
    met = {
        "cpu_per_session_le_half_of_peer": ratios["cpu_per_session"] is not None
        and ratios["cpu_per_session"] <= TARGETS["cpu_per_session_ratio_max"],
        "all_concurrent_sessions_served": oc["ok"] == args.concurrent and oc["failed"] == 0,
        "p99_turnaround_le_2ms": oc["p99_ms"] <= TARGETS["p99_turnaround_ms_max"],
        "memory_per_session_le_15kb": oc["memory_per_session_kb"]
        <= TARGETS["memory_per_session_kb_max"],
    }
    return {
        "bench": "agi",
        "event_loop": "stdlib asyncio (no uvloop) for both servers",
        "session": "ANSWER, SET VARIABLE x2, STREAM FILE x2, GET DATA, SET VARIABLE x4",
        "generator": "bench/agi_loadgen.c, epoll, compiled with gcc at run time",
        "machine": machine(),
        "config": {
            "sessions": args.sessions,
            "concurrency": args.concurrency,
            "concurrent": args.concurrent,
            "think_ms": list(think),
            "quick": args.quick,
        },
        "ours": ours,
        "peer": {"name": "panoramisk 1.4 fast_agi.Application", **peer},
        "ratio": ratios,
        "targets": TARGETS if args.concurrent == TARGETS["concurrent_sessions"] else None,
        "met": met,
    }
