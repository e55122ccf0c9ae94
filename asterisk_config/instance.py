"""One Asterisk instance: its directories, rendered config, process and CLI.

Several instances (a test run, the demo) share one installation (the sid chroot, or a native
install) and run side by side: each :attr:`Settings.instance` gets ``/srv/helpline/<instance>``
inside the chroot (``<state_dir>/asterisk/<instance>`` for a native install) with its own
``etc, run, spool, log, lib, data, cache`` and its own ports, all from :class:`Settings`.

The process is started as ``[chroot ROOT] asterisk -f -n -C <etc>/asterisk.conf`` in the
background with stdout in ``<state_dir>/logs/asterisk-<instance>.log``. Never ``-c``: with stdin at
EOF the console loop spins a whole core forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from asterisk_config import provision as _provision
from asterisk_config.render import (
    SECRET_FILES,
    TLS_CERT_NAME,
    TLS_KEY_NAME,
    InstanceDirs,
    RenderError,
    RenderOptions,
    SeatCredential,
    render_configs,
)
from asterisk_config.tls import tls_files
from core.config import Settings

#: Languages whose prompt directories we create (``sounds/<lang>/helpline``).
PROMPT_LANGUAGES: tuple[str, ...] = ("hi", "en")
_DATA_SRC = "/usr/share/asterisk"  # the installation's astdatadir
_MODULES_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/asterisk/modules",
    "/usr/lib/aarch64-linux-gnu/asterisk/modules",
    "/usr/lib/asterisk/modules",
    "/usr/lib64/asterisk/modules",
)


class AsteriskError(RuntimeError):
    """Asterisk could not be started, reached or stopped; the message says why."""


#: Asterisk processes this Python process started, by config path. Module-level so that a
#: short-lived AsteriskInstance (``helpline up``) does not drop a running child's handle.
_STARTED: dict[str, subprocess.Popen[bytes]] = {}


class AsteriskInstance:
    """Provision, render, start, stop and talk to the Asterisk of one helpline instance."""

    @property
    def _proc(self) -> subprocess.Popen[bytes] | None:
        return _STARTED.get(self.config_path)

    @_proc.setter
    def _proc(self, process: subprocess.Popen[bytes] | None) -> None:
        if process is None:
            _STARTED.pop(self.config_path, None)
        else:
            _STARTED[self.config_path] = process

    def __init__(self, settings: Settings, *, options: RenderOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RenderOptions()
        self.root: Path | None = (
            None if settings.native_asterisk else Path(settings.asterisk_root).absolute()
        )
        self._inner_base = settings.asterisk_instance_dir
        self.dirs = InstanceDirs.under(self._inner_base, self._modules_dir())
        self.log_path = (
            Path(settings.state_dir).absolute() / "logs" / f"asterisk-{settings.instance}.log"
        )

    # ------------------------------------------------------------------ paths

    def host_path(self, inner: str) -> Path:
        """Host path of a path as Asterisk sees it (inside the chroot)."""
        if self.root is None:
            return Path(inner)
        return self.root / inner.lstrip("/")

    @property
    def base_dir(self) -> Path:
        """Host path of this instance's directory."""
        return self.host_path(self._inner_base)

    @property
    def config_path(self) -> str:
        """``asterisk.conf`` as Asterisk sees it (argument of ``-C``)."""
        return f"{self.dirs.etc}/asterisk.conf"

    def sounds_dir(self, lang: str) -> Path:
        """Host directory for prompts of ``lang``: ``Playback(helpline/<name>)`` plays
        ``<this dir>/<name>.wav`` on a channel whose ``CHANNEL(language)`` is ``lang``."""
        if lang not in PROMPT_LANGUAGES:
            raise ValueError(f"unsupported prompt language {lang!r}; one of {PROMPT_LANGUAGES}")
        return self.host_path(f"{self.dirs.data}/sounds/{lang}/helpline")

    def moh_dir(self) -> Path:
        """Host directory for hold music (8 kHz mono wav); re-render after adding files."""
        return self.host_path(f"{self.dirs.data}/moh")

    def _modules_dir(self) -> str:
        for cand in _MODULES_CANDIDATES:
            if self.host_path(cand).is_dir():
                return cand
        return _MODULES_CANDIDATES[0]

    def _cmd(self, *args: str) -> list[str]:
        binary = "asterisk"
        if self.root is None:
            binary = _provision.native_asterisk_binary() or "asterisk"
            return [binary, *args]
        return ["chroot", str(self.root), binary, *args]

    # ------------------------------------------------------------------ provisioning/config

    def provision(self) -> None:
        """Make the installation exist (idempotent, fast when done)."""
        _provision.provision(self.settings)

    def render(self, seats: Sequence[SeatCredential]) -> list[Path]:
        """Create the instance's directories and write its config files; returns the files.

        Safe while Asterisk runs: follow with :meth:`reload`.
        """
        if self.root is not None and not _provision.is_provisioned(self.root):
            raise AsteriskError(
                f"no Asterisk installation at {self.root}: call provision() first "
                "(`helpline asterisk provision`)"
            )
        for d in (
            self.dirs.etc,
            self.dirs.run,
            self.dirs.spool,
            self.dirs.log,
            self.dirs.lib,
            self.dirs.data,
            self.dirs.cache,
            self.settings.recordings_dir_for_asterisk,
        ):
            self.host_path(d).mkdir(parents=True, exist_ok=True)
        self._prepare_data_dir()
        moh = self.moh_dir()
        have_moh = any(p.suffix in (".wav", ".gsm", ".ulaw", ".sln") for p in moh.iterdir())
        opts = dataclasses.replace(self.options, have_moh=have_moh)
        files = render_configs(self.settings, seats, self.dirs, opts)
        etc = self.host_path(self.dirs.etc)
        written: list[Path] = []
        for name, text in files.items():
            path = etc / name
            tmp = path.with_name(f".{name}.tmp")
            mode = 0o600 if name in SECRET_FILES else 0o644
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
            written.append(path)
        written.extend(self._install_tls())
        return written

    def _install_tls(self) -> list[Path]:
        """Copy the WSS certificate and key (``asterisk_config.tls``, made by ``helpline up``)
        into ``etc/keys``, where Asterisk -- in a chroot, it cannot read the host's state dir --
        finds them. Without them Asterisk starts all the same, with no WSS listener."""
        source = tls_files(self.settings)
        keys = self.host_path(f"{self.dirs.etc}/keys")
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        written: list[Path] = []
        for src, name, mode in (
            (source.cert, TLS_CERT_NAME, 0o644),
            (source.key, TLS_KEY_NAME, 0o600),
        ):
            if not src.is_file():
                continue
            data = src.read_bytes()
            path = keys / name
            if path.is_file() and path.read_bytes() == data:
                continue
            tmp = path.with_name(f".{name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
            written.append(path)
        return written

    def _prepare_data_dir(self) -> None:
        """A private astdatadir: symlinks to the installation's data, our own prompt dirs.

        ``sounds/<lang>`` for our languages is a real directory holding a ``helpline/`` folder
        for our prompts plus symlinks to the installation's stock prompts of that language.
        """
        data = self.host_path(self.dirs.data)
        src = self.host_path(_DATA_SRC)
        data.mkdir(parents=True, exist_ok=True)
        (data / "moh").mkdir(exist_ok=True)
        (data / "agi-bin").mkdir(exist_ok=True)
        if src.is_dir():
            for entry in src.iterdir():
                if entry.name in ("sounds", "moh", "agi-bin"):
                    continue
                _symlink(data / entry.name, f"{_DATA_SRC}/{entry.name}")
        sounds = data / "sounds"
        sounds.mkdir(exist_ok=True)
        src_sounds = src / "sounds"
        if src_sounds.is_dir():
            for entry in src_sounds.iterdir():
                if entry.name not in PROMPT_LANGUAGES:
                    _symlink(sounds / entry.name, f"{_DATA_SRC}/sounds/{entry.name}")
        for lang in PROMPT_LANGUAGES:
            lang_dir = sounds / lang
            if lang_dir.is_symlink():
                lang_dir.unlink()
            (lang_dir / "helpline").mkdir(parents=True, exist_ok=True)
            stock = self._resolve_inner(f"{_DATA_SRC}/sounds/{lang}")
            if stock is None:
                continue
            inner_stock, host_stock = stock
            for entry in host_stock.iterdir():
                if entry.name != "helpline":
                    _symlink(lang_dir / entry.name, f"{inner_stock}/{entry.name}")

    def _resolve_inner(self, inner: str) -> tuple[str, Path] | None:
        """Resolve ``inner`` (absolute symlinks included) inside the root, never against ``/``."""
        path = inner
        for _ in range(16):
            host = self.host_path(path)
            if host.is_symlink():
                target = os.readlink(host)
                path = target if target.startswith("/") else f"{os.path.dirname(path)}/{target}"
                path = os.path.normpath(path)
                continue
            return (path, host) if host.is_dir() else None
        return None

    # ------------------------------------------------------------------ process

    def _pid(self) -> int | None:
        pidfile = self.host_path(f"{self.dirs.run}/asterisk.pid")
        try:
            pid = int(pidfile.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"asterisk" not in cmdline or self.config_path.encode() not in cmdline:
            return None  # a stale pid file naming someone else's process
        return pid

    def is_running(self) -> bool:
        """Whether this instance's Asterisk process is alive (it may still be booting)."""
        if self._proc is not None and self._proc.poll() is None:
            return True
        return self._pid() is not None

    def _check_ports_free(self) -> None:
        s = self.settings
        probes: list[tuple[str, int, int]] = [
            (s.ami_host, s.ami_port, socket.SOCK_STREAM),
            (s.sip_host, s.sip_port, socket.SOCK_DGRAM),
            (s.wss_host, s.wss_port, socket.SOCK_STREAM),
        ]
        for host, port, kind in probes:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(fam, kind) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        what = {s.ami_port: "AMI", s.sip_port: "SIP", s.wss_port: "WSS"}[port]
                        raise AsteriskError(
                            f"{host}:{port} ({what}) is already in use; another instance? give "
                            f"instance {s.instance!r} its own ports (HELPLINE_AMI_PORT, "
                            "HELPLINE_SIP_PORT, HELPLINE_WSS_PORT)"
                        ) from None
                    raise

    def start(self, timeout: float = 60.0) -> float:
        """Start Asterisk (if not running) and wait until fully booted; returns seconds taken."""
        t0 = time.monotonic()
        if not self.host_path(f"{self.dirs.etc}/asterisk.conf").is_file():
            raise AsteriskError(
                f"instance {self.settings.instance!r} has no config: render() first"
            )
        if self.is_running():
            self._wait_booted(t0 + timeout)
            return time.monotonic() - t0
        if self.root is not None:
            _provision.ensure_proc(self.root)
        self._check_ports_free()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.host_path(f"{self.dirs.run}/asterisk.pid").unlink()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%F %T')} ===\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._cmd("-f", "-n", "-C", self.config_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        try:
            self._wait_booted(t0 + timeout)
        except BaseException:
            self.stop(timeout=5)
            raise
        return time.monotonic() - t0

    def _wait_booted(self, deadline: float) -> None:
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise AsteriskError(
                    f"Asterisk exited with {self._proc.returncode} while starting; "
                    f"see {self.log_path} and {self.host_path(self.dirs.log)}/messages.log\n"
                    + _tail(self.log_path)
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AsteriskError(
                    f"Asterisk did not boot in time; see {self.log_path}\n" + _tail(self.log_path)
                )
            try:
                proc = subprocess.run(
                    self._cmd("-C", self.config_path, "-rx", "core waitfullybooted"),
                    capture_output=True,
                    timeout=max(0.5, remaining),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                continue
            if proc.returncode == 0 and b"fully booted" in proc.stdout.lower():
                return
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Asterisk now (``core stop now``); escalate to SIGTERM/SIGKILL if it lingers."""
        pid = self._pid()
        if pid is None and self._proc is not None and self._proc.poll() is None:
            pid = self._proc.pid
        if pid is None:
            self._reap()
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                self._cmd("-C", self.config_path, "-rx", "core stop now"),
                capture_output=True,
                timeout=min(timeout, 5.0),
                check=False,
            )
        deadline = time.monotonic() + timeout
        sig_sent: signal.Signals | None = None
        while _alive(pid):
            self._reap()
            if time.monotonic() > deadline:
                if sig_sent is signal.SIGKILL:
                    raise AsteriskError(f"Asterisk pid {pid} survives SIGKILL")
                sig_sent = signal.SIGTERM if sig_sent is None else signal.SIGKILL
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig_sent)
                deadline = time.monotonic() + 5.0
            time.sleep(0.05)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.01)
            if self._proc.returncode is not None:
                self._proc = None

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run one CLI command (``asterisk -rx``) and return its output."""
        if any(c in command for c in ("\r", "\n", "\x00")):
            raise ValueError("CLI command must be one line")
        try:
            proc = subprocess.run(
                self._cmd("-C", self.config_path, "-rx", command),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AsteriskError(f"CLI command {command!r} timed out after {timeout} s") from None
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0 or "Unable to connect to remote asterisk" in out:
            raise AsteriskError(
                f"CLI {command!r} failed (exit {proc.returncode}): "
                f"{(out + proc.stderr.decode('utf-8', 'replace')).strip()[-500:]}"
            )
        return out

    def reload(self) -> str:
        """Reload every module's configuration (``core reload``) after :meth:`render`."""
        return self.cli("core reload")

    def __repr__(self) -> str:
        return f"AsteriskInstance({self.settings.instance!r}, base={str(self.base_dir)!r})"


def _symlink(link: Path, target: str) -> None:
    if link.is_symlink():
        if os.readlink(link) == target:
            return
        link.unlink()
    elif link.exists():
        return  # a real file or directory is ours; leave it
    os.symlink(target, link)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def seats_for(names: Iterable[str], password: str) -> list[SeatCredential]:
    """Seats with one shared password (tests and demos only)."""
    return [SeatCredential(name=n, password=password) for n in names]


__all__ = [
    "PROMPT_LANGUAGES",
    "AsteriskError",
    "AsteriskInstance",
    "RenderError",
    "SeatCredential",
    "seats_for",
]
