"""Pure money rules: amount parsing, signs, deltas, formatting."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_client import pb, result_name
from ledger_service import money
from ledger_service.errors import LedgerError
from ledger_service.money import OvertradingPolicy


@pytest.mark.parametrize(
    ("text", "digits", "expected"),
    [
        ("0", 2, "0"),
        ("12.5", 2, "12.5"),
        ("-3.25", 2, "-3.25"),
        ("007", 0, "7"),
        ("1" * 18 + ".12", 2, "1" * 18 + ".12"),
        # Scale by value: trailing zeros do not count against amountDigits.
        ("1.50", 1, "1.5"),
        ("3.000", 0, "3"),
        ("9" * 18 + "." + "9" * 18, 18, "9" * 18 + "." + "9" * 18),
    ],
)
def test_plain_decimals_parse_exactly(text, digits, expected):
    assert money.parse_amount(text, digits) == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "digits", "outcome"),
    [
        ("", 2, "INVALID_AMOUNT"),
        ("NaN", 2, "INVALID_AMOUNT"),
        ("-Infinity", 2, "INVALID_AMOUNT"),
        ("1e2", 2, "INVALID_AMOUNT"),
        ("1.", 2, "INVALID_AMOUNT"),
        (".5", 2, "INVALID_AMOUNT"),
        ("1_000", 2, "INVALID_AMOUNT"),
        ("1,00", 2, "INVALID_AMOUNT"),
        ("--1", 2, "INVALID_AMOUNT"),
        ("1" * 19, 2, "INVALID_AMOUNT"),
        ("1.234", 2, "TOO_MANY_DIGITS"),
        ("1.21", 1, "TOO_MANY_DIGITS"),
        ("1.00001", 4, "TOO_MANY_DIGITS"),
    ],
)
def test_everything_else_is_refused(text, digits, outcome):
    with pytest.raises(LedgerError) as refused:
        money.parse_amount(text, digits)
    assert refused.value.outcome.name == outcome
    assert refused.value.field == "amount"


_SHAPE = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def _reference_accepts(text: str, digits: int) -> bool:
    """The rule written out: a plain decimal, at most 18 integer digits, at
    most `digits` fractional digits, and something Decimal reads as finite."""
    match = _SHAPE.fullmatch(text)
    if match is None:
        return False
    integer, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    return len(integer.lstrip("0")) <= 18 and len(fraction) <= digits and Decimal(text).is_finite()


@given(
    st.text(alphabet=st.sampled_from("0123456789.-+eE nNaIif_,\u0661"), max_size=25),
    st.integers(min_value=0, max_value=18),
)
def test_parser_agrees_with_the_rule_and_with_decimal(text, digits):
    """Fuzz: the parser accepts exactly what the rule accepts, and what it
    accepts equals decimal.Decimal(text) with no more than `digits` places."""
    try:
        value = money.parse_amount(text, digits)
    except LedgerError as refused:
        assert not _reference_accepts(text, digits)
        assert refused.outcome.name in ("INVALID_AMOUNT", "TOO_MANY_DIGITS")
        return
    assert _reference_accepts(text, digits)
    assert value == Decimal(text)
    assert money.fraction_digits(value) <= digits


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=4,
        min_value=Decimal("-1e12"),
        max_value=Decimal("1e12"),
    )
)
def test_format_round_trips_at_the_wallets_scale(amount):
    text = money.format_amount(amount, 4)
    assert money.parse_amount(text, 4) == amount
    assert len(text.partition(".")[2]) == 4
    assert not text.startswith("-0.0000") or amount != 0


@pytest.mark.parametrize(
    ("operation", "amount", "policy", "delta"),
    [
        (pb.OPERATION_TYPE_OPEN_POSITION, "5", OvertradingPolicy.DEDUCT, "-5"),
        (pb.OPERATION_TYPE_NORMAL_CLOSE, "5", OvertradingPolicy.DEDUCT, "5"),
        (pb.OPERATION_TYPE_ABNORMAL_OVERTRADING, "-5", OvertradingPolicy.DEDUCT, "-5"),
        (pb.OPERATION_TYPE_ABNORMAL_OVERTRADING, "-5", OvertradingPolicy.IGNORE, "0"),
    ],
)
def test_direction_by_operation_and_policy(operation, amount, policy, delta):
    assert money.adjustment_delta(operation, Decimal(amount), policy)[0] == Decimal(delta)


def test_signs_by_operation():
    money.check_sign(pb.OPERATION_TYPE_OPEN_POSITION, Decimal("0.01"))
    money.check_sign(pb.OPERATION_TYPE_ABNORMAL_OVERTRADING, Decimal("-0.01"))
    for operation, amount in [
        (pb.OPERATION_TYPE_OPEN_POSITION, "0"),
        (pb.OPERATION_TYPE_NORMAL_CLOSE, "-1"),
        (pb.OPERATION_TYPE_ABNORMAL_OVERTRADING, "0"),
    ]:
        with pytest.raises(LedgerError) as refused:
            money.check_sign(operation, Decimal(amount))
        assert refused.value.outcome.name == "AMOUNT_SIGN_MISMATCH"


def test_only_overtrading_may_overdraw():
    assert money.may_overdraw(pb.OPERATION_TYPE_ABNORMAL_OVERTRADING)
    assert not money.may_overdraw(pb.OPERATION_TYPE_OPEN_POSITION)
    assert money.format_amount(Decimal("-0.001"), 2) == "0.00"


@pytest.mark.parametrize("digits", [0, 2, 18])
def test_the_largest_amounts_and_balances_format_exactly(digits):
    """Exact at every size: the stated maximum at every scale, never an
    InvalidOperation from Python's default 28-digit context."""
    largest_amount = Decimal("9" * 18 + ("." + "9" * digits if digits else ""))
    # Computed in the ledger's context: Python's default one would round it.
    largest_balance = money.CONTEXT.add(
        money.CONTEXT.subtract(money.MAX_BALANCE, Decimal(1).scaleb(-digits)), largest_amount
    )
    for value in (largest_amount, largest_balance, largest_balance.copy_negate()):
        text = money.format_amount(value, digits)
        assert Decimal(text) == value
        assert money.fraction_digits(value) <= digits
    delta, _ = money.adjustment_delta(
        pb.OPERATION_TYPE_OPEN_POSITION, largest_amount, OvertradingPolicy.DEDUCT
    )
    assert delta == largest_amount.copy_negate()


@pytest.mark.parametrize(
    ("text", "needed"), [("1.50", 1), ("3.00", 0), ("0.000", 0), ("100", 0), ("0.0012", 4)]
)
def test_fraction_digits_count_the_value_not_the_label(text, needed):
    assert money.fraction_digits(Decimal(text)) == needed


def test_domain_outcomes_map_onto_the_proto():
    """The use cases speak plain Python enums; the gRPC edge maps them by name:
    every result enum's value is a domain outcome (or a conflict on a field),
    every error reason is one, and operation types keep their numbers."""
    from ledger_service.outcomes import OperationType, Outcome

    for enum in (pb.AdjustResult, pb.CancelResult, pb.DepositResult, pb.WithdrawResult):
        for value in enum.values():
            name = result_name(enum, value)
            assert name.startswith("EXISTS_WITH_DIFFERENT_") or name in Outcome.__members__
    for value in pb.ErrorReason.values():
        assert result_name(pb.ErrorReason, value) in Outcome.__members__
    assert {f"OPERATION_TYPE_{o.name}": o.value for o in OperationType} == dict(
        pb.OperationType.items()
    )


def test_the_rules_import_no_generated_code():
    """Money rules, outcomes and commands are plain Python (style.md, Cosmic Python)."""
    import ast

    from .conftest import ROOT

    for name in ("money", "outcomes", "errors", "model", "intake", "validation", "statuses"):
        tree = ast.parse((ROOT / "ledger_service" / f"{name}.py").read_text())
        imported = [
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom | ast.Import) and isinstance(node, ast.ImportFrom)
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        assert not [
            module for module in imported if module.startswith(("ledger_client", "grpc"))
        ], name
