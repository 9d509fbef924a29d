"""Per-stage document accounting: every document read ends in exactly one bucket.

A stage counts what it read (``in``) independently of what it did with it
(``out``, ``removed[reason]``, ``rejected[reason]``), so ``check`` catches a
stage that loses or invents documents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class AccountingError(RuntimeError):
    """Documents were lost or invented between a stage's input and its outcomes."""


@dataclass
class Tally:
    """Documents and bytes of one bucket."""

    docs: int = 0
    bytes: int = 0

    def add(self, docs: int, nbytes: int) -> None:
        self.docs += docs
        self.bytes += nbytes

    def to_dict(self) -> dict[str, int]:
        return {"docs": self.docs, "bytes": self.bytes}


@dataclass
class StageStats:
    """Counts of one stage (or one unit of it); merge units to get the stage's."""

    stage: str
    input: Tally = field(default_factory=Tally)
    output: Tally = field(default_factory=Tally)
    removed: dict[str, Tally] = field(default_factory=dict)
    rejected: dict[str, Tally] = field(default_factory=dict)
    extra: Counter = field(default_factory=Counter)

    def add_input(self, docs: int, nbytes: int) -> None:
        self.input.add(docs, nbytes)

    def add_output(self, docs: int, nbytes: int) -> None:
        self.output.add(docs, nbytes)

    def add_removed(self, reason: str, docs: int, nbytes: int) -> None:
        self.removed.setdefault(reason, Tally()).add(docs, nbytes)

    def add_rejected(self, reason: str, docs: int, nbytes: int) -> None:
        self.rejected.setdefault(reason, Tally()).add(docs, nbytes)

    def count(self, name: str, value: int = 1) -> None:
        """Stage-specific counters (pairs examined, ids generated, ...)."""
        self.extra[name] += value

    def merge(self, other: StageStats) -> None:
        self.input.add(other.input.docs, other.input.bytes)
        self.output.add(other.output.docs, other.output.bytes)
        for reason, tally in other.removed.items():
            self.add_removed(reason, tally.docs, tally.bytes)
        for reason, tally in other.rejected.items():
            self.add_rejected(reason, tally.docs, tally.bytes)
        self.extra.update(other.extra)

    def outcome_total(self) -> Tally:
        total = Tally(self.output.docs, self.output.bytes)
        for tally in [*self.removed.values(), *self.rejected.values()]:
            total.add(tally.docs, tally.bytes)
        return total

    def check(self) -> None:
        """Raise unless in = out + removed + rejected, for documents and bytes."""
        total = self.outcome_total()
        if (total.docs, total.bytes) != (self.input.docs, self.input.bytes):
            raise AccountingError(
                f"{self.stage}: in={self.input.to_dict()} but out+removed+rejected={total.to_dict()}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "in": self.input.to_dict(),
            "out": self.output.to_dict(),
            "removed": {k: v.to_dict() for k, v in sorted(self.removed.items())},
            "rejected": {k: v.to_dict() for k, v in sorted(self.rejected.items())},
            "counters": dict(sorted(self.extra.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        return cls(
            stage=data["stage"],
            input=Tally(**data["in"]),
            output=Tally(**data["out"]),
            removed={k: Tally(**v) for k, v in data["removed"].items()},
            rejected={k: Tally(**v) for k, v in data["rejected"].items()},
            extra=Counter(data.get("counters", {})),
        )
