"""`ledger`: the operators' command line; talks to the ledger service over gRPC.

Exit status: 0 on success, 1 when the ledger refused (its outcome is printed),
2 on bad usage, 3 when the ledger cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from ledger_client import (
    ChannelSecurity,
    conflicting_field,
    error_detail,
    format_position,
    open_channel,
    parse_position,
    pb,
    pb_grpc,
    result_name,
    watch_journal,
)
from ledger_client import transfers as client_transfers

Command = Callable[[Any, argparse.Namespace], Awaitable[str]]


class Refused(Exception):
    pass


def _account(flags: argparse.Namespace) -> pb.AccountKey:
    return pb.AccountKey(
        company_id=flags.company_id, customer=flags.customer, currency=flags.currency
    )


def _result(record: pb.RequestRecord) -> str:
    """A request record's result, by name ("APPLIED", "REVERSED"...)."""
    which = record.WhichOneof("result")
    if which is None:
        return ""
    enum = record.DESCRIPTOR.fields_by_name[which].enum_type
    assert enum is not None
    return result_name(getattr(pb, enum.name), getattr(record, which))


def _show_balance(balance: pb.Balance) -> str:
    user = f" (userName {balance.user_name})" if balance.user_name else ""
    key = balance.account
    held = (
        f" (held {balance.held}, available {balance.available})"
        if balance.held and Decimal(balance.held)
        else ""
    )
    return f"{key.company_id}/{key.customer} {balance.amount} {key.currency}{held}{user}"


async def open_account(stub: Any, flags: argparse.Namespace) -> str:
    answer = await stub.OpenAccount(
        pb.OpenAccountRequest(
            account=_account(flags),
            digits=flags.digits,
            user_name=flags.user_name or "",
            kind=pb.ACCOUNT_KIND_INTERNAL if flags.internal else pb.ACCOUNT_KIND_WALLET,
            allow_negative=flags.allow_negative,
        ),
        timeout=flags.timeout,
    )
    verb = "opened" if answer.created else "already open"
    return _json(_dict(answer)) if flags.json else f"{verb}: {_show_balance(answer.balance)}"


def _funding(method: str) -> Command:
    async def run(stub: Any, flags: argparse.Namespace) -> str:
        request_type = pb.DepositRequest if method == "Deposit" else pb.WithdrawRequest
        result_type = pb.DepositResult if method == "Deposit" else pb.WithdrawResult
        answer = await getattr(stub, method)(
            request_type(
                account=_account(flags),
                amount=flags.amount,
                request_id=flags.key,
                note=flags.note or "",
            ),
            timeout=flags.timeout,
        )
        replay = _applied(result_type, answer, answer.balance)
        if flags.json:
            return _json(_dict(answer))
        return f"{method.lower()} applied{replay}: {_show_balance(answer.balance)}"

    return run


def _applied(result_type: Any, answer: Any, balance: pb.Balance) -> str:
    """ " (repeat of an earlier request)" or "" for an applied answer; Refused
    naming the result (or the field that differs) otherwise."""
    replay = " (repeat of an earlier request)" if answer.replayed else ""
    result = result_name(result_type, answer.result)
    if result != "APPLIED":
        field = conflicting_field(result)
        said = f"CONFLICT ({field} differs)" if field else result
        raise Refused(f"{said}{replay}; balance {balance.amount}")
    return replay


async def transfer(stub: Any, flags: argparse.Namespace) -> str:
    answer = await client_transfers.transfer(
        stub,
        _account(flags),
        flags.to,
        flags.amount,
        transfer_id=flags.key,
        reference=flags.reference or "",
        call_timeout=flags.timeout,
    )
    replay = _applied(pb.TransferResult, answer, answer.debit_balance)
    if flags.json:
        return _json(_dict(answer))
    return (
        f"transfer {flags.key} applied{replay}: {_show_balance(answer.debit_balance)} -> "
        f"{_show_balance(answer.credit_balance)}"
    )


async def hold(stub: Any, flags: argparse.Namespace) -> str:
    expires = datetime.now(UTC) + timedelta(seconds=flags.expires_in) if flags.expires_in else None
    answer = await client_transfers.hold(
        stub,
        _account(flags),
        flags.to,
        flags.amount,
        hold_id=flags.key,
        expire_time=expires,
        reference=flags.reference or "",
        call_timeout=flags.timeout,
    )
    replay = _applied(pb.HoldResult, answer, answer.balance)
    if flags.json:
        return _json(_dict(answer))
    return f"hold {flags.key} created{replay}: {_show_balance(answer.balance)}"


async def post_hold(stub: Any, flags: argparse.Namespace) -> str:
    answer = await client_transfers.post_hold(
        stub, _account(flags), flags.id, flags.amount or "", call_timeout=flags.timeout
    )
    replay = _applied(pb.PostHoldResult, answer, answer.debit_balance)
    if flags.json:
        return _json(_dict(answer))
    return (
        f"hold {flags.id} posted {answer.posted_amount}{replay}: "
        f"{_show_balance(answer.debit_balance)} -> {_show_balance(answer.credit_balance)}"
    )


async def void_hold(stub: Any, flags: argparse.Namespace) -> str:
    answer = await client_transfers.void_hold(
        stub, _account(flags), flags.id, call_timeout=flags.timeout
    )
    replay = _applied(pb.VoidHoldResult, answer, answer.balance)
    if flags.json:
        return _json(_dict(answer))
    return f"hold {flags.id} voided{replay}: {_show_balance(answer.balance)}"


async def balance(stub: Any, flags: argparse.Namespace) -> str:
    request = pb.GetBalanceRequest(account=_account(flags))
    if flags.as_of is not None:
        request.as_of_time.FromDatetime(flags.as_of)
    elif flags.as_of_entry is not None:
        request.as_of_entry_no = flags.as_of_entry
    answer = await stub.GetBalance(request, timeout=flags.timeout)
    if flags.json:
        return _json({**_dict(answer.balance), "entry_no": answer.entry_no})
    when = "" if request.WhichOneof("as_of") is None else f" as of entry #{answer.entry_no}"
    return _show_balance(answer.balance) + when


async def exposure(stub: Any, flags: argparse.Namespace) -> str:
    request = pb.GetExposureRequest(company_id=flags.company_id or 0)
    if flags.as_of:
        request.as_of.FromDatetime(flags.as_of)
    answer = await stub.GetExposure(request, timeout=flags.timeout)
    if flags.json:
        return _json(_dict(answer))
    rows = [("company", "currency", "wallets", "customers hold", "internal", "clearing", "funding")]
    for item in answer.exposures:
        rows.append(
            (
                str(item.company_id),
                item.currency,
                str(item.wallets),
                item.customers,
                item.internal,
                item.clearing,
                item.funding,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    when = f"as of {flags.as_of.isoformat()}" if flags.as_of else "now"
    return "\n".join(
        [f"exposure {when} (customers + internal + clearing + funding = 0 per currency)", *lines]
    )


async def rebind_user_name(stub: Any, flags: argparse.Namespace) -> str:
    answer = await stub.RebindUserName(
        pb.RebindUserNameRequest(
            account=_account(flags),
            user_name=flags.user_name,
            reason=flags.reason,
            operator=flags.operator,
        ),
        timeout=flags.timeout,
    )
    if flags.json:
        return _json(_dict(answer))
    before = answer.previous_user_name or "(none)"
    return f"userName {before} -> {answer.balance.user_name}: {_show_balance(answer.balance)}"


async def statement(stub: Any, flags: argparse.Namespace) -> str:
    request = pb.ListJournalEntriesRequest(
        account=_account(flags),
        page_size=flags.limit,
        page_token=flags.before or "",
        request_id=flags.request or "",
        order_id=flags.order_id or 0,
    )
    if flags.from_time is not None:
        request.start_time.FromDatetime(flags.from_time)
    if flags.to_time is not None:
        request.end_time.FromDatetime(flags.to_time)
    answer = await stub.ListJournalEntries(request, timeout=flags.timeout)
    if flags.json:
        return _json(_dict(answer))
    rows = [("#", "time (UTC)", "cause", "amount", "balance after", "request", "trace")]
    for entry in answer.entries:
        rows.append(
            (
                str(entry.entry_no),
                entry.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
                pb.EntryCause.Name(entry.cause).removeprefix("ENTRY_CAUSE_").lower(),
                entry.amount,
                entry.balance_after,
                entry.request_id,
                entry.trace_id,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {0, 3, 4}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    if answer.next_page_token:
        lines.append(f"(older entries: --before {answer.next_page_token})")
    return "\n".join(lines)


async def request(stub: Any, flags: argparse.Namespace) -> str:
    answer = await stub.GetRequest(
        pb.GetRequestRequest(account=_account(flags), request_id=flags.number),
        timeout=flags.timeout,
    )
    record = answer.request
    if flags.json:
        return _json(_dict(record))
    fields = [
        ("kind", pb.RequestKind.Name(record.kind).removeprefix("REQUEST_KIND_").lower()),
        ("outcome", _result(record)),
        (
            "operation",
            pb.OperationType.Name(record.operation_type).removeprefix("OPERATION_TYPE_")
            if record.operation_type
            else "",
        ),
        ("amount", record.amount or record.amount_as_sent),
        ("refused field", record.refused_field),
        ("applied", record.applied_amount),
        ("balance after", record.balance_after),
        ("reverses", record.target_request_id),
        ("reversed by", record.reversed_by),
        ("trace", record.trace_id),
        ("input notes", record.input_notes),
        ("created", record.create_time.ToJsonString()),
    ]
    if record.HasField("reverse_time"):
        fields.append(("reversed", record.reverse_time.ToJsonString()))
    return "\n".join(f"{name:>13}: {value}" for name, value in fields if value)


async def reconcile(stub: Any, flags: argparse.Namespace) -> str:
    """Print each discrepancy as it streams in; refuse (exit 1) if there was any."""
    call = stub.Reconcile(pb.ReconcileRequest(company_id=flags.company_id or 0))
    summary = pb.ReconcileSummary()
    found: list[pb.Discrepancy] = []
    progress = Progress("checks")
    async for item in call:
        if item.HasField("summary"):
            summary = item.summary
        elif item.HasField("progress"):
            progress.update(item.progress.checks_done, item.progress.checks_total)
        else:
            found.append(item.discrepancy)
            if not flags.json:
                print(_discrepancy_line(item.discrepancy), flush=True)
    progress.done()
    if flags.json:
        print(_json({"discrepancies": [_dict(d) for d in found], "summary": _dict(summary)}))
    report = (
        f"checked {summary.accounts_checked} accounts, {summary.entries_checked} journal "
        f"entries, {summary.requests_checked} requests: "
    )
    if summary.discrepancies:
        raise Refused(report + f"{summary.discrepancies} discrepancies")
    return "" if flags.json else report + "the books balance"


def _discrepancy_line(found: pb.Discrepancy) -> str:
    key = found.account
    where = f"{key.company_id}/{key.customer}/{key.currency}"
    if found.request_id:
        where += f" request {found.request_id}"
    if found.entry_no:
        where += f" entry {found.entry_no}"
    return f"{found.check}: {where}: {found.detail}"


class Progress:
    """Rows done, rate and time left on stderr, when stderr is a terminal
    (never in a pipe or a log)."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.started = time.monotonic()
        self.shown = sys.stderr.isatty()
        self.last = 0.0

    def update(self, done: int, total: int = 0) -> None:
        now = time.monotonic()
        if not self.shown or (now - self.last < 0.2 and done != total):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        line = f"{done:,}{f' of {total:,}' if total else ''} {self.unit}, {rate:,.0f}/s"
        if total and rate:
            line += f", about {max(0.0, (total - done) / rate):.0f}s left"
        print(f"\r{line}\x1b[K", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr)


EXPORT_COLUMNS = [
    "company_id",
    "customer",
    "currency",
    "entry_no",
    "created_at",
    "cause",
    "operation_type",
    "overtrading_policy",
    "amount",
    "counterparty",
    "balance_after",
    "request_unique_no",
    "trace_id",
]


async def export(stub: Any, flags: argparse.Namespace) -> str:
    """Write the period's journal as CSV, batch by batch as it streams in."""
    request = pb.ExportJournalRequest(company_id=flags.company_id or 0)
    request.start_time.FromDatetime(flags.from_date)
    request.end_time.FromDatetime(flags.to_date)
    # A one-shot command: blocking writes are what it is for.
    output = open(flags.output, "w", newline="") if flags.output else sys.stdout  # noqa: ASYNC230
    rows = total = 0
    progress = Progress("journal entries")
    try:
        writer = csv.writer(output)
        writer.writerow(EXPORT_COLUMNS)
        async for batch in stub.ExportJournal(request):
            total = batch.total_entries or total
            for item in batch.entries:
                entry, key = item.entry, item.account
                writer.writerow(
                    [
                        key.company_id,
                        key.customer,
                        key.currency,
                        entry.entry_no,
                        entry.create_time.ToJsonString(),
                        pb.EntryCause.Name(entry.cause).removeprefix("ENTRY_CAUSE_").lower(),
                        _enum_text(pb.OperationType, entry.operation_type, "OPERATION_TYPE_"),
                        _enum_text(
                            pb.OvertradingPolicy, entry.overtrading_policy, "OVERTRADING_POLICY_"
                        ),
                        entry.amount,
                        entry.counterparty,
                        entry.balance_after,
                        entry.request_id,
                        entry.trace_id,
                    ]
                )
            rows += len(batch.entries)
            progress.update(rows, total)
    finally:
        progress.done()
        if output is not sys.stdout:
            output.close()
    summary = (
        f"exported {rows} journal entries from {flags.from_date.isoformat()}"
        f" to {flags.to_date.isoformat()}"
    )
    if flags.output:
        return f"{summary} to {flags.output}"
    print(summary, file=sys.stderr)
    return ""


async def watch(stub: Any, flags: argparse.Namespace) -> str:
    """Print the journal feed as it comes, one line per entry (a JSON object
    per line with --json), until Ctrl-C or --count entries; the first column
    is the position to give --after to go on from there."""
    printed = 0
    async for item in watch_journal(
        stub, flags.company_id or 0, flags.after, from_now=flags.from_now
    ):
        print(_watched_line(item, flags.json), flush=True)
        printed += 1
        if printed == flags.count:
            break
    return ""


def _watched_line(item: pb.WatchedEntry, as_json: bool) -> str:
    if as_json:
        return json.dumps(_dict(item), sort_keys=True)
    key, entry = item.account, item.entry
    return "  ".join(
        [
            format_position(item.position),
            f"{key.company_id}/{key.customer}/{key.currency}",
            f"#{entry.entry_no}",
            entry.create_time.ToJsonString(),
            pb.EntryCause.Name(entry.cause).removeprefix("ENTRY_CAUSE_").lower(),
            entry.amount,
            f"balance {entry.balance_after}",
            entry.request_id,
            entry.trace_id,
        ]
    ).rstrip()


def _position(text: str) -> pb.JournalPosition:
    try:
        return parse_position(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _enum_text(enum: Any, value: int, prefix: str) -> str:
    return "" if value == 0 else str(enum.Name(value)).removeprefix(prefix)


def _dict(message: Any) -> dict[str, Any]:
    """A message as JSON-ready data: the proto's own field names, enums by name,
    amounts as the decimal strings they are."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _json(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


_TIME_HELP = "YYYY-MM-DD or ISO 8601, UTC unless it says"


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target",
        default=os.environ.get("LEDGER_TARGET", "127.0.0.1:50051"),
        help="ledger service address (LEDGER_TARGET, default 127.0.0.1:50051)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument("--tls-ca", help="CA of the ledger's TLS certificate (LEDGER_TLS_CA)")
    parser.add_argument("--tls-cert", help="client certificate for mTLS (LEDGER_TLS_CLIENT_CERT)")
    parser.add_argument("--tls-key", help="client key for mTLS (LEDGER_TLS_CLIENT_KEY)")
    parser.add_argument("--token-file", help="file holding a bearer token (or set LEDGER_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, run: Command, help_text: str) -> Any:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--company-id", type=int, required=True)
        sub.add_argument("--customer", required=True, help="TradeBoss thirdServerCode")
        sub.add_argument("--currency", required=True)
        sub.add_argument("--json", action="store_true", help="print JSON for machines")
        sub.set_defaults(run=run)
        return sub

    opened = command("open-account", open_account, "open a wallet (idempotent)")
    opened.add_argument("--digits", type=int, required=True, help="currency scale, 0..18")
    opened.add_argument("--user-name", help="bind TradeBoss's userName now")
    opened.add_argument(
        "--internal", action="store_true", help="an internal service's account, not a wallet"
    )
    opened.add_argument(
        "--allow-negative", action="store_true", help="internal only: may go below zero"
    )
    moved = command("transfer", transfer, "move money to another account (idempotent by --key)")
    held = command("hold", hold, "reserve money for another account (idempotent by --key)")
    for sub in (moved, held):
        sub.add_argument("--to", required=True, help="the credited account's customer")
        sub.add_argument("--amount", required=True, help="decimal, e.g. 10.00")
        sub.add_argument("--key", default=None, help="transfer or hold id (default: a new one)")
        sub.add_argument("--reference", help="your reference, kept with it")
    held.add_argument("--expires-in", type=float, help="seconds until it releases itself")
    posted = command("post", post_hold, "turn a hold (of this debit account) into a transfer")
    posted.add_argument("--id", required=True, help="the hold id")
    posted.add_argument("--amount", help="part of the hold (default: all of it)")
    voided = command("void", void_hold, "release a hold (of this debit account)")
    voided.add_argument("--id", required=True, help="the hold id")
    for name, method in (("deposit", "Deposit"), ("withdraw", "Withdraw")):
        sub = command(name, _funding(method), f"{name} funds (idempotent by --key)")
        sub.add_argument("--amount", required=True, help="decimal, e.g. 100.00")
        sub.add_argument("--key", default=None, help="idempotency key (default: a new random one)")
        sub.add_argument("--note", help="free text kept with the request")
    shown = command("balance", balance, "show a wallet's balance, now or in the past")
    when = shown.add_mutually_exclusive_group()
    when.add_argument("--as-of", type=_moment, help=f"the balance at this time ({_TIME_HELP})")
    when.add_argument("--as-of-entry", type=int, help="the balance after this journal entry")
    rebound = command(
        "rebind-user-name", rebind_user_name, "bind the wallet to another TradeBoss userName"
    )
    rebound.add_argument("--user-name", required=True, help="the new userName")
    rebound.add_argument("--reason", required=True, help="why (kept in the operator actions log)")
    rebound.add_argument(
        "--operator",
        default=os.environ.get("USER", "operator"),
        help="who (default: $USER); kept in the operator actions log",
    )
    listed = command("statement", statement, "show a wallet's journal, newest first")
    listed.add_argument("--limit", type=int, default=50)
    listed.add_argument("--before", help="continue below this entry number")
    listed.add_argument("--request", help="only the entries of this request number")
    listed.add_argument("--order-id", type=int, help="only entries of requests with this orderId")
    listed.add_argument("--from", dest="from_time", type=_moment, help=f"from ({_TIME_HELP})")
    listed.add_argument("--to", dest="to_time", type=_moment, help="until, exclusive")
    looked_up = command("request", request, "show what the ledger knows of a request number")
    looked_up.add_argument("--number", required=True)

    checked = commands.add_parser(
        "reconcile", help="check every wallet's books; exit 1 on any discrepancy"
    )
    checked.add_argument("--company-id", type=int, help="only this company")
    checked.add_argument("--json", action="store_true", help="print JSON for machines")
    checked.set_defaults(run=reconcile)
    exposed = commands.add_parser(
        "exposure", help="per company and currency: customers, clearing and funding balances"
    )
    exposed.add_argument("--company-id", type=int, help="only this company")
    exposed.add_argument("--json", action="store_true", help="print JSON for machines")
    exposed.add_argument("--as-of", type=_moment, help=f"a time ({_TIME_HELP}); default: now")
    exposed.set_defaults(run=exposure)
    exported = commands.add_parser("export", help="write a period's journal as CSV")
    exported.add_argument(
        "--from", dest="from_date", type=_moment, required=True, help="YYYY-MM-DD, inclusive"
    )
    exported.add_argument(
        "--to", dest="to_date", type=_moment, required=True, help="YYYY-MM-DD, exclusive"
    )
    exported.add_argument("--company-id", type=int, help="only this company")
    exported.add_argument("--output", help="CSV file (default: standard output)")
    exported.set_defaults(run=export)
    watched = commands.add_parser(
        "watch", help="print the journal feed as it comes, one line per entry (Ctrl-C stops)"
    )
    watched.add_argument("--company-id", type=int, help="only this company")
    start = watched.add_mutually_exclusive_group()
    start.add_argument(
        "--after",
        type=_position,
        help="continue after this position (an earlier line's first column); "
        "default: from the journal's first entry",
    )
    start.add_argument("--from-now", action="store_true", help="only entries committed from now")
    watched.add_argument("--count", type=int, help="stop after this many entries")
    watched.add_argument("--json", action="store_true", help="one JSON object per line")
    watched.set_defaults(run=watch)
    return parser


def main(argv: list[str] | None = None) -> int:
    flags = _parser().parse_args(argv)
    if getattr(flags, "key", "") is None:
        flags.key = f"cli-{uuid.uuid4()}"
    try:
        security = _security(flags)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(flags, security))
    except KeyboardInterrupt:  # how `watch` is meant to end
        return 130


def _security(flags: argparse.Namespace) -> ChannelSecurity:
    def path(flag: str | None, variable: str) -> Path | None:
        value = flag or os.environ.get(variable, "")
        return Path(value) if value else None

    token_file = path(flags.token_file, "LEDGER_TOKEN_FILE")
    token = token_file.read_text().strip() if token_file else os.environ.get("LEDGER_TOKEN", "")
    return ChannelSecurity(
        tls_ca=path(flags.tls_ca, "LEDGER_TLS_CA"),
        tls_cert=path(flags.tls_cert, "LEDGER_TLS_CLIENT_CERT"),
        tls_key=path(flags.tls_key, "LEDGER_TLS_CLIENT_KEY"),
        token=token,
    )


async def _run(flags: argparse.Namespace, security: ChannelSecurity) -> int:
    async with open_channel(flags.target, security) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        try:
            text = await flags.run(stub, flags)
            if text:
                print(text)
        except Refused as refusal:
            print(f"refused: {refusal}", file=sys.stderr)
            return 1
        except grpc.aio.AioRpcError as error:
            return _report(error, flags.target)
    return 0


def _report(error: grpc.aio.AioRpcError, target: str) -> int:
    code = error.code()
    found = error_detail(error)
    if found is not None:
        field = f" [{found.field}]" if found.field else ""
        print(f"error: {found.reason}{field}: {found.message}", file=sys.stderr)
        return 3 if found.reason == "UNAVAILABLE" else 1
    if code == grpc.StatusCode.UNAUTHENTICATED:
        print(f"error: the ledger refused the credentials: {error.details()}", file=sys.stderr)
        return 1
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        print(f"error: cannot reach the ledger at {target}: {error.details()}", file=sys.stderr)
        return 3
    print(f"error: {code.name}: {error.details()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
