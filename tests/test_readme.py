"""The README's promises that drift silently: every answer code is listed, and
its first lines hold the two commands."""

from __future__ import annotations

import pytest

from http_facade import codes

from .conftest import ROOT


def test_readme_lists_every_answer_code():
    readme = (ROOT / "README.md").read_text()
    missing = [code.code for code in codes.ALL_CODES if f"| `{code.code}` |" not in readme]
    assert missing == []


def test_every_ledger_reason_has_exactly_one_code():
    """Every result of Adjust and CancelAdjustment and every error reason, by
    name, has its code (EXISTS_WITH_DIFFERENT_*: DUPLICATE_REQUEST, naming the field)."""
    from ledger_client import pb, result_name

    reasons = {
        result_name(enum, value)
        for enum in (pb.AdjustResult, pb.CancelResult, pb.ErrorReason)
        for value in enum.values()
        if value
    }
    named = {reason for reason in reasons if not reason.startswith("EXISTS_WITH_DIFFERENT_")}
    assert set(codes.CODE_OF_REASON) == named
    for reason in reasons - named:
        assert codes.code_of(reason) == (
            codes.DUPLICATE_REQUEST,
            reason.split("DIFFERENT_")[1].lower(),
        )


def test_readme_starts_with_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    assert "make run" in head and "make test" in head


def test_tradeboss_document_copy_matches_shared_spec():
    shared = ROOT.parent / "shared" / "spec" / "multimarkets-webhook.json"
    if not shared.exists():
        pytest.skip("no shared/ beside this checkout")
    assert (
        ROOT / "tests" / "data" / "multimarkets-webhook.json"
    ).read_bytes() == shared.read_bytes()
