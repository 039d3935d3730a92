"""`ledger-simulate`: TradeBoss against a deployment, for acceptance tests.

Behaves as TradeBoss does: executes with a 3 s timeout; when an execute does
not answer "0" in time (a timeout, an error code other than a refusal), sends
the cancel and retries it until it settles; adds random delays and duplicate
deliveries. At the end it compares each wallet's balance with what its own
answers promised, and prints what it sent, what it got and whether the books
agree. Exit status 0 when they do.

    ledger-simulate --facade http://127.0.0.1:8080 --company-id 1 \\
        --wallet C1:alice:USD:2 --wallet C2:bob:USD:2 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import security

QUERY = "/get-user-amount"
EXECUTE = "/external-system-credit-limit-adjustment"
CANCEL = "/cancel-external-system-credit-limit-adjustment"
SETTLED_CANCEL = {"0", "US_0000001", "US_0000002"}
# Refusals TradeBoss does not cancel: nothing was applied and the ledger said so.
DEFINITE_REFUSALS = {"LW_4001"}
TRADEBOSS_TIMEOUT = 3.0
# Answers that say the deployment could not decide, not what it decided.
TRANSIENT = {"LW_5000", "LW_5001", "LW_5002", "LW_5003", "timeout", "error"}


@dataclass(frozen=True)
class Wallet:
    customer: str
    user_name: str
    currency: str
    digits: int

    @classmethod
    def parse(cls, text: str) -> Wallet:
        customer, user_name, currency, digits = text.split(":")
        return cls(customer, user_name, currency, int(digits))


def query_body(wallet: Wallet) -> dict[str, Any]:
    return {
        "thirdServerCode": wallet.customer,
        "userName": wallet.user_name,
        "currency": wallet.currency,
    }


def execute_body(
    wallet: Wallet, operation: str, amount: str, request_unique_no: str
) -> dict[str, Any]:
    return {
        **query_body(wallet),
        "bizType": 1,
        "operationType": operation,
        "amount": amount,
        "amountDigits": wallet.digits,
        "orderId": random.randint(1, 2**40),
        "requestUniqueNo": request_unique_no,
        "requestTime": int(time.time() * 1000),
        "ip": "198.51.100.10",
    }


def cancel_body(
    wallet: Wallet, reverse_request_unique_no: str, amount: str, request_unique_no: str
) -> dict[str, Any]:
    return {
        **query_body(wallet),
        "bizType": 1,
        "amount": amount.lstrip("-"),
        "amountDigits": wallet.digits,
        "requestUniqueNo": request_unique_no,
        "reverseRequestUniqueNo": reverse_request_unique_no,
        "requestTime": int(time.time() * 1000),
        "ip": "198.51.100.10",
        "cancelRemark": "timeout",
    }


@dataclass
class Report:
    sent: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    expected_change: dict[Wallet, Decimal] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)
    surprises: list[str] = field(default_factory=list)


class TradeBoss:
    def __init__(self, flags: argparse.Namespace, report: Report) -> None:
        self.base = flags.facade.rstrip("/") + flags.prefix
        self.company_id = flags.company_id
        self.secret = (
            open(flags.hmac_secret_file, "rb").read().strip() if flags.hmac_secret_file else None
        )
        self.report = report
        self.prefix = f"sim-{uuid.uuid4().hex[:8]}"
        self.counter = 0

    def number(self) -> str:
        self.counter += 1
        return f"{self.prefix}-{self.counter}"

    def _request(self, path: str, body: dict[str, Any]) -> urllib.request.Request:
        raw = json.dumps(body).encode()
        headers = {
            "content-type": "application/json",
            "trace": uuid.uuid4().hex,
            "companyId": str(self.company_id),
            "timestamp": str(int(time.time() * 1000)),
        }
        if self.secret is not None:
            headers[security.SIGNATURE_HEADER] = security.signature(
                self.secret, headers["companyId"], headers["timestamp"], raw
            )
        return urllib.request.Request(self.base + path, raw, headers, method="POST")

    async def post(self, path: str, body: dict[str, Any]) -> str:
        """The answer's code, or "timeout" / "error" as TradeBoss would see it."""
        self.report.sent[path] += 1
        request = self._request(path, body)
        try:
            answer = await asyncio.to_thread(_send, request)
        except TimeoutError:
            code = "timeout"
        except (OSError, ValueError):
            code = "error"
        else:
            code = str(answer.get("code"))
            if answer.get("ok") is not (code == "0"):
                self.report.surprises.append(f"{path}: ok disagrees with code: {answer}")
        self.report.answers[f"{path} {code}"] += 1
        return code

    async def balance(self, wallet: Wallet) -> Decimal | None:
        request = self._request(QUERY, query_body(wallet))
        for _ in range(20):
            try:
                answer = await asyncio.to_thread(_send, request)
            except (OSError, ValueError):
                answer = {}
            if answer.get("code") == "0":
                return Decimal(answer["data"]["amount"])
            await asyncio.sleep(0.5)
        return None

    async def trade(self, wallet: Wallet, operation: str, amount: str, duplicate: bool) -> None:
        """One execute as TradeBoss runs it, with its cancel when needed."""
        number = self.number()
        body = execute_body(wallet, operation, amount, number)
        code = await self.post(EXECUTE, body)
        if duplicate:  # the network delivers it twice: it must be applied once
            again = await self.post(EXECUTE, body)
            # A definite first answer must be repeated, unless the repeat met an
            # outage (the ledger could not be asked): that is no contradiction.
            if code in ("0", "LW_4001") and again != code and again not in TRANSIENT:
                self.report.surprises.append(f"duplicate of {number}: {code} then {again}")
        if code == "0":
            self._expect(wallet, Decimal(amount) * (-1 if operation == "OPEN_POSITION" else 1))
            return
        if code in DEFINITE_REFUSALS:
            return
        cancel = cancel_body(wallet, number, amount, self.number())
        for attempt in range(10):
            settled = await self.post(CANCEL, cancel)
            if settled in SETTLED_CANCEL:
                return  # reversed, refused, or never received: no money moved in the end
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        self.report.unsettled.append(number)

    def _expect(self, wallet: Wallet, change: Decimal) -> None:
        self.report.expected_change[wallet] = (
            self.report.expected_change.get(wallet, Decimal(0)) + change
        )


def _send(request: urllib.request.Request) -> dict[str, Any]:
    with urllib.request.urlopen(request, timeout=TRADEBOSS_TIMEOUT) as answer:
        parsed: dict[str, Any] = json.loads(answer.read())
        return parsed


async def simulate(flags: argparse.Namespace) -> int:
    report = Report()
    tradeboss = TradeBoss(flags, report)
    wallets = [Wallet.parse(text) for text in flags.wallet]
    random.seed(flags.seed)
    start = {wallet: await tradeboss.balance(wallet) for wallet in wallets}
    missing = [w.customer for w, balance in start.items() if balance is None]
    if missing:
        print(f"cannot read the starting balance of {', '.join(missing)}", file=sys.stderr)
        return 2
    end_at = time.monotonic() + flags.duration

    async def worker() -> None:
        while time.monotonic() < end_at:
            await asyncio.sleep(random.uniform(0, flags.max_delay))
            wallet = random.choice(wallets)
            operation = random.choice(("OPEN_POSITION", "NORMAL_CLOSE"))
            cents = random.randint(1, int(Decimal(flags.max_amount) * 100))
            amount = str((Decimal(cents) / 100).quantize(Decimal(1).scaleb(-wallet.digits)))
            await tradeboss.trade(wallet, operation, amount, random.random() < flags.duplicates)

    await asyncio.gather(*(worker() for _ in range(flags.concurrency)))

    agree = not report.unsettled and not report.surprises
    print("sent:", ", ".join(f"{path.strip('/')} {n}" for path, n in sorted(report.sent.items())))
    print("answers:")
    for key, count in sorted(report.answers.items()):
        print(f"  {key.strip('/')}: {count}")
    print("wallets:")
    for wallet in wallets:
        end = await tradeboss.balance(wallet)
        begin = start[wallet]
        assert begin is not None
        expected = begin + report.expected_change.get(wallet, Decimal(0))
        matches = end == expected
        agree = agree and matches
        print(
            f"  {wallet.customer} {wallet.currency}: start {begin}, expected {expected}, "
            f"actual {end} -> {'agrees' if matches else 'DISAGREES'}"
        )
    for number in report.unsettled:
        print(f"unsettled: the cancel of {number} never settled")
    for surprise in report.surprises[:20]:
        print(f"surprise: {surprise}")
    print("the deployment agrees with TradeBoss" if agree else "THE DEPLOYMENT DISAGREES")
    return 0 if agree else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ledger-simulate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--facade", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--prefix", default="", help="the facade's path prefix")
    parser.add_argument("--company-id", type=int, required=True)
    parser.add_argument(
        "--wallet",
        action="append",
        required=True,
        help="CUSTOMER:USERNAME:CURRENCY:DIGITS of an opened, funded wallet (repeat)",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--concurrency", type=int, default=4, help="trades in flight")
    parser.add_argument("--max-amount", default="5.00", help="largest amount traded")
    parser.add_argument("--max-delay", type=float, default=0.05, help="seconds between trades")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share sent twice")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--hmac-secret-file", help="sign requests (X-Signature)")
    return asyncio.run(simulate(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
