"""TradeBoss's response envelope: every answer, success or not, is HTTP 200 with
all nine fields in the types TradeBoss's schema gives them."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import Response

from .codes import Code

# One encoder (json.dumps builds one per call when given options).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Answer(Exception):
    """Raised anywhere in a handler to answer at once with a code."""

    def __init__(self, code: Code, *params: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(code.code)
        self.code = code
        self.params = params
        self.data = data or {}


def render(
    code: Code, params: tuple[str, ...], trace: str, started: float, data: dict[str, Any]
) -> Response:
    # msgParams are the values behind msg's placeholder; a code without one has none.
    msg_params = ",".join(params) if "{}" in code.msg else ""
    body = {
        "code": code.code,
        "msg": code.msg.replace("{}", msg_params) if msg_params else code.msg.replace(": {}", ""),
        "msgParams": msg_params,
        "bizCode": "",
        "trace": trace,
        "tm": int((time.perf_counter() - started) * 1000),
        "data": data,
        "ok": code.ok,
        "fail": not code.ok,
    }
    return Response(_encode(body), media_type="application/json")
