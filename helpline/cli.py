"""``helpline``: one command to bring the helpline up, place a test call, and run each service.

helpline up            provision what is missing, migrate, seed, start Asterisk + services
helpline down          stop the services and Asterisk
helpline status        what runs, and /health
helpline call          place a demo call from the "PSTN trunk" with sipp and report it
helpline agi | queue-manager | api | sla | dialer     run one service in the foreground
helpline sla run [--as-of 2026-12-20T10:00:00+05:30]   one SLA escalation pass, printed
helpline recordings prune [--as-of T]       one recordings retention pass, printed
helpline privacy prune [--as-of T]          one privacy pass (anonymisation by data class)
helpline capacity [--calls-per-hour N --aht SECONDS] [--json]   agents needed vs seats
helpline migrate | seed | prompts build | asterisk {provision,start,stop,render,cli}
helpline demo-complaints   complaints in every status, so /review and /worklist have content
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from core.config import Settings
from helpline import services, supervisor

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _fail(message: str, hint: str) -> int:
    print(f"helpline: {message}\n  what to do: {hint}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------- set-up steps
def prepare_database(settings: Settings) -> None:
    from core.db.migrate import upgrade
    from core.db.session import ensure_database

    if asyncio.run(ensure_database(settings)):
        _step("created database")
    upgrade(settings)


def seed(settings: Settings) -> list[Any]:
    """Seats, reference data and demo users; returns the seats (for the PJSIP config)."""
    from core.db.session import create_engine, session_factory
    from helpline.seed import seed_demo_users, seed_reference, seed_seats

    async def run() -> list[Any]:
        engine = create_engine(settings, pool_size=1)
        try:
            async with session_factory(engine)() as session:
                seats = await seed_seats(session, settings.seat_count)
                seeded = await seed_reference(session, settings)
                if seeded.changed:
                    _step(f"reference data {seeded.version}: {sum(seeded.rows.values())} rows")
                await seed_demo_users(session, settings)
                await session.commit()
                return seats
        finally:
            await engine.dispose()

    return asyncio.run(run())


def demo_complaints(settings: Settings) -> int:
    """File the demo complaints not filed yet (after :func:`seed`); how many were filed."""
    from core.db.session import create_engine, session_factory
    from helpline.demo_complaints import file_demo_complaints

    async def run() -> int:
        engine = create_engine(settings, pool_size=1)
        try:
            async with session_factory(engine)() as session:
                return await file_demo_complaints(session, settings, settings.load_reference())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def sounds_root(instance: Any) -> Any:
    """``sounds/`` of the instance: prompts go to ``sounds/<lang>/helpline/<id>.wav``."""
    return instance.sounds_dir("hi").parents[1]


def prepare_asterisk(settings: Settings, seats: Sequence[Any]) -> None:
    from asterisk_config.instance import AsteriskInstance
    from asterisk_config.render import SeatCredential
    from asterisk_config.tls import ensure_certificate
    from ivr.prompts import build_prompts

    instance = AsteriskInstance(settings)
    _step("Asterisk 22: provisioning (first time: a Debian sid chroot, about a minute)")
    instance.provision()
    tls = ensure_certificate(settings)
    _step(f"WSS certificate for the desk phone: {tls.cert}")
    _step("prompts: building Hindi and English audio (cached)")
    build_prompts(sounds_root(instance))
    instance.render([SeatCredential(seat.name, seat.password) for seat in seats])
    if instance.is_running():
        _step("Asterisk: reloading configuration")
        instance.reload()
    else:
        _step("Asterisk: starting")
        instance.start()


def health(settings: Settings, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    url = f"http://{settings.api_host}:{settings.api_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (OSError, ValueError) as error:
        return 0, {"error": str(error)}


def wait_healthy(settings: Settings, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, body = health(settings)
        if code == 200:
            return body
        time.sleep(0.5)
    raise TimeoutError(json.dumps(body, indent=2))


# ----------------------------------------------------------------------------- commands
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from helpline.secrets import ensure_secrets
    from helpline.seed import credentials_file

    started = time.monotonic()
    settings = ensure_secrets(settings)
    _step(f"database: {settings.database_url.split('@')[-1]} (migrate)")
    try:
        prepare_database(settings)
    except OSError as error:
        return _fail(
            f"PostgreSQL is not reachable ({error})",
            "run `make up` (it starts PostgreSQL), or set HELPLINE_DATABASE_URL",
        )
    _step(f"seed: {settings.seat_count} seats, demo users")
    seats = seed(settings)
    filed = demo_complaints(settings)
    if filed:
        _step(f"demo complaints: {filed} filed")
    try:
        prepare_asterisk(settings, seats)
    except Exception as error:
        # Provisioning, prompt building and Asterisk's start each say what went wrong.
        return _fail(
            f"{type(error).__name__}: {error}",
            f"fix what it names and run `make up` again (it is idempotent); Asterisk's log: "
            f"{settings.state_dir / 'logs' / f'asterisk-{settings.instance}.log'}",
        )
    for name in services.SERVICES:
        before = services.state(settings, name)
        if before.pid is not None and not before.running:
            _step(f"{name}: had died (pid {before.pid}); starting it again")
        service = services.start(settings, name)
        _step(f"{name}: pid {service.pid}, log {service.log}")
    watcher = services.start(settings, supervisor.NAME)
    _step(f"supervise: pid {watcher.pid} (restarts a service that dies), log {watcher.log}")
    _step("waiting for /health")
    try:
        wait_healthy(settings)
    except TimeoutError as error:
        return _fail(
            f"the helpline did not become healthy in 60 s:\n{error}",
            f"look at the logs in {settings.state_dir / 'logs'}; `helpline status`",
        )
    print(
        f"""
The 1076 helpline is up ({time.monotonic() - started:.0f} s).
  API            http://{settings.api_host}:{settings.api_port}/docs (health: /health)
  wallboard      http://{settings.api_host}:{settings.api_port}/wallboard (log in as supervisor)
  review         http://{settings.api_host}:{settings.api_port}/review (CM office's monthly review)
  worklist       http://{settings.api_host}:{settings.api_port}/worklist (an officer's complaints)
  SIP            {settings.sip_host}:{settings.sip_port} (citizens: {settings.trunk_address})
  desk           http://{settings.api_host}:{settings.api_port}/desk (agents)
  desk phone     {settings.wss_url} (SIP over WSS, the desk's in-page phone)
  seats          agent0001..agent{settings.seat_count:04d}; passwords: table `seats` (admin only)
  demo users     {credentials_file(settings)}
  logs           {settings.state_dir / "logs"}

Place a test call:   .venv/bin/helpline call          (dials {settings.helpline_number}, presses 11)
Status / stop:       .venv/bin/helpline status  |  .venv/bin/helpline down"""
    )
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from asterisk_config.instance import AsteriskInstance

    if services.stop(settings, supervisor.NAME):  # first, so it restarts nothing we stop
        _step(f"{supervisor.NAME}: stopped")
    for name in reversed(services.SERVICES):
        if services.stop(settings, name):
            _step(f"{name}: stopped")
    instance = AsteriskInstance(settings)
    if instance.is_running():
        instance.stop()
        _step("Asterisk: stopped")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from asterisk_config.instance import AsteriskInstance

    print(f"Asterisk: {'running' if AsteriskInstance(settings).is_running() else 'stopped'}")
    restarts = supervisor.read_restarts(settings)
    for name in (*services.SERVICES, supervisor.NAME):
        service = services.state(settings, name)
        line = f"{name}: {'running, pid ' + str(service.pid) if service.running else 'stopped'}"
        if service.pid is not None and not service.running:
            line = f"{name}: DEAD (pid {service.pid} is gone; log {service.log})"
        if name in restarts:
            line += f"; restarted {restarts[name]['count']}x, last at {restarts[name]['last_at']}"
        print(line)
    code, body = health(settings)
    if code == 0:  # the API is down: read the heartbeats from the database ourselves
        print(f"/health: unreachable ({body.get('error')}); the database's view:")
        body = asyncio.run(_health_without_api(settings))
    else:
        print(f"/health: {code} {body.get('status')}")
    for part, seen in body.get("parts", {}).items():
        age = seen.get("age_seconds")
        age_text = "never" if age is None else f"{age:.1f} s ago"
        verdict = "ok" if seen.get("ok") else "FAILING"
        print(f"  {part:<14} {verdict:<8} {age_text:<12} {seen.get('detail')}")
    return 0 if code == 200 else 1


async def _health_without_api(settings: Settings) -> dict[str, Any]:
    from api.services.health import check
    from core.db.session import create_engine, session_factory

    engine = create_engine(settings, pool_size=1)
    try:
        return (await check(session_factory(engine), None, settings)).model_dump(mode="json")
    finally:
        await engine.dispose()


def cmd_supervise(settings: Settings, args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}", flush=True)

    supervisor.Supervisor(settings, say=say).run()
    return 0


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    from helpline.democall import place_demo_call

    return asyncio.run(place_demo_call(settings, digits=args.digits, seconds=args.seconds))


def cmd_service(name: str) -> Callable[[Settings, argparse.Namespace], int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        from core import logs

        logs.configure()
        if name == "api":
            import uvicorn

            from api.__main__ import uvicorn_options
            from api.app import create_app

            uvicorn.run(create_app(settings), **uvicorn_options(settings))
        elif name == "queue-manager":
            from queue_manager.service import serve

            asyncio.run(serve(settings))
        elif name == "sla":
            from lifecycle.worker import serve as serve_sla

            asyncio.run(serve_sla(settings))
        elif name == "dialer":
            from outbound_dialer.service import serve as serve_dialer

            asyncio.run(serve_dialer(settings))
        else:
            from agi_scripts.service import serve as serve_agi

            asyncio.run(serve_agi(settings))
        return 0

    return run


def _aware_time(text: str) -> datetime:
    """``--as-of``: an ISO 8601 time that says its offset (a pass at an ambiguous time could
    escalate a day early or late)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset (add +05:30 or Z)")
    return moment


class _Report(Protocol):
    def lines(self) -> list[str]: ...


def _print_pass(
    settings: Settings,
    one_pass: Callable[[async_sessionmaker[AsyncSession]], Awaitable[_Report]],
) -> int:
    """Run one worker pass (``helpline sla run``, ``helpline recordings prune``) on a small
    pool of its own and print what it did, a line each."""
    from core.db.session import create_engine, session_factory

    async def run() -> list[str]:
        engine = create_engine(settings, pool_size=1)
        try:
            return (await one_pass(session_factory(engine))).lines()
        finally:
            await engine.dispose()

    for line in asyncio.run(run()):
        print(line)
    return 0


def cmd_sla_run(settings: Settings, args: argparse.Namespace) -> int:
    """``helpline sla run [--as-of T]``: one SLA pass; one line per escalation, a summary."""
    from lifecycle.sla import run_pass

    as_of: datetime = args.as_of or datetime.now(UTC)
    reference = settings.load_reference()
    return _print_pass(settings, lambda sessions: run_pass(sessions, reference, as_of))


def cmd_recordings_prune(settings: Settings, args: argparse.Namespace) -> int:
    """``helpline recordings prune [--as-of T]``: one retention pass; what it deleted."""
    from lifecycle.recordings import prune

    as_of: datetime = args.as_of or datetime.now(UTC)
    return _print_pass(settings, lambda sessions: prune(sessions, settings, as_of))


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    """``helpline backfill [--since T]``: calls missed by the queue manager, from CEL."""
    from queue_manager.backfill import backfill_since

    since: datetime = args.since or datetime.now(UTC) - timedelta(
        minutes=settings.backfill_lookback_minutes
    )
    return _print_pass(settings, lambda sessions: backfill_since(sessions, settings, since))


def cmd_privacy_prune(settings: Settings, args: argparse.Namespace) -> int:
    """``helpline privacy prune [--as-of T]``: one privacy pass; rows anonymised per step."""
    from lifecycle.privacy import prune

    as_of: datetime = args.as_of or datetime.now(UTC)
    return _print_pass(settings, lambda sessions: prune(sessions, settings, as_of))


def cmd_capacity(settings: Settings, args: argparse.Namespace) -> int:
    """``helpline capacity``: the agents needed now and at the peak hour against the seats,
    from today's figures in the database, or from ``--calls-per-hour`` and ``--aht`` alone
    (no database). The same service as ``GET /capacity``."""
    from pydantic import ValidationError

    from api.schemas import CapacityOut, CapacityQuery
    from api.services import capacity
    from api.services.errors import InvalidField
    from core.db.session import create_engine, session_factory

    try:
        query = CapacityQuery(
            calls_per_hour=args.calls_per_hour,
            aht=args.aht,
            target=args.target,
            threshold=args.threshold,
            patience=args.patience,
        )
    except ValidationError as error:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
        return _fail(f"capacity: {problems}", "see helpline capacity --help")

    async def live() -> CapacityOut:
        engine = create_engine(settings, pool_size=1)
        try:
            async with session_factory(engine)() as session:
                return await capacity.capacity(session, query)
        finally:
            await engine.dispose()

    try:
        if query.calls_per_hour is not None and query.aht is not None:
            out = capacity.given(query, settings.seat_count)
        else:
            out = asyncio.run(live())
    except InvalidField as error:
        return _fail(f"capacity: {error}", "give smaller figures")
    if args.json:
        print(out.model_dump_json())
    else:
        print("\n".join(capacity_lines(out)))
    return 0 if out.seats_suffice else 3


def capacity_lines(out: Any) -> list[str]:
    """``helpline capacity``'s text: a line per estimate, the seats, the verdict."""
    target = out.target
    model = (
        "Erlang C" if target.patience_s is None else f"Erlang A, patience {target.patience_s:g} s"
    )
    lines = [
        f"target: {target.service_level:.0%} answered within {target.threshold_s:g} s ({model}); "
        f"handle time {out.aht_s:g} s ({out.aht_source})"
    ]
    if out.calls_today is not None:
        lines.append(
            f"today: {out.calls_today} calls reached the queue, {out.answered_today} answered"
        )
    named = [("now (" + out.now_source.replace("_", " ") + ")", out.now)]
    if out.peak_today is not None:
        named.append((f"today's busiest hour {out.peak_today.hour}", out.peak_today))
    named.append((f"design day's busiest hour {out.design_peak.hour}", out.design_peak))
    for name, estimate in named:
        line = f"{name}: {estimate.calls_per_hour:,.0f} calls/h -> {estimate.agents_needed} agents"
        if estimate.service_level is not None:
            line += (
                f" (service level {estimate.service_level:.1%}, mean wait "
                f"{estimate.mean_wait_s:g} s, occupancy {estimate.occupancy:.1%}"
            )
            if target.patience_s is not None:
                line += f", abandoned {estimate.abandon_rate:.1%}"
            line += ")"
        lines.append(line)
    logged_in = "unknown" if out.agents_logged_in is None else str(out.agents_logged_in)
    lines.append(f"seats configured: {out.seats_configured}; agents logged in: {logged_in}")
    lines.append(out.verdict)
    return lines


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    prepare_database(settings)
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    seats = seed(settings)
    print(f"{len(seats)} seats; demo users in {settings.state_dir / 'demo-credentials.json'}")
    return 0


def cmd_demo_complaints(settings: Settings, args: argparse.Namespace) -> int:
    seed(settings)
    filed = demo_complaints(settings)
    print(f"{filed} demo complaints filed (those filed before are kept as they are)")
    return 0


def cmd_prompts(settings: Settings, args: argparse.Namespace) -> int:
    from asterisk_config.instance import AsteriskInstance
    from ivr.prompts import build_prompts

    report = build_prompts(sounds_root(AsteriskInstance(settings)))
    print(report)
    return 0


def cmd_asterisk(settings: Settings, args: argparse.Namespace) -> int:
    from asterisk_config.instance import AsteriskInstance
    from helpline.secrets import ensure_secrets

    instance = AsteriskInstance(ensure_secrets(settings))
    if args.action == "provision":
        instance.provision()
    elif args.action == "start":
        instance.start()
    elif args.action == "stop":
        instance.stop()
    elif args.action == "render":
        from asterisk_config.render import SeatCredential

        instance.render([SeatCredential(s.name, s.password) for s in seed(settings)])
    elif args.action == "cli":
        print(instance.cli(" ".join(args.command)))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="helpline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="bring the whole helpline up (idempotent)").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop services and Asterisk").set_defaults(func=cmd_down)
    sub.add_parser("status", help="what runs; /health").set_defaults(func=cmd_status)
    call = sub.add_parser("call", help="place a demo call to 1076 with sipp")
    call.add_argument(
        "--digits", default="11", help="DTMF after the welcome (default 11: Hindi, new complaint)"
    )
    call.add_argument("--seconds", type=float, default=25.0, help="how long to stay on the line")
    call.set_defaults(func=cmd_call)
    for name in services.SERVICES:
        service = sub.add_parser(name, help=f"run the {name} service in the foreground")
        service.set_defaults(func=cmd_service(name))
        if name == "sla":
            sla_sub = service.add_subparsers(dest="sla_command")
            sla_run = sla_sub.add_parser(
                "run", help="run one SLA escalation pass and print what it did"
            )
            sla_run.add_argument(
                "--as-of",
                type=_aware_time,
                default=None,
                help="the pass's time, ISO 8601 with its offset (default: now), "
                "e.g. 2026-12-20T10:00:00+05:30",
            )
            sla_run.set_defaults(func=cmd_sla_run)
    sub.add_parser(
        supervisor.NAME, help="restart a service of this instance that dies (`helpline up` runs it)"
    ).set_defaults(func=cmd_supervise)
    recordings = sub.add_parser("recordings", help="call recordings")
    recordings_sub = recordings.add_subparsers(dest="recordings_command", required=True)
    prune_parser = recordings_sub.add_parser(
        "prune", help="delete recordings past their retention (complaints still open keep theirs)"
    )
    prune_parser.add_argument(
        "--as-of",
        type=_aware_time,
        default=None,
        help="the pass's time, ISO 8601 with its offset (default: now)",
    )
    prune_parser.set_defaults(func=cmd_recordings_prune)
    backfill_parser = sub.add_parser(
        "backfill", help="record the calls the queue manager missed, from Asterisk's CEL"
    )
    backfill_parser.add_argument(
        "--since",
        type=_aware_time,
        default=None,
        help="calls that ended since, ISO 8601 with its offset (default: "
        "HELPLINE_BACKFILL_LOOKBACK_MINUTES ago)",
    )
    backfill_parser.set_defaults(func=cmd_backfill)
    privacy = sub.add_parser("privacy", help="personal data (DPDP)")
    privacy_sub = privacy.add_subparsers(dest="privacy_command", required=True)
    privacy_prune = privacy_sub.add_parser(
        "prune",
        help="anonymise personal data past its retention, by data class (open complaints never)",
    )
    privacy_prune.add_argument(
        "--as-of",
        type=_aware_time,
        default=None,
        help="the pass's time, ISO 8601 with its offset (default: now)",
    )
    privacy_prune.set_defaults(func=cmd_privacy_prune)
    cap = sub.add_parser(
        "capacity",
        help="agents needed now and at the peak hour against the seats (Erlang C/A); "
        "exits 3 when the seats are not enough",
    )
    cap.add_argument(
        "--calls-per-hour", type=float, default=None, help="calls reaching the queue per hour"
    )
    cap.add_argument("--aht", type=float, default=None, help="handle time, talk + wrap-up, s")
    cap.add_argument("--target", type=float, default=0.8, help="service level (default 0.8)")
    cap.add_argument("--threshold", type=float, default=20.0, help="seconds (default 20)")
    cap.add_argument(
        "--patience", type=float, default=None, help="callers' mean patience, s (Erlang A)"
    )
    cap.add_argument("--json", action="store_true", help="one JSON object, as GET /capacity")
    cap.set_defaults(func=cmd_capacity)
    sub.add_parser("migrate", help="create/upgrade the database schema").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("seed", help="seats and demo users").set_defaults(func=cmd_seed)
    sub.add_parser(
        "demo-complaints", help="demo complaints in every status (idempotent)"
    ).set_defaults(func=cmd_demo_complaints)
    prompts = sub.add_parser("prompts", help="prompt audio")
    prompts.add_argument("action", choices=["build"])
    prompts.set_defaults(func=cmd_prompts)
    asterisk = sub.add_parser("asterisk", help="the Asterisk instance")
    asterisk.add_argument("action", choices=["provision", "start", "stop", "render", "cli"])
    asterisk.add_argument("command", nargs="*", help="for `cli`: the CLI command")
    asterisk.set_defaults(func=cmd_asterisk)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.load()
    result: int = args.func(settings, args)
    return result
