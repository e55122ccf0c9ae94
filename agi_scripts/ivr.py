"""``agi://…/ivr``: the citizen's first minute on 1076.

The contract with the dialplan (asterisk_config/templates/extensions.conf.j2): set ``IVR_ROUTE``
(and ``IVR_PATH``/``IVR_LANG`` for the agent's screen), then ``IVR_DONE=1`` as the very last
act. A call whose script died before that marker goes to the agents' queue anyway.
"""

from __future__ import annotations

import logging

from core.transport.fastagi import AGICall

log = logging.getLogger(__name__)

#: Prompt directory under Asterisk's sounds/<lang>/ (see ivr.prompts).
PROMPTS = "helpline"
MENU_TIMEOUT_MS = 5000
DTMF_KEYS = "0123456789*#"


def prompt(name: str) -> str:
    return f"{PROMPTS}/{name}"


async def finish(call: AGICall, route: str, path: list[str], lang: str) -> None:
    """Hand the call back to the dialplan: route first, the completion marker last."""
    await call.set_variable("IVR_PATH", ">".join(path))
    await call.set_variable("IVR_LANG", lang)
    await call.set_variable("IVR_ROUTE", route)
    await call.set_variable("IVR_DONE", "1")


async def ivr(call: AGICall) -> None:
    lang = "hi"
    path = ["welcome"]
    await call.set_variable("CHANNEL(language)", lang)
    # A key pressed during the welcome already answers the menu (digits interrupt prompts).
    digits = await call.stream_file(prompt("welcome"), DTMF_KEYS)
    path.append("main_menu")
    timed_out = False
    if not digits:
        digits = await call.stream_file(prompt("press1_new_complaint"), DTMF_KEYS)
    if not digits:
        # GET DATA plays exactly one file (no "&" lists), so it takes the last option prompt.
        digits, timed_out = await call.get_data(prompt("press0_agent"), MENU_TIMEOUT_MS, 1)
    path.append(f"key:{digits}" if digits else ("timeout" if timed_out else "no_input"))
    # The walking skeleton serves every choice through an agent; issue #4 adds the full menu.
    path.append("queue")
    log.info("call %s from %s: %s", call.uniqueid, call.caller_id, ">".join(path))
    await finish(call, "queue", path, lang)
