"""``python -m asterisk_config [provision | lint [dir]]``.

``provision``: provision Asterisk for the instance's settings (``helpline asterisk ...`` is the
full command line; this entry point needs nothing but root). ``lint [dir]``: the boundary lint
of a rendered configuration (asterisk_config/lint.py); without ``dir``, this machine's settings
are rendered into a temporary directory and linted. Exit 1 when a rule is broken.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

USAGE = "usage: python -m asterisk_config [provision | lint [dir]]"


def lint(args: list[str]) -> int:
    from asterisk_config.lint import lint_dir, lint_rendered  # noqa: PLC0415 - per command
    from asterisk_config.render import (  # noqa: PLC0415
        InstanceDirs,
        RenderError,
        SeatCredential,
        render_configs,
    )
    from core.config import Settings  # noqa: PLC0415

    if args:
        directory = Path(args[0])
        if not directory.is_dir():
            print(f"{directory}: not a directory", file=sys.stderr)
            return 2
        findings = lint_dir(directory)
        what = str(directory)
    else:
        settings = Settings.load()
        # Two seats stand for any number: the seat blocks are one template.
        seats = [SeatCredential("agent0001", "x" * 16), SeatCredential("agent0002", "y" * 16)]
        try:
            files = render_configs(
                settings, seats, InstanceDirs.under(settings.asterisk_instance_dir)
            )
        except RenderError as error:
            print(f"cannot render: {error}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="helpline-lint-") as tmp:
            findings = lint_rendered(files, Path(tmp))
        what = f"the configuration rendered from {settings.state_dir}"
    for finding in findings:
        print(finding)
    print(f"{what}: {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


def main(args: list[str]) -> int:
    if args[:1] == ["lint"] and len(args) <= 2:
        return lint(args[1:])
    if args not in ([], ["provision"]):
        print(USAGE, file=sys.stderr)
        return 2
    from asterisk_config.provision import main as provision  # noqa: PLC0415 - per command

    return provision(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
