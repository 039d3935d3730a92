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


def test_every_ledger_outcome_has_exactly_one_code():
    from ledger_client import pb

    outcomes = {value for value in pb.Outcome.values() if value != pb.OUTCOME_UNSPECIFIED}
    assert set(codes.CODE_OF_OUTCOME) == outcomes


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
