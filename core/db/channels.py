"""PostgreSQL NOTIFY channels: how the services signal each other (one name, one place).

The API writes agent intent and seats and notifies the queue manager; the queue manager
notifies the API's WebSocket pushes after its writes.
"""

from __future__ import annotations

#: api → queue_manager: an agent's seat intent changed; payload: the seat (``*`` for all).
AGENT_INTENT_CHANNEL = "agent_intent"
#: api → queue_manager: the seats table changed; re-render PJSIP and reload.
SEAT_CONFIG_CHANNEL = "seat_config"
#: queue_manager → api: something a supervisor sees changed (debounced).
STATS_CHANNEL = "queue_stats"
#: queue_manager → api: a caller was connected to an agent; payload: JSON seat, uniqueid.
AGENT_CONNECT_CHANNEL = "agent_connect"
#: queue_manager → api: ``seat_config_state`` was written (seats applied, or the error).
SEAT_CONFIG_APPLIED_CHANNEL = "seat_config_applied"
#: whoever queues an SMS → the ``sla`` worker: ``sms_outbox`` has a new row (sent at COMMIT).
SMS_OUTBOX_CHANNEL = "sms_outbox"
#: api → every API process: a user was disabled; payload: the user's id. Their open
#: WebSockets close with 1008 (policy violation), whichever process holds them.
USER_ACCESS_CHANNEL = "user_access"
#: api → every API process: a token of the user was revoked (logout); payload: the user's id.
#: Each process forgets what it remembered of that user's tokens (api/services/auth.py).
TOKEN_REVOKED_CHANNEL = "token_revoked"
