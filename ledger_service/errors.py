"""LedgerError: a request refused before anything is written, named by its Outcome."""

from __future__ import annotations

from .outcomes import Outcome


class LedgerError(Exception):
    """Carries one Outcome of the proto; the servicer turns it into a gRPC status."""

    def __init__(self, outcome: Outcome, message: str, field: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.field = field

    @property
    def outcome_name(self) -> str:
        return "OUTCOME_" + Outcome(self.outcome).name

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.outcome_name}{where}: {self.message}"
