"""Secrets are generated on the machine that runs the helpline, never defaulted or committed.

They live in ``<state_dir>/secrets.env`` (mode 0600), which :class:`core.config.Settings` reads.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config import AMI_SERVICES, Settings
from core.domain.credentials import generate_secret


def secrets_file(settings: Settings) -> Path:
    return settings.state_dir / "secrets.env"


def ensure_secrets(settings: Settings) -> Settings:
    """Generate any missing AMI secret into the secrets file; return settings that carry them."""
    path = secrets_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    present = {line.split("=", 1)[0] for line in lines if "=" in line}
    updates: dict[str, str] = {}
    for service in AMI_SERVICES:
        key = f"HELPLINE_AMI_SECRET_{service.upper()}"
        if settings.ami_secret(service):
            continue  # given by the environment
        if key not in present:
            value = generate_secret()
            lines.append(f"{key}={value}")
        else:
            value = next(line.split("=", 1)[1] for line in lines if line.startswith(key + "="))
        updates[f"ami_secret_{service}"] = value
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return settings.model_copy(update=updates)
