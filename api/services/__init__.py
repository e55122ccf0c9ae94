"""The helpline's rules behind the API, one module per resource (agents, auth, calls,
complaints, health, seats). Each function takes an ``AsyncSession`` (and ``Settings`` where needed),
raises :mod:`api.services.errors` and knows nothing of HTTP, so the routers, the CLI, the
workers and the tests call the same code. Modules share :mod:`~api.services.lookups`,
:mod:`~api.services.notify` and the errors, never each other."""
