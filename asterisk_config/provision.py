"""Provision Asterisk 22: a native install if there is one, else a Debian sid chroot.

Debian 12 ships no ``asterisk`` package; Debian sid has Asterisk 22. Installing sid packages into
the host would break it, so we build a ``debootstrap --variant=minbase sid`` chroot at
``settings.asterisk_root`` (outside the repo, ~650 MB, reused by every later run on the machine).

Properties:

* **Idempotent.** A finished root carries a marker file; re-running is a fast no-op apart from
  re-mounting ``/proc`` after a reboot and re-writing ``/etc/hosts``.
* **Race-safe.** Two processes provisioning at once serialise on ``<root>.lock`` (``flock``); the
  second one waits and then finds the marker.
* **Crash-safe.** ``debootstrap`` runs into ``<root>.partial`` and is renamed when complete, so an
  interrupted bootstrap is redone rather than half-used.
* **No host names in code.** The Debian mirror is read from the host's apt sources.

Name resolution inside the chroot: ``/etc/hosts`` names the host and, once the packages are
installed, there is no ``resolv.conf``. Otherwise Asterisk resolves the host name (and root
servers) on every call, and under load PJSIP's distributor queue overflows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.config import Settings

#: Written into the root when provisioning finished; its content is the format version.
MARKER_NAME = ".helpline-provisioned"
MARKER_VERSION = "1"
#: Debian packages installed into the chroot.
CHROOT_PACKAGES: tuple[str, ...] = ("asterisk", "asterisk-modules")
_APT_OPTS: tuple[str, ...] = ("-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Retries=3")


class ProvisionError(RuntimeError):
    """Provisioning failed; the message says what to do about it."""


def _say(msg: str) -> None:
    print(f"[asterisk-provision] {msg}", file=sys.stderr, flush=True)


def native_asterisk_binary() -> str | None:
    """Path of a natively installed ``asterisk`` binary, if any."""
    found = shutil.which("asterisk") or shutil.which("asterisk", path="/usr/sbin:/usr/local/sbin")
    return found


# --------------------------------------------------------------------------- apt sources


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
            continue
        if raw[0] in " \t" and key:
            stanza[key] += " " + raw.strip()
            continue
        name, _, value = raw.partition(":")
        key = name.strip().lower()
        stanza[key] = value.strip()
    if stanza:
        yield stanza


def _is_base_suite(suite: str) -> bool:
    """``bookworm``/``stable``/``sid`` but not ``bookworm-updates``/``bookworm-security``."""
    return bool(suite) and "-" not in suite and "/" not in suite


def debian_mirror_from_apt(apt_dir: Path = Path("/etc/apt")) -> str:
    """URI of the host's main Debian archive, read from its apt sources.

    Looks at ``sources.list`` and ``sources.list.d/*.list``/``*.sources`` (deb822); picks the first
    ``deb`` entry of a base suite that is not a security archive.
    """
    candidates: list[str] = []
    files: list[Path] = []
    if (apt_dir / "sources.list").is_file():
        files.append(apt_dir / "sources.list")
    list_d = apt_dir / "sources.list.d"
    if list_d.is_dir():
        files.extend(sorted(p for p in list_d.iterdir() if p.suffix in (".list", ".sources")))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            for st in _deb822_stanzas(text):
                if "deb" not in st.get("types", "").split():
                    continue
                if st.get("enabled", "yes").lower() == "no":
                    continue
                suites = st.get("suites", "").split()
                for uri in st.get("uris", "").split():
                    if any(_is_base_suite(s) for s in suites):
                        candidates.append(uri)
        else:
            for raw in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", " ", raw.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb" and _is_base_suite(parts[2]):
                    candidates.append(parts[1])
    for uri in candidates:
        if "security" not in uri and uri.startswith(("http://", "https://", "file:")):
            return uri.rstrip("/")
    raise ProvisionError(
        "found no Debian mirror in /etc/apt/sources.list{,.d/}: add the Debian archive to apt's "
        "sources, or pass mirror=... to provision()"
    )


# --------------------------------------------------------------------------- helpers


def _mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    return any(len(f := m.split()) > 1 and f[1] == target for m in mounts)


def _mounts_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path).rstrip("/") + "/"
    out: list[str] = []
    with contextlib.suppress(OSError):
        for m in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
            f = m.split()
            if len(f) > 1 and (f[1] + "/").startswith(prefix):
                out.append(f[1])
    return sorted(out, key=len, reverse=True)


def ensure_proc(root: Path) -> None:
    """Mount ``proc`` at ``root/proc`` unless it already is (once per boot)."""
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    if not _mounted(proc):
        _run(["mount", "-t", "proc", "proc", str(proc)], "mount proc into the chroot")


def write_hosts(root: Path) -> None:
    """Give the chroot an ``/etc/hosts`` naming this host (and the host's own entries)."""
    host = socket.gethostname()
    lines = [f"127.0.0.1\tlocalhost {host}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    with contextlib.suppress(OSError):
        for line in Path("/etc/hosts").read_text(encoding="utf-8").splitlines():
            stripped = line.split("#", 1)[0].split()
            if len(stripped) >= 2 and stripped[0] not in ("127.0.0.1", "::1"):
                lines.append(line)
    content = "\n".join(lines) + "\n"
    hosts = root / "etc" / "hosts"
    if not hosts.is_file() or hosts.read_text(encoding="utf-8") != content:
        hosts.write_text(content, encoding="utf-8")


def _run(
    cmd: Sequence[str], what: str, *, env: dict[str, str] | None = None, quiet: bool = False
) -> None:
    t0 = time.monotonic()
    _say(f"{what} ...")
    proc = subprocess.run(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise ProvisionError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}\n"
            "Check network access to the Debian mirror and free disk space, then re-run "
            "`helpline asterisk provision` (it resumes where it stopped)."
        )
    if not quiet:
        _say(f"{what}: done in {time.monotonic() - t0:.1f} s")


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"another process is provisioning (lock {path}); waiting ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_provisioned(root: Path) -> bool:
    marker = root / MARKER_NAME
    return (
        marker.is_file()
        and marker.read_text(encoding="utf-8").strip() == MARKER_VERSION
        and (root / "usr" / "sbin" / "asterisk").exists()
    )


# --------------------------------------------------------------------------- main entry


def provision(settings: Settings, *, mirror: str | None = None) -> Path | None:
    """Make Asterisk available; return the chroot root, or ``None`` for a native install.

    Fast no-op when already done. Raises :class:`ProvisionError` with advice on failure.
    """
    if settings.native_asterisk:
        if native_asterisk_binary() is None:
            raise ProvisionError(
                "HELPLINE_ASTERISK_ROOT says native Asterisk, but no `asterisk` binary is on PATH; "
                "install Asterisk or set HELPLINE_ASTERISK_ROOT to a chroot path"
            )
        return None
    root = Path(settings.asterisk_root).absolute()
    if is_provisioned(root):
        ensure_proc(root)
        write_hosts(root)
        return root
    if os.geteuid() != 0:
        raise ProvisionError(
            f"building the Asterisk chroot at {root} needs root (debootstrap, mount, chroot); "
            "run `sudo helpline asterisk provision` once"
        )
    if shutil.which("debootstrap") is None:
        raise ProvisionError("debootstrap is missing: `apt-get install -y debootstrap`")
    with _lock(root.parent / (root.name + ".lock")):
        if is_provisioned(root):  # another process finished while we waited
            ensure_proc(root)
            write_hosts(root)
            return root
        t_all = time.monotonic()
        _build(root, mirror or debian_mirror_from_apt())
        _say(f"Asterisk chroot ready at {root} in {time.monotonic() - t_all:.0f} s")
    return root


def _build(root: Path, mirror: str) -> None:
    if not (root / "usr" / "bin" / "apt-get").exists():
        partial = root.parent / (root.name + ".partial")
        for mnt in _mounts_under(partial):
            subprocess.run(["umount", "-l", mnt], check=False)
        if partial.exists():
            _say(f"removing an interrupted bootstrap at {partial}")
            shutil.rmtree(partial)
        if root.exists():
            for mnt in _mounts_under(root):
                subprocess.run(["umount", "-l", mnt], check=False)
            shutil.rmtree(root)
        _run(
            ["debootstrap", "--variant=minbase", "sid", str(partial), mirror],
            f"debootstrap Debian sid from {mirror} into {partial} (about a minute)",
        )
        partial.rename(root)
    ensure_proc(root)
    # Services must not start inside the chroot while packages are installed.
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
    policy.chmod(0o755)
    # apt inside the chroot needs name resolution while installing.
    resolv = root / "etc" / "resolv.conf"
    host_resolv = Path("/etc/resolv.conf")
    if host_resolv.is_file() and not resolv.exists():
        shutil.copyfile(host_resolv, resolv)
    write_hosts(root)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
        "HOME": "/root",
    }
    _run(["chroot", str(root), "apt-get", *_APT_OPTS, "update"], "apt-get update (sid)", env=env)
    _run(
        [
            "chroot",
            str(root),
            "apt-get",
            *_APT_OPTS,
            "install",
            "-y",
            "--no-install-recommends",
            *CHROOT_PACKAGES,
        ],
        f"apt-get install {' '.join(CHROOT_PACKAGES)} (about 30 s)",
        env=env,
    )
    # No resolv.conf once installed: Asterisk must not do DNS per call (see module docstring).
    with contextlib.suppress(FileNotFoundError):
        resolv.unlink()
    (root / "srv" / "helpline").mkdir(parents=True, exist_ok=True)
    (root / MARKER_NAME).write_text(MARKER_VERSION + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asterisk_config``: provision for the instance's settings
    (:meth:`core.config.Settings.load`, as every entry point reads them)."""
    del argv
    try:
        root = provision(Settings.load())
    except ProvisionError as exc:
        _say(f"ERROR: {exc}")
        return 1
    _say(f"ok: {'native asterisk' if root is None else root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
