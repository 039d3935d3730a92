"""The log formats (ledger_client/logs.py), as pure functions: one line per
record whatever a value holds, and the stock format's date and time."""

from __future__ import annotations

import json
import logging

import pytest

from ledger_client.logs import JsonFormatter, TextFormatter, escape


def _record(created: float, message: str = "m", **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("ledger", logging.INFO, __file__, 1, message, (), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.fields = fields  # type: ignore[attr-defined]
    return record


@pytest.mark.parametrize(
    "value, logged",
    [
        ("plain text, spaces, ünïcode €", "plain text, spaces, ünïcode €"),
        (12.5, "12.5"),
        ("a\nb", "a\\nb"),
        ("a\rb\tc\x00", "a\\rb\\tc\\x00"),
        ("a\x7fb\x85c\x9f", "a\\x7fb\\x85c\\x9f"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        # Not printable, but no line breaker either: kept as it is.
        ("soft\xadhyphen", "soft\xadhyphen"),
    ],
)
def test_escape_keeps_a_value_on_one_line(value: object, logged: str) -> None:
    assert escape(value) == logged


def test_text_time_is_the_stock_formats_across_seconds() -> None:
    ours, stock = TextFormatter(), logging.Formatter()
    for created in (1_800_000_000.001, 1_800_000_000.999, 1_800_000_001.0, 1_799_999_999.5):
        record = _record(created)
        assert ours.formatTime(record) == stock.formatTime(record)
    record = _record(1_800_000_000.25)
    assert ours.formatTime(record, "%H") == stock.formatTime(record, "%H")


def test_text_line_carries_escaped_fields() -> None:
    line = TextFormatter().format(_record(1_800_000_000.5, "Adjust\nAPPLIED", trace="t\n1", n=3))
    assert line.endswith("INFO ledger Adjust\\nAPPLIED trace=t\\n1 n=3")
    assert "\n" not in line


def test_json_line_is_one_object_with_the_fields() -> None:
    line = JsonFormatter().format(_record(1_800_000_000.5, "Adjust", trace="t\n1", n=3, x=object))
    parsed = json.loads(line)
    assert parsed["message"] == "Adjust" and parsed["trace"] == "t\n1" and parsed["n"] == 3
    assert parsed["time"].endswith(".500+00:00")
    assert parsed["x"] == str(object)  # what json cannot encode, as its text
    assert "\n" not in line
