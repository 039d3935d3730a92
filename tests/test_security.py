"""Secure gRPC: TLS, client certificates and bearer tokens on the ledger port.
Certificates are made by the test (trustme); no key is committed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger_client import ChannelSecurity, open_channel, pb, pb_grpc

from .conftest import ROOT, LedgerProcess, unique
from .tradeboss import QUERY, TradeBoss


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    other_ca = trustme.CA()
    files = {
        "ca": folder / "ca.pem",
        "server_cert": folder / "server.pem",
        "server_key": folder / "server-key.pem",
        "client_cert": folder / "client.pem",
        "client_key": folder / "client-key.pem",
        "rogue_cert": folder / "rogue.pem",
        "rogue_key": folder / "rogue-key.pem",
        "tokens": folder / "tokens.txt",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files["server_cert"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client = ca.issue_cert("facade.internal")
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    rogue = other_ca.issue_cert("rogue.internal")
    rogue.cert_chain_pems[0].write_to_path(str(files["rogue_cert"]))
    rogue.private_key_pem.write_to_path(str(files["rogue_key"]))
    files["tokens"].write_text("# rotated weekly\ntoken-old\ntoken-new\n")
    return files


@pytest.fixture(scope="module")
def tls_ledger(ledger_factory, pki):
    ledger: LedgerProcess = ledger_factory(
        tls_cert=str(pki["server_cert"]),
        tls_key=str(pki["server_key"]),
        tls_client_ca=str(pki["ca"]),
        auth_tokens_file=str(pki["tokens"]),
    )
    ledger.start()
    yield ledger
    ledger.terminate()


def _security(
    pki: dict[str, Path], token: str = "token-new", cert: str = "client"
) -> ChannelSecurity:
    return ChannelSecurity(
        tls_ca=pki["ca"],
        tls_cert=pki[f"{cert}_cert"] if cert else None,
        tls_key=pki[f"{cert}_key"] if cert else None,
        token=token,
    )


async def _open_wallet(target: str, security: ChannelSecurity) -> pb.OpenAccountResponse:
    async with open_channel(target, security) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        key = pb.AccountKey(company_id=1, customer=unique("tls"), currency="USD")
        return await stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=2), timeout=5)


async def _wait_tls_ready(ledger: LedgerProcess, pki: dict[str, Path]) -> None:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + 30
    async with open_channel(ledger.target, _security(pki, token="")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                # Health checks need no token (load balancers probe them).
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                return
            except grpc.aio.AioRpcError:
                if loop.time() > give_up_at:
                    raise
                await asyncio.sleep(0.1)


async def test_tls_client_certificate_and_token_are_accepted(tls_ledger, pki):
    await _wait_tls_ready(tls_ledger, pki)
    answer = await _open_wallet(tls_ledger.target, _security(pki))
    assert answer.created
    answer = await _open_wallet(tls_ledger.target, _security(pki, token="token-old"))
    assert answer.created


@pytest.mark.parametrize(
    ("case", "security", "code"),
    [
        ("no token", {"token": ""}, grpc.StatusCode.UNAUTHENTICATED),
        ("unknown token", {"token": "token-guess"}, grpc.StatusCode.UNAUTHENTICATED),
        ("no client certificate", {"cert": ""}, grpc.StatusCode.UNAVAILABLE),
        ("certificate of another CA", {"cert": "rogue"}, grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_callers_without_credentials_are_refused(tls_ledger, pki, case, security, code):
    await _wait_tls_ready(tls_ledger, pki)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _open_wallet(tls_ledger.target, _security(pki, **security))
    assert refused.value.code() == code, case


async def test_plaintext_caller_is_refused(tls_ledger, pki):
    await _wait_tls_ready(tls_ledger, pki)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _open_wallet(tls_ledger.target, ChannelSecurity(token="token-new"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tokens_rotate_without_restart(tls_ledger, pki):
    await _wait_tls_ready(tls_ledger, pki)
    pki["tokens"].write_text("token-next\n")
    await _until_accepted(tls_ledger, _security(pki, token="token-next"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _open_wallet(tls_ledger.target, _security(pki, token="token-old"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    pki["tokens"].write_text("token-old\ntoken-new\n")
    await _until_accepted(tls_ledger, _security(pki, token="token-new"))


async def _until_accepted(ledger: LedgerProcess, security: ChannelSecurity) -> None:
    """The tokens file is re-read at most once a second."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + 10
    while True:
        try:
            await _open_wallet(ledger.target, security)
            return
        except grpc.aio.AioRpcError:
            assert loop.time() < give_up_at, "the token was never accepted"
            await asyncio.sleep(0.2)


async def test_operator_cli_speaks_tls_and_tokens(tls_ledger, pki, tmp_path):
    await _wait_tls_ready(tls_ledger, pki)
    token_file = tmp_path / "token"
    token_file.write_text("token-new\n")
    base = [
        sys.executable,
        "-m",
        "ledger_service.operator_cli",
        "--target",
        tls_ledger.target,
        "--tls-ca",
        str(pki["ca"]),
        "--tls-cert",
        str(pki["client_cert"]),
        "--tls-key",
        str(pki["client_key"]),
    ]
    wallet = ["--company-id", "1", "--customer", unique("tls-cli"), "--currency", "USD"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)

    token = ["--token-file", str(token_file)]
    today = datetime.now(UTC).date()
    period = ["--from", str(today), "--to", str(today + timedelta(days=1))]
    # Finding 5: every command, unary and streaming alike, carries the token.
    for command in (
        ["open-account", *wallet, "--digits", "2"],
        ["deposit", *wallet, "--amount", "5.00", "--key", unique("dep")],
        ["withdraw", *wallet, "--amount", "1.00", "--key", unique("wd")],
        ["balance", *wallet],
        ["rebind-user-name", *wallet, "--user-name", "u-tls", "--reason", "test"],
        ["statement", *wallet],
        ["request", *wallet, "--number", "nope"],
        ["reconcile"],
        ["exposure", "--company-id", "1"],
        ["export", "--company-id", "1", *period],
    ):
        done = await asyncio.to_thread(run, *token, *command)
        expected = 1 if command[0] == "request" else 0  # an unknown number: REQUEST_NOT_FOUND
        assert done.returncode == expected, (command, done.stdout, done.stderr)
        assert "credentials" not in done.stderr
    exported = await asyncio.to_thread(run, *token, "export", "--company-id", "1", *period)
    assert len(exported.stdout.splitlines()) > 2, "export wrote a header and no rows"
    refused = await asyncio.to_thread(run, "balance", *wallet)
    assert refused.returncode == 1
    assert "refused the credentials" in refused.stderr


async def test_facade_reaches_a_tls_ledger_with_client_certificate_and_token(
    tls_ledger, pki, facade_factory, tmp_path
):
    await _wait_tls_ready(tls_ledger, pki)
    answer = await _open_wallet(tls_ledger.target, _security(pki))
    key = answer.balance.account
    token_file = tmp_path / "ledger-token"
    token_file.write_text("token-new\n")
    tls = {
        "ledger_target": tls_ledger.target,
        "ledger_tls_ca": str(pki["ca"]),
        "ledger_tls_cert": str(pki["client_cert"]),
        "ledger_tls_key": str(pki["client_key"]),
    }
    body = {"thirdServerCode": key.customer, "userName": "alice", "currency": key.currency}
    trusted = facade_factory(**tls, ledger_token_file=str(token_file))
    tokenless = facade_factory(**tls)
    for facade in (trusted, tokenless):
        facade.start()
        await facade.wait_ready()
    try:
        async with httpx.AsyncClient() as client:
            ok = await TradeBoss(trusted.url, client).post(QUERY, body)
            refused = await TradeBoss(tokenless.url, client).post(QUERY, body)
    finally:
        trusted.terminate()
        tokenless.terminate()
    assert (ok["code"], ok["data"]["amount"]) == ("0", "0.00")
    assert refused["code"] == "LW_5000"
    assert "UNAUTHENTICATED" in tokenless.log()
