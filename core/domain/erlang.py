"""How many agents a queue needs: Erlang C (callers wait as long as it takes) and Erlang A
(callers give up after an exponential patience). Pure arithmetic, no I/O.

The queue is M/M/N: Poisson arrivals at ``calls_per_hour``, exponential handle times with mean
``aht_s`` (talk + wrap-up: what occupies an agent), ``agents`` agents, first come first served.

Service level convention (docs/capacity.md, "Seats the day needs"): calls answered within the
threshold over *all* calls offered; a caller who gives up, early or late, counts against it, so
abandonment can never make a short-staffed queue look well served. Without abandonment
(Erlang C) every convention gives ``P(wait <= threshold)``.

Numerics: Erlang B by its recursion in log space (no factorials, no overflow or underflow for
thousands of agents); Erlang A as the birth-death chain of the number in the system, its
stationary distribution in log space, and a waiting caller's chance to reach an agent in time
in closed form (an incomplete beta function; see :func:`_answered_by`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The helpline's target: 80 % of calls answered within 20 s.
TARGET_SERVICE_LEVEL = 0.8
THRESHOLD_SECONDS = 20.0
#: Tail mass dropped when the birth-death chain is truncated (relative to its largest state).
_TAIL = math.exp(-40.0)


def offered_load(calls_per_hour: float, aht_s: float) -> float:
    """Traffic in erlangs: the agents busy on average if no call ever waited or left."""
    return calls_per_hour * aht_s / 3600.0


def log_erlang_b(agents: int, load: float) -> float:
    """``log B(agents, load)``, the Erlang B blocking probability, by the recursion
    ``B(n) = A B(n-1) / (n + A B(n-1))`` carried in logs: exact for any number of agents."""
    if agents < 0 or load < 0:
        raise ValueError("agents and load must not be negative")
    if load == 0:
        return 0.0 if agents == 0 else -math.inf
    log_load = math.log(load)
    log_b = 0.0
    for n in range(1, agents + 1):
        log_b = log_load + log_b - math.log(n + load * math.exp(log_b))
    return log_b


def erlang_c(agents: int, load: float) -> float:
    """Probability that a caller waits (Erlang C); 1 when ``agents <= load`` (the queue grows
    without bound)."""
    if agents <= load:
        return 1.0
    b = math.exp(log_erlang_b(agents, load))
    return b / (1.0 - (load / agents) * (1.0 - b))


@dataclass(frozen=True, slots=True)
class Performance:
    """What a queue does with ``agents`` agents, in the long run."""

    agents: int
    #: Offered load, erlangs.
    load: float
    #: An arriving caller finds every agent busy.
    wait_probability: float
    #: Answered within the threshold / offered.
    service_level: float
    #: Mean time a caller spends waiting in the queue (Erlang C: the ASA; with patience,
    #: abandoned callers' waits included). ``inf`` when the queue grows without bound.
    mean_wait_s: float
    #: Share of agents' time on calls (carried load / agents).
    occupancy: float
    #: Callers who give up before an agent answers (0 for Erlang C).
    abandon_probability: float


def performance(
    calls_per_hour: float,
    aht_s: float,
    agents: int,
    *,
    threshold_s: float = THRESHOLD_SECONDS,
    patience_s: float | None = None,
) -> Performance:
    """Erlang C (``patience_s`` None) or Erlang A (mean patience ``patience_s``)."""
    _check(calls_per_hour, aht_s, threshold_s, patience_s)
    if agents < 1:
        raise ValueError("agents must be at least 1")
    if patience_s is None:
        return _erlang_c(calls_per_hour, aht_s, agents, threshold_s)
    return _erlang_a(calls_per_hour, aht_s, agents, threshold_s, patience_s)


def service_level(
    calls_per_hour: float,
    aht_s: float,
    agents: int,
    *,
    threshold_s: float = THRESHOLD_SECONDS,
    patience_s: float | None = None,
) -> float:
    return performance(
        calls_per_hour, aht_s, agents, threshold_s=threshold_s, patience_s=patience_s
    ).service_level


def agents_needed(
    calls_per_hour: float,
    aht_s: float,
    *,
    target_sl: float = TARGET_SERVICE_LEVEL,
    threshold_s: float = THRESHOLD_SECONDS,
    patience_s: float | None = None,
) -> int:
    """The fewest agents whose service level reaches ``target_sl``; 0 when no calls come.

    Erlang C: always more agents than the offered load. Erlang A may need fewer (callers who
    leave free the agents), found by a search downward from Erlang C's answer (the service
    level rises with agents)."""
    _check(calls_per_hour, aht_s, threshold_s, patience_s)
    if not 0.0 < target_sl < 1.0:
        raise ValueError("target_sl must be between 0 and 1 (exclusive)")
    if calls_per_hour == 0:
        return 0
    load = offered_load(calls_per_hour, aht_s)
    # Erlang C, walking n upward with one Erlang B step each.
    n = 0
    log_b = 0.0
    log_load = math.log(load)
    while True:
        n += 1
        log_b = log_load + log_b - math.log(n + load * math.exp(log_b))
        if n > load:
            b = math.exp(log_b)
            wait = b / (1.0 - (load / n) * (1.0 - b))
            sl = 1.0 - wait * math.exp(-(n - load) * threshold_s / aht_s)
            if sl >= target_sl:
                break
    if patience_s is None:
        return n

    def meets(agents: int) -> bool:
        return (
            _erlang_a(calls_per_hour, aht_s, agents, threshold_s, patience_s).service_level
            >= target_sl
        )

    if meets(n):
        # Gallop down to an n that fails (or to none), then bisect.
        high, step = n, 1
        while high - step >= 1 and meets(high - step):
            high -= step
            step *= 2
        low = max(0, high - step)
    else:
        low, step = n, 1
        while not meets(low + step):
            low += step
            step *= 2
        high = low + step
    # meets(high) holds; low is 0 or fails.
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return high


def _check(
    calls_per_hour: float, aht_s: float, threshold_s: float, patience_s: float | None
) -> None:
    if not (calls_per_hour >= 0 and math.isfinite(calls_per_hour)):
        raise ValueError("calls_per_hour must be a finite number >= 0")
    if not (aht_s > 0 and math.isfinite(aht_s)):
        raise ValueError("aht_s must be a finite number > 0")
    if not (threshold_s >= 0 and math.isfinite(threshold_s)):
        raise ValueError("threshold_s must be a finite number >= 0")
    if patience_s is not None and not (patience_s > 0 and math.isfinite(patience_s)):
        raise ValueError("patience_s must be a finite number > 0")


def _erlang_c(calls_per_hour: float, aht_s: float, agents: int, threshold_s: float) -> Performance:
    load = offered_load(calls_per_hour, aht_s)
    if agents <= load:
        return Performance(agents, load, 1.0, 0.0, math.inf, 1.0, 0.0)
    wait = erlang_c(agents, load)
    gap = (agents - load) / aht_s  # the queue's drain rate, calls per second
    return Performance(
        agents=agents,
        load=load,
        wait_probability=wait,
        service_level=1.0 - wait * math.exp(-gap * threshold_s),
        mean_wait_s=wait / gap,
        occupancy=load / agents,
        abandon_probability=0.0,
    )


def _erlang_a(
    calls_per_hour: float, aht_s: float, agents: int, threshold_s: float, patience_s: float
) -> Performance:
    """M/M/N+M. States n = agents + k (k callers queued) have arrival rate ``lam`` and leave
    at ``agents*mu + k*theta``; an arriving caller sees the stationary distribution (PASTA).
    A caller with k ahead of them moves up at ``agents*mu + k*theta`` (a completion, or one
    ahead giving up) and gives up themself at ``theta``."""
    lam = calls_per_hour / 3600.0
    mu = 1.0 / aht_s
    theta = 1.0 / patience_s
    load = lam / mu
    if lam == 0:
        return Performance(agents, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    # Stationary weights relative to state n = agents, in logs: below the agents the
    # states sum to 1/B - 1 (Erlang B); queued k: prod_{j<=k} lam / (agents*mu + j*theta).
    log_b = log_erlang_b(agents, load)
    log_below = math.log1p(-math.exp(log_b)) - log_b if log_b < 0 else -math.inf
    log_queue = [0.0]
    peak = 0.0
    k = 0
    while True:
        k += 1
        rate = agents * mu + k * theta
        value = log_queue[-1] + math.log(lam / rate)
        log_queue.append(value)
        peak = max(peak, value)
        if rate > lam and value < peak + math.log(_TAIL):
            break
    top = max(log_below, peak)
    below = math.exp(log_below - top)
    queued = [math.exp(v - top) for v in log_queue]
    total = below + sum(queued)
    below /= total
    queued = [q / total for q in queued]
    wait_probability = sum(queued)
    mean_queue = sum(k * q for k, q in enumerate(queued))
    abandon = theta * mean_queue / lam
    answered_in_time = below + _answered_by(queued, agents * mu, theta, threshold_s)
    return Performance(
        agents=agents,
        load=load,
        wait_probability=wait_probability,
        service_level=min(1.0, answered_in_time),
        mean_wait_s=mean_queue / lam,
        occupancy=min(1.0, load * (1.0 - abandon) / agents),
        abandon_probability=abandon,
    )


def _answered_by(
    ahead: list[float], service_rate: float, theta: float, threshold_s: float
) -> float:
    """For a caller who finds ``k`` callers ahead with probability ``ahead[k]`` (all agents
    busy): the probability that they reach an agent within ``threshold_s``.

    With ``j`` ahead the caller's line moves at ``service_rate + j*theta`` and they give up
    at ``theta``: each of the ``m = k + 1`` steps to an agent lasts Exp(theta*(c + i)),
    ``c = service_rate/theta``, i = 1..m, and is a move up with probability
    ``(c+i-1)/(c+i)``, independently of its length. All ``m`` are moves up with probability
    ``c/(c+m)`` (the product telescopes), and the steps' total S has ``exp(-theta*S)`` ~
    Beta(c+1, m) (Renyi's representation of exponential order statistics), so
    ``P(S <= t) = I_x(m, c+1)`` with ``x = 1 - exp(-theta*t)``: the regularized incomplete
    beta function, taken for m = 1, 2, ... by ``I_x(m+1, b) = I_x(m, b) - x^m (1-x)^b /
    (m B(m, b))`` from ``I_x(1, b) = 1 - (1-x)^b``, its term carried in logs."""
    if threshold_s == 0:
        return 0.0
    c = service_rate / theta
    b = c + 1.0
    x = -math.expm1(-theta * threshold_s)
    log_x = math.log(x)
    log_rest = -theta * threshold_s  # log(1 - x)
    in_time = -math.expm1(b * log_rest)  # I_x(1, b)
    log_term = log_x + b * log_rest + math.log(b)  # log(x^m (1-x)^b / B(m, b)), m = 1
    total = 0.0
    for k, share in enumerate(ahead):
        m = k + 1
        total += share * c / (c + m) * in_time
        in_time = max(0.0, in_time - math.exp(log_term) / m)
        log_term += log_x + math.log((m + b) / m)
    return total
