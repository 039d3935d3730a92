"""The webhook declarations (http_facade/schema.py) as pure functions: every
lawful variant accepted, everything else named. No processes."""

from __future__ import annotations

import pytest

from http_facade import schema
from http_facade.validation import Shape


@pytest.mark.parametrize(
    ("name", "sent", "read"),
    [
        ("orderId", 42, 42),
        ("orderId", "9007199254740993", 9007199254740993),
        ("orderId", "007", 7),
        ("bizType", -3, -3),
        ("amountDigits", "2", 2),
        ("ip", "", ""),
        ("metadata", {"k": [1, None]}, {"k": [1, None]}),
        ("metadata", "{\n}", "{\n}"),
    ],
)
def test_lawful_variants_read_losslessly(name, sent, read):
    assert schema.read_field(schema.ExecuteBody, {name: sent}, name) == (read, None)


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("orderId", 1.0),
        ("orderId", True),
        ("orderId", "-1"),
        ("orderId", " 1"),
        ("orderId", str(2**63)),
        ("orderId", 2**63),
        ("bizType", 2**31),
        ("bizType", "\u0661"),  # an Arabic-Indic digit is a digit to Python, not to us
        ("operationType", "open_position"),
        ("amount", 10),
        ("userName", None),
    ],
)
def test_everything_else_is_named(name, sent):
    value, problem = schema.read_field(schema.ExecuteBody, {name: sent}, name)
    assert value is None and problem and problem.startswith(name)


def test_a_required_field_becomes_the_input_error_and_an_optional_one_a_note():
    execute = Shape(schema.ExecuteBody, {"bizType": 1.5, "orderId": "x", "requestTime": "soon"})
    assert execute.integer("bizType") == 0 and execute.integer("orderId") == 0
    assert execute.integer("requestTime") == 0
    assert (
        execute.error is not None and execute.error.field == "tradeboss.biz_type"
    )  # the first one
    assert execute.notes == ['requestTime: Input should be a valid integer (sent "soon")']
    cancel = Shape(schema.CancelBody, {"bizType": 1.5, "amount": -3})
    assert cancel.integer("bizType") == 0 and cancel.text("amount") == "-3"
    assert cancel.error is None and len(cancel.notes) == 1


def test_the_document_is_derived_from_the_declarations():
    document = schema.openapi_document("/api/cats-gateway")
    assert set(document["paths"]) == {
        "/api/cats-gateway" + path for path, _, _, _ in schema.WEBHOOKS
    }
    bodies = document["components"]["schemas"]
    assert set(bodies["ExecuteBody"]["required"]) == {
        name for name, field in schema.ExecuteBody.model_fields.items() if field.is_required()
    }
    assert set(schema.PROTO_FIELD) >= set(schema.ExecuteBody.model_fields) | set(
        schema.CancelBody.model_fields
    )


def test_the_facade_depends_on_the_ledger_only_through_the_client_package():
    import ast

    from .conftest import ROOT

    for path in (ROOT / "http_facade").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in modules if m.startswith("ledger_service")], path.name
