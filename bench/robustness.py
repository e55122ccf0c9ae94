"""``python -m bench robustness``: hostile peers against our FastAGI server, good calls alongside.

Two server processes on 127.0.0.1: ours (``bench.agi_server --impl ours``, the production
handshake deadline of 5 s) and, as the peer, the bare asyncio server of ``bench agi``
(``--impl floor``: no parsing, no logging, no deadlines): what any stdlib-asyncio server pays
for the same connections. A truncated handshake costs the floor itself ~60 us of CPU (accept,
transport, read, EOF, close; ours ~70 us), so a burst of 50 holds either event loop for
milliseconds whatever the protocol code does.

Each round is a clean run of ``--good`` sessions (compiled generator, each command "played" for
50-150 ms), then the same good load while this process attacks the server from asyncio:

* ``--truncated`` handshakes, in bursts of 50 over 1 s: connect, send a random prefix of a real
  environment (cut anywhere, also inside a Devanagari character), close;
* ``--slow`` peers: send the environment one byte every 100 ms (slower than the deadline allows);
* ``--half-open`` peers: connect and go silent.

The two servers take turns for ``--rounds`` rounds (5; which goes first alternates); each p99
below is the median of the rounds' p99s, as one round's p99 (the ~10th slowest of ~1,000
turnarounds) depends on where the bursts fall. Ours is judged on its slow and half-open peers
in its first round; the floor has no deadline, so its peers are dropped after the good load.

Criteria (exit status 1 if any fails): every good session served in every round, none timed
out; ours' attacked p99 within 5x its clean p99 (or within the issue's 2 ms budget when the
clean p99 is tiny), *or* within 1.5x the floor's attacked p99 (our code adds little to what the
event loop costs); the server closes every slow and half-open peer itself (its deadline, not
ours); its open file descriptors return to the baseline; and its CPU over 2 s of quiet
afterwards is < 0.05 s. Bounded: each attack is under ``--budget`` seconds (default 110).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import ServerProcess, loadgen_binary, machine, ratio, run_loadgen

HOST = "127.0.0.1"
ENV = (
    "agi_network: yes\nagi_network_script: ivr\nagi_request: agi://127.0.0.1:4573/ivr\n"
    "agi_channel: PJSIP/trunk-00000001\nagi_language: hi\nagi_uniqueid: 1718000000.1\n"
    "agi_callerid: 919800000001\nagi_calleridname: रमेश कुमार\nagi_context: from-trunk\n"
    "agi_extension: 1076\nagi_priority: 2\nagi_accountcode: \n\n"
).encode()
P99_MULTIPLE = 5.0
P99_FLOOR_MS = 2.0
#: Allowed attacked p99 over the bare asyncio server's attacked p99 in the same invocation.
P99_OVER_ASYNCIO_FLOOR = 1.5
QUIET_S = 2.0
QUIET_CPU_MAX_S = 0.05


async def _truncated(port: int, count: int, spread_s: float, rng: random.Random) -> int:
    """Connect, send a prefix of the environment, close; ``count`` times over ``spread_s``."""
    done = 0
    batch = 50
    for first in range(0, count, batch):
        n = min(batch, count - first)
        results = await asyncio.gather(
            *(_one_truncated(port, rng.randrange(1, len(ENV) - 1)) for _ in range(n)),
            return_exceptions=True,
        )
        done += sum(1 for r in results if r is True)
        await asyncio.sleep(spread_s * batch / count)
    return done


async def _one_truncated(port: int, cut: int) -> bool:
    _, writer = await asyncio.open_connection(HOST, port)
    writer.write(ENV[:cut])
    await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _slow(port: int, stop: asyncio.Event) -> bool:
    """Send a byte every 100 ms; True if the server closed us (its deadline) first."""
    reader, writer = await asyncio.open_connection(HOST, port)
    closed_by_server = False
    try:
        for byte in ENV:
            if stop.is_set():
                break
            writer.write(bytes([byte]))
            try:
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                    closed_by_server = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_by_server = True
                break
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return closed_by_server


async def _half_open(port: int, wait_s: float) -> bool:
    """Connect and say nothing; True if the server closed us within ``wait_s``."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        return await asyncio.wait_for(reader.read(1), wait_s) == b""
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _attack(
    binary: Path,
    server: ServerProcess,
    args: argparse.Namespace,
    think: tuple[int, int],
    *,
    judge_peers: bool = True,
) -> dict[str, Any]:
    """The attack while the good load runs. ``judge_peers=False`` (the floor, which has no
    deadlines) drops the slow and half-open peers once the good load is done."""
    rng = random.Random(args.seed)
    stop = asyncio.Event()
    port = server.port
    wait_s = args.handshake_timeout + 3.0
    half = [asyncio.create_task(_half_open(port, wait_s)) for _ in range(args.half_open)]
    slow = [asyncio.create_task(_slow(port, stop)) for _ in range(args.slow)]
    await asyncio.sleep(0.2)
    truncated = asyncio.create_task(_truncated(port, args.truncated, 1.0, rng))
    good = await asyncio.to_thread(
        run_loadgen, binary, port, sessions=args.good, concurrency=args.good, think_ms=think
    )
    truncated_done = await truncated
    if not judge_peers:
        stop.set()
        for task in half:
            task.cancel()
        await asyncio.gather(*half, *slow, return_exceptions=True)
        return {"good": good, "truncated_sent": truncated_done}
    half_closed = await asyncio.gather(*half)
    slow_closed = await asyncio.wait_for(asyncio.gather(*slow), wait_s + len(ENV) * 0.1)
    stop.set()
    return {
        "good": good,
        "truncated_sent": truncated_done,
        "half_open_closed_by_server": sum(half_closed),
        "slow_closed_by_server": sum(slow_closed),
    }


#: One round of one server: the clean run's report and the attack's.
Round = tuple[dict[str, Any], dict[str, Any]]


def _round(
    binary: Path,
    server: ServerProcess,
    args: argparse.Namespace,
    think: tuple[int, int],
    *,
    judge_peers: bool,
) -> Round:
    """One clean run of the good load, then the same load under the attack."""
    clean = run_loadgen(
        binary, server.port, sessions=args.good, concurrency=args.good, think_ms=think
    )
    attack = asyncio.run(
        asyncio.wait_for(_attack(binary, server, args, think, judge_peers=judge_peers), args.budget)
    )
    return clean, attack


def _served(report: dict[str, Any], sessions: int) -> bool:
    return bool(report["ok"] == sessions and report["failed"] == 0 and report["timed_out"] == 0)


def _median_ms(reports: list[dict[str, Any]], key: str = "p99_us") -> float:
    return float(statistics.median(r[key] for r in reports)) / 1000


def _latency(rounds: list[Round]) -> tuple[float, float, list[dict[str, Any]], dict[str, Any]]:
    """One server's rounds: its clean and attacked p99 (medians over the rounds, in ms), the
    attacked runs' reports, and the latency figures the JSON prints for it."""
    cleans = [clean for clean, _ in rounds]
    goods = [attacked["good"] for _, attacked in rounds]
    clean_p99, attacked_p99 = _median_ms(cleans), _median_ms(goods)
    figures = {
        "good_ok": min(good["ok"] for good in goods),
        "clean_ok": min(clean["ok"] for clean in cleans),
        "clean_p99_ms": round(clean_p99, 3),
        "attacked_p50_ms": round(_median_ms(goods, "p50_us"), 3),
        "attacked_p99_ms": round(attacked_p99, 3),
        "clean_p99_ms_per_round": [round(r["p99_us"] / 1000, 3) for r in cleans],
        "attacked_p99_ms_per_round": [round(r["p99_us"] / 1000, 3) for r in goods],
    }
    return clean_p99, attacked_p99, goods, figures


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench robustness", description=__doc__)
    parser.add_argument("--truncated", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--half-open", type=int, default=200)
    parser.add_argument("--good", type=int, default=100)
    parser.add_argument("--handshake-timeout", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5, help="p99 rounds per server")
    parser.add_argument("--budget", type=float, default=110.0)
    parser.add_argument("--seed", type=int, default=1076)
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.truncated, args.slow, args.half_open, args.good = 100, 5, 20, 30
        args.handshake_timeout, args.rounds = 1.0, 1
    think = (50, 150)
    started = time.monotonic()
    ours_rounds: list[Round] = []
    floor_rounds: list[Round] = []
    with (
        loadgen_binary() as binary,
        ServerProcess("ours", handshake_timeout=args.handshake_timeout) as server,
        ServerProcess("floor") as floor,
    ):
        for warm in (server, floor):
            run_loadgen(binary, warm.port, sessions=20, concurrency=10)
        fds0 = server.fds()
        for number in range(args.rounds):
            # The sides take turns (which goes first alternates), so that a noisy spell of the
            # shared machine lands on both; ours is judged on its peers in the first round.
            sides = [(server, ours_rounds), (floor, floor_rounds)]
            for side, rounds in sides if number % 2 == 0 else reversed(sides):
                judged = side is server and number == 0
                rounds.append(_round(binary, side, args, think, judge_peers=judged))
        deadline = time.monotonic() + args.handshake_timeout + 2
        while server.fds() > fds0 and time.monotonic() < deadline:
            time.sleep(0.1)
        fds1 = server.fds()
        time.sleep(0.5)
        cpu0 = server.cpu()
        time.sleep(QUIET_S)
        quiet_cpu = server.cpu() - cpu0
    attack = ours_rounds[0][1]
    clean_p99, attacked_p99, goods, ours_latency = _latency(ours_rounds)
    floor_clean_p99, floor_attacked_p99, floor_goods, floor_latency = _latency(floor_rounds)
    allowed = max(P99_MULTIPLE * clean_p99, P99_FLOOR_MS)
    allowed_by_floor = P99_OVER_ASYNCIO_FLOOR * floor_attacked_p99
    within_clean = attacked_p99 <= allowed
    within_floor = (
        all(_served(good, args.good) for good in floor_goods) and attacked_p99 <= allowed_by_floor
    )
    checks = {
        "every_good_session_served": all(_served(good, args.good) for good in goods),
        "clean_run_served": ours_latency["clean_ok"] == args.good,
        "p99_within_multiple_of_clean_or_of_asyncio_floor": within_clean or within_floor,
        "slow_peers_closed_by_server": attack["slow_closed_by_server"] == args.slow,
        "half_open_peers_closed_by_server": attack["half_open_closed_by_server"] == args.half_open,
        "fds_back_to_baseline": fds1 <= fds0,
        "cpu_idle_after": quiet_cpu < QUIET_CPU_MAX_S,
    }
    ours = {
        "good_sessions": args.good,
        **ours_latency,
        "good_failed": sum(good["failed"] for good in goods),
        "good_timed_out": sum(good["timed_out"] for good in goods),
        "truncated_handshakes": sum(attacked["truncated_sent"] for _, attacked in ours_rounds),
        "slow_peers": args.slow,
        "slow_closed_by_server": attack["slow_closed_by_server"],
        "half_open_peers": args.half_open,
        "half_open_closed_by_server": attack["half_open_closed_by_server"],
        "server_fds_before": fds0,
        "server_fds_after": fds1,
        "quiet_cpu_s": round(quiet_cpu, 3),
        "quiet_window_s": QUIET_S,
    }
    peer = {
        "name": "bare stdlib-asyncio server (bench agi's floor), same clean runs and attacks",
        **floor_latency,
    }
    return {
        "bench": "robustness",
        "machine": machine(),
        "config": {
            "truncated": args.truncated,
            "slow": args.slow,
            "half_open": args.half_open,
            "good": args.good,
            "think_ms": list(think),
            "handshake_timeout_s": args.handshake_timeout,
            "rounds": args.rounds,
            "p99": "median over the rounds of each run's p99",
            "quick": args.quick,
        },
        "ours": ours,
        "peer": peer,
        "ratio": {
            "p99_attacked_over_clean": ratio(attacked_p99, clean_p99),
            "p99_attacked_over_floor_attacked": ratio(attacked_p99, floor_attacked_p99),
            "floor_p99_attacked_over_clean": ratio(floor_attacked_p99, floor_clean_p99),
        },
        "criteria": {
            "p99_allowed_ms": round(allowed, 3),
            "p99_within_multiple_of_clean": within_clean,
            "p99_allowed_by_floor_ms": round(allowed_by_floor, 3),
            "p99_within_multiple_of_floor_attacked": within_floor,
            "quiet_cpu_max_s": QUIET_CPU_MAX_S,
            **checks,
        },
        "failed_criteria": [name for name, ok in checks.items() if not ok],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
