"""Asterisk configuration: provisioning, templates rendered from Settings, instance control."""

from asterisk_config.instance import AsteriskError, AsteriskInstance
from asterisk_config.provision import ProvisionError, provision
from asterisk_config.render import (
    InstanceDirs,
    RenderError,
    RenderOptions,
    SeatCredential,
    render_configs,
)

__all__ = [
    "AsteriskError",
    "AsteriskInstance",
    "InstanceDirs",
    "ProvisionError",
    "RenderError",
    "RenderOptions",
    "SeatCredential",
    "provision",
    "render_configs",
]
