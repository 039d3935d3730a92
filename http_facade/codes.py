"""Every answer code the facade gives TradeBoss, and the one table from ledger
reasons to codes. The README lists them (tests/test_readme.py keeps it so)."""

from __future__ import annotations

from dataclasses import dataclass

from ledger_client import conflicting_field


@dataclass(frozen=True)
class Code:
    code: str
    msg: str  # English; "{}" marks where msgParams goes

    @property
    def ok(self) -> bool:
        return self.code == "0"


SUCCESS = Code("0", "Success")
# TradeBoss's own cancel codes.
RECEIVED_NOT_PROCESSED = Code(
    "US_0000001", "The request was received but not processed: nothing to reverse"
)
NOT_RECEIVED = Code(
    "US_0000002", "No request with this number was received; it is now refused if it arrives"
)
# Input.
INVALID_HEADER = Code("LW_1001", "Missing or invalid header: {}")
INVALID_PARAMETER = Code("LW_1002", "Missing or invalid parameter: {}")
INVALID_AMOUNT = Code("LW_1003", "Amount is not a plain decimal number: {}")
AMOUNT_SIGN_MISMATCH = Code("LW_1004", "Amount sign contradicts the operation type: {}")
TOO_MANY_DIGITS = Code("LW_1005", "Amount has more fractional digits than amountDigits: {}")
INVALID_BODY = Code("LW_1006", "Request body is not a JSON object: {}")
UNSUPPORTED_MEDIA_TYPE = Code("LW_1007", "Content-Type must be application/json")
BODY_TOO_LARGE = Code("LW_1008", "Request body is larger than {} bytes")
UNKNOWN_PATH = Code("LW_1009", "No webhook at this path: {}")
METHOD_NOT_ALLOWED = Code("LW_1010", "Webhooks take POST, not {}")
# Callers.
CALLER_NOT_ALLOWED = Code("LW_2001", "Caller not allowed: {}")
COMPANY_NOT_ALLOWED = Code("LW_2002", "Company not allowed: {}")
BAD_SIGNATURE = Code("LW_2003", "Missing or invalid request signature")
# Wallets.
ACCOUNT_NOT_FOUND = Code("LW_3001", "Account not found")
USER_NAME_MISMATCH = Code("LW_3002", "userName does not match the account")
CURRENCY_MISMATCH = Code("LW_3003", "Amount is not exact at the account's currency scale: {}")
CANCEL_TARGET_MISMATCH = Code("LW_3004", "The cancel does not match the request it names: {}")
# Decisions.
INSUFFICIENT_BALANCE = Code("LW_4001", "Insufficient balance")
DUPLICATE_REQUEST = Code("LW_4002", "requestUniqueNo was already used with different {}")
ALREADY_CANCELLED = Code("LW_4003", "Refused: this request was already cancelled")
BALANCE_LIMIT_EXCEEDED = Code("LW_4004", "Amount would take the balance past its maximum: {}")
# The ledger behind us.
INTERNAL_ERROR = Code("LW_5000", "Internal error")
LEDGER_UNAVAILABLE = Code("LW_5001", "Ledger unavailable, try again")
LEDGER_TIMEOUT = Code("LW_5002", "Ledger did not answer in time")
LEDGER_BUSY = Code("LW_5003", "Ledger busy with conflicting requests, try again")

ALL_CODES = [value for value in dict(globals()).values() if isinstance(value, Code)]

# The one table: every ledger reason (a result of ledger.v2 without its enum's
# prefix, or an error's ErrorInfo.reason) -> one code. Every
# EXISTS_WITH_DIFFERENT_<FIELD> result is DUPLICATE_REQUEST, naming the field.
CODE_OF_REASON: dict[str, Code] = {
    "APPLIED": SUCCESS,
    "REVERSED": SUCCESS,
    "ALREADY_REVERSED": SUCCESS,
    "NOT_APPLIED": RECEIVED_NOT_PROCESSED,
    "NEVER_RECEIVED": NOT_RECEIVED,
    "INVALID_ARGUMENT": INVALID_PARAMETER,
    "INVALID_AMOUNT": INVALID_AMOUNT,
    "AMOUNT_SIGN_MISMATCH": AMOUNT_SIGN_MISMATCH,
    "TOO_MANY_DIGITS": TOO_MANY_DIGITS,
    "ACCOUNT_NOT_FOUND": ACCOUNT_NOT_FOUND,
    "ACCOUNT_SCALE_MISMATCH": CURRENCY_MISMATCH,
    "USER_NAME_MISMATCH": USER_NAME_MISMATCH,
    "CANCEL_TARGET_MISMATCH": CANCEL_TARGET_MISMATCH,
    "REQUEST_NOT_FOUND": INTERNAL_ERROR,  # the facade never asks for one
    "HOLD_NOT_FOUND": INTERNAL_ERROR,  # nor touches holds
    "ALREADY_CANCELLED": ALREADY_CANCELLED,
    "INSUFFICIENT_BALANCE": INSUFFICIENT_BALANCE,
    "BALANCE_LIMIT_EXCEEDED": BALANCE_LIMIT_EXCEEDED,
    "UNAVAILABLE": LEDGER_UNAVAILABLE,
    "DEADLINE_EXCEEDED": LEDGER_TIMEOUT,
    "ABORTED": LEDGER_BUSY,
    "INTERNAL": INTERNAL_ERROR,
}


def code_of(reason: str) -> tuple[Code, str]:
    """The code for a ledger reason, and the field it names ("" for none)."""
    field = conflicting_field(reason)
    if field is not None:
        return DUPLICATE_REQUEST, field
    return CODE_OF_REASON.get(reason, INTERNAL_ERROR), ""
