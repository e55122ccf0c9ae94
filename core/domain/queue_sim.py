"""A discrete-event simulation of the M/M/N queue (with exponential patience if given), to
check :mod:`core.domain.erlang` by another road. Pure Python, seeded, no I/O.

First come first served makes it short: a caller's wait depends only on the callers before
them, so each caller takes the agent that frees first (a heap of the agents' free times) at
``max(arrival, that time)``, and gives up instead if their patience runs out first (an
abandoned caller never holds an agent). Counted with the service-level convention of
:mod:`core.domain.erlang`.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Simulated:
    """What the simulated callers met (after the warm-up)."""

    offered: int
    answered: int
    answered_in_time: int
    abandoned: int
    abandoned_in_time: int
    total_wait_s: float

    @property
    def service_level(self) -> float:
        """Answered within the threshold / offered."""
        return self.answered_in_time / self.offered if self.offered else 1.0

    @property
    def mean_wait_s(self) -> float:
        return self.total_wait_s / self.offered if self.offered else 0.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.offered if self.offered else 0.0


def simulate(
    calls_per_hour: float,
    aht_s: float,
    agents: int,
    *,
    threshold_s: float = 20.0,
    patience_s: float | None = None,
    calls: int = 100_000,
    warmup: int = 5_000,
    seed: int = 1076,
) -> Simulated:
    """Simulate ``warmup + calls`` callers from an empty queue; count the last ``calls``."""
    if agents < 1 or calls_per_hour <= 0 or aht_s <= 0:
        raise ValueError("agents, calls_per_hour and aht_s must be positive")
    rng = random.Random(seed)
    arrival_rate = calls_per_hour / 3600.0
    free_at = [0.0] * agents  # a heap: when each agent is next free
    now = 0.0
    offered = answered = in_time = abandoned = abandoned_in_time = 0
    total_wait = 0.0
    for index in range(warmup + calls):
        now += rng.expovariate(arrival_rate)
        patience = rng.expovariate(1.0 / patience_s) if patience_s is not None else math.inf
        handle = rng.expovariate(1.0 / aht_s)
        start = max(now, free_at[0])
        wait = start - now
        gives_up = wait > patience
        if not gives_up:
            heapq.heapreplace(free_at, start + handle)
        if index < warmup:
            continue
        offered += 1
        if gives_up:
            abandoned += 1
            abandoned_in_time += patience <= threshold_s
            total_wait += patience
        else:
            answered += 1
            in_time += wait <= threshold_s
            total_wait += wait
    return Simulated(offered, answered, in_time, abandoned, abandoned_in_time, total_wait)
