"""The ledger's vocabulary: wallets, balances and the results of each use case."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .money import OvertradingPolicy
from .outcomes import Outcome


@dataclass(frozen=True)
class AccountKey:
    """A wallet: one customer (TradeBoss thirdServerCode) of one company in one currency."""

    company_id: int
    customer: str
    currency: str


@dataclass(frozen=True)
class Balance:
    account: AccountKey
    amount: Decimal
    digits: int
    user_name: str
    # What open holds reserve; amount - held is what may be spent.
    held: Decimal = Decimal(0)

    @property
    def available(self) -> Decimal:
        return self.amount - self.held


@dataclass(frozen=True)
class OpenAccountResult:
    created: bool
    balance: Balance


@dataclass(frozen=True)
class FundingResult:
    outcome: Outcome
    balance: Balance
    replayed: bool = False
    conflict_field: str = ""
    # The amount requested (positive), as parsed.
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class AdjustResult:
    outcome: Outcome
    # None when the wallet does not exist (a recorded ACCOUNT_NOT_FOUND).
    balance: Balance | None
    applied_amount: Decimal = Decimal(0)
    overtrading_policy: OvertradingPolicy | None = None
    replayed: bool = False
    conflict_field: str = ""
    # For a recorded refusal: the field at fault and why.
    refused_field: str = ""
    refusal_message: str = ""


@dataclass(frozen=True)
class CancelResult:
    outcome: Outcome
    balance: Balance | None
    reversed_amount: Decimal = Decimal(0)
    replayed: bool = False
    conflict_field: str = ""
    tombstone_written: bool = False


@dataclass(frozen=True)
class AdjustCommand:
    """TradeBoss's execute, as the ledger receives it."""

    account: AccountKey
    user_name: str
    request_unique_no: str
    operation_type: int  # as received; intake checks it is an OperationType
    amount: str
    amount_digits: int
    biz_type: int = 0
    order_id: int = 0
    request_time_ms: int = 0
    client_ip: str = ""
    metadata: str = ""
    # (field, message) when the caller could not shape a field: recorded refusal.
    input_error: tuple[str, str] | None = None
    header_timestamp_ms: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CancelCommand:
    """TradeBoss's cancel, as the ledger receives it."""

    account: AccountKey
    user_name: str
    request_unique_no: str
    reverse_request_unique_no: str
    amount: str
    amount_digits: int
    cancel_remark: str
    biz_type: int = 0
    order_id: int = 0
    request_time_ms: int = 0
    client_ip: str = ""
    metadata: str = ""
    header_timestamp_ms: int = 0
    notes: tuple[str, ...] = ()
