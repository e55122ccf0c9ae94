"""The complaint lifecycle's worker side: the SMS outbox (``notifications``) and the ``sla``
worker process that delivers it (``worker``). Imports ``core`` only; the API's complaints
service calls :func:`lifecycle.notifications.enqueue` in the transaction of the change."""
