"""The fault-injection ledger (issue 15): every fault suite counts here what it injected, how
many invariants it checked after each injection and what it found broken; ``make test`` prints
the table at the end (``pytest_terminal_summary`` in tests/conftest.py).

A suite records as it goes and asserts at the end::

    ledger = faults.fault("FastAGI killed mid-call")
    ledger.injected += 1
    ledger.check(row.disposition == "answered", f"{uid}: {row.disposition}")
    ...
    ledger.assert_clean()
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Fault:
    name: str
    injected: int = 0
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def check(self, holds: bool, violation: str) -> bool:
        """Count one invariant; remember ``violation`` when it does not hold."""
        self.checked += 1
        if not holds:
            self.violations.append(violation)
        return holds

    def assert_clean(self) -> None:
        assert self.injected > 0, f"{self.name}: nothing was injected"
        assert not self.violations, f"{self.name}: {len(self.violations)} violations: " + "; ".join(
            self.violations[:20]
        )


#: By fault name, in the order the suites ran.
LEDGER: dict[str, Fault] = {}


def fault(name: str) -> Fault:
    """The ledger line of ``name`` (one per fault; a suite that runs twice adds to it)."""
    return LEDGER.setdefault(name, Fault(name))


def report() -> list[str]:
    """The table printed at the end of the run."""
    if not LEDGER:
        return []
    width = max(len(name) for name in LEDGER)
    lines = [f"{'fault':<{width}}  injected  invariants  violations"]
    for entry in LEDGER.values():
        lines.append(
            f"{entry.name:<{width}}  {entry.injected:>8}  {entry.checked:>10}  "
            f"{len(entry.violations):>10}"
        )
    lines.append(
        f"{'total':<{width}}  {sum(e.injected for e in LEDGER.values()):>8}  "
        f"{sum(e.checked for e in LEDGER.values()):>10}  "
        f"{sum(len(e.violations) for e in LEDGER.values()):>10}"
    )
    return lines
