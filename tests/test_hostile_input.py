"""Hostile input: schemathesis generates valid and invalid webhook calls from
the facade's own /openapi.json; every answer must be no 5xx, conform to the
document, and carry the complete envelope."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from http_facade import schema as webhook_schema

from .tradeboss import ENVELOPE_FIELDS

CONFIG = SchemathesisConfig.from_dict(
    {"generation": {"mode": "all", "max-examples": 40}, "checks": {"enabled": False}}
)


# The document the facade serves at /openapi.json (the first test checks that
# the served one is this one; loading it here lets pytest collect the cases).
schema = schemathesis.openapi.from_dict(webhook_schema.openapi_document(), config=CONFIG)


def test_the_schema_is_the_one_the_facade_serves(facade):
    served = httpx.get(facade.admin_url + "/openapi.json").json()
    assert served == json.loads(json.dumps(webhook_schema.openapi_document()))


def envelope_always_complete(response) -> None:
    body = response.json()
    assert set(body) == ENVELOPE_FIELDS, body
    assert body["ok"] is (body["code"] == "0") and body["fail"] is (not body["ok"])
    assert all(isinstance(body[name], str) for name in ("code", "msg", "msgParams", "trace"))


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_any_input_gets_an_envelope_and_no_server_error(case, facade):
    response = case.call(base_url=facade.url)
    if response.request.method != "POST":  # schemathesis probes other methods too
        assert response.status_code == 405
        return
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    envelope_always_complete(response)


# TradeBoss's own published document: what its generator thinks it may send.
# Its request examples are wrong (spec, "Known defects"), so only the schemas
# drive generation; every answer must be an envelope that validates against
# its response schemas, whatever was sent.
OFFICIAL_DOCUMENT = Path(__file__).parent / "data" / "multimarkets-webhook.json"
official = schemathesis.openapi.from_path(str(OFFICIAL_DOCUMENT), config=CONFIG)


@official.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_tradeboss_official_document_gets_an_envelope_for_everything(case, facade):
    response = case.call(base_url=facade.url)
    if response.request.method != "POST":
        assert response.status_code in (404, 405)
        return
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    envelope_always_complete(response)
