"""Matching statement lines to Lipa's payments in memory: plain data in, a plan out; no database.

Three ways, in order: the receipt number; else the payer hint, amount, account and time (within ten
minutes) when exactly one payment fits; else the line is unmatched (money Lipa never recorded).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .statement import Line

WINDOW = timedelta(minutes=10)
COMPLETED = "COMPLETED"
# Unpaid payments a statement line may turn out to have paid (a callback that never came).
FUZZY_UNPAID = frozenset({"PENDING", "PROCESSING", "EXPIRED", "FAILED"})


@dataclass(slots=True)
class Candidate:
    """A payment as the matcher sees it: one query row, no model object."""

    id: int
    reference: str
    phone: str
    amount: int
    account: str
    status: str
    receipt: str | None
    created_at: datetime
    completed_at: datetime | None

    def fuzzy_eligible(self) -> bool:
        """Completed without a receipt (confirmed by STK query), or unpaid; never one holding another receipt."""
        return not self.receipt and (self.status == COMPLETED or self.status in FUZZY_UNPAID)


@dataclass
class Plan:
    """What each new line matched; the service turns it into rows and status changes."""

    by_receipt: list[tuple[Line, Candidate]] = field(default_factory=list)  # same receipt, same amount
    mismatched: list[tuple[Line, Candidate]] = field(default_factory=list)  # same receipt, other amount
    fuzzy: list[tuple[Line, Candidate]] = field(default_factory=list)
    unmatched: list[tuple[Line, list[Candidate]]] = field(default_factory=list)  # with the ones that tied

    @property
    def matched(self) -> int:
        return len(self.by_receipt) + len(self.fuzzy)


def split_repeats(lines: list[Line], known: set[str]) -> tuple[list[Line], list[tuple[Line, Line]], int]:
    """(new lines, (repeat, first) for a receipt twice in this file, lines an earlier statement already had)."""
    fresh: list[Line] = []
    repeats: list[tuple[Line, Line]] = []
    first: dict[str, Line] = {}
    known_count = 0
    for line in lines:
        if line.receipt in known:
            known_count += 1
        elif line.receipt in first:
            repeats.append((line, first[line.receipt]))
        else:
            first[line.receipt] = line
            fresh.append(line)
    return fresh, repeats, known_count


class FuzzyIndex:
    """Payments a line may match without a receipt, by amount and the phone's last two digits."""

    def __init__(self, candidates):
        self.used: set[int] = set()
        self._by_key: dict[tuple[int, str], list[Candidate]] = defaultdict(list)
        self._by_amount: dict[int, list[Candidate]] = defaultdict(list)
        for cand in candidates:
            if cand.phone and cand.fuzzy_eligible():
                self._by_key[(cand.amount, cand.phone[-2:])].append(cand)
                self._by_amount[cand.amount].append(cand)

    def fitting(self, line: Line) -> list[Candidate]:
        """Unused payments of the same amount whose phone, account and time fit the line."""
        if not line.phone_prefix:
            return []
        tail = line.phone_suffix or line.phone
        pool = self._by_key.get((line.amount, tail[-2:]), ()) if len(tail) >= 2 else self._by_amount.get(
            line.amount, ())
        return [cand for cand in pool if cand.id not in self.used and fits(line, cand)]

    def take(self, line: Line) -> tuple[Candidate | None, list[Candidate]]:
        """The one payment that fits (then used), or None with the payments that tied."""
        found = self.fitting(line)
        if len(found) != 1:
            return None, found
        self.used.add(found[0].id)
        return found[0], found


def fits(line: Line, cand: Candidate) -> bool:
    """Phone hint (prefix and suffix), account when both have one, and time within the window."""
    phone = cand.phone
    if not (phone.startswith(line.phone_prefix) and phone.endswith(line.phone_suffix)):
        return False
    if line.account and cand.account and line.account != cand.account.upper():
        return False
    moment = line.completed_at
    return any(when is not None and abs(when - moment) <= WINDOW for when in (cand.completed_at, cand.created_at))


def plan(lines: list[Line], by_receipt: dict[str, Candidate], index: FuzzyIndex) -> Plan:
    """Receipt matches first (so a payment with a receipt is never taken by a guess), then the guesses."""
    result = Plan()
    rest = []
    for line in lines:
        cand = by_receipt.get(line.receipt)
        if cand is None:
            rest.append(line)
            continue
        index.used.add(cand.id)
        (result.by_receipt if cand.amount == line.amount else result.mismatched).append((line, cand))
    for line in rest:
        cand, tied = index.take(line)
        if cand is None:
            result.unmatched.append((line, tied))
        else:
            result.fuzzy.append((line, cand))
    return result
