"""The facade is not an open door: networks, proxies, companies, signatures,
TLS, and a refusal to start wide open."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import trustme

from http_facade.security import signature

from .conftest import ROOT, FacadeProcess, free_port
from .tradeboss import EXECUTE, QUERY, TradeBoss


async def _started(facade_factory, **settings: str) -> FacadeProcess:
    facade: FacadeProcess = facade_factory(**settings)
    facade.start()
    await facade.wait_ready()
    return facade


async def _query(url: str, wallet, **headers: str) -> dict:
    async with httpx.AsyncClient() as client:
        tradeboss = TradeBoss(url, client, extra_headers=headers)
        return await tradeboss.query(wallet)


async def test_callers_outside_the_allowlist_are_refused(facade_factory, open_wallet):
    wallet = await open_wallet()
    facade = await _started(facade_factory, allowed_networks="10.0.0.0/8")
    try:
        answer = await _query(facade.url, wallet)
        assert (answer["code"], answer["msgParams"]) == ("LW_2001", "127.0.0.1")
        # X-Forwarded-For from a peer that is not a trusted proxy is ignored.
        spoofed = await _query(facade.url, wallet, **{"X-Forwarded-For": "10.1.2.3"})
        assert spoofed["code"] == "LW_2001"
    finally:
        facade.terminate()
    assert "refused caller 127.0.0.1" in facade.log()


async def test_forwarded_for_is_believed_from_trusted_proxies(facade_factory, open_wallet):
    wallet = await open_wallet()
    facade = await _started(
        facade_factory, allowed_networks="203.0.113.0/24", trusted_proxies="127.0.0.1/32"
    )
    try:
        allowed = await _query(facade.url, wallet, **{"X-Forwarded-For": "203.0.113.5"})
        assert allowed["code"] == "0"
        # The right-most untrusted hop counts, whatever the client wrote before it.
        forged = await _query(
            facade.url, wallet, **{"X-Forwarded-For": "203.0.113.5, 198.51.100.1"}
        )
        assert (forged["code"], forged["msgParams"]) == ("LW_2001", "198.51.100.1")
        # Finding 3: two header lines are one list, in order; the last line
        # (appended by the proxy) decides, not the first one the caller forged.
        body = {
            "thirdServerCode": wallet.customer,
            "userName": wallet.user_name,
            "currency": wallet.currency,
        }
        async with httpx.AsyncClient() as client:
            headers = [
                *TradeBoss(facade.url, client).headers().items(),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-For", "6.6.6.6"),
            ]
            answer = await client.post(f"{facade.url}/get-user-amount", json=body, headers=headers)
        assert (answer.json()["code"], answer.json()["msgParams"]) == ("LW_2001", "6.6.6.6")
    finally:
        facade.terminate()


async def test_companies_outside_the_allowlist_are_refused(facade_factory, open_wallet):
    allowed_wallet = await open_wallet(company_id=2)
    other_wallet = await open_wallet(company_id=3)
    facade = await _started(facade_factory, allowed_companies="2")
    try:
        async with httpx.AsyncClient() as client:
            answer = await TradeBoss(facade.url, client, company_id=3).query(other_wallet)
            assert (answer["code"], answer["msgParams"]) == ("LW_2002", "3")
            answer = await TradeBoss(facade.url, client, company_id=2).query(allowed_wallet)
            assert answer["code"] == "0"
    finally:
        facade.terminate()


async def test_hmac_signature_binds_the_body_the_tenant_and_the_time(
    facade_factory, open_wallet, tmp_path
):
    """Finding 4: a signed request replayed with another companyId, or with a
    timestamp outside the window, is refused; the signed bytes are
    companyId + "\\n" + timestamp + "\\n" + body."""
    wallet = await open_wallet()
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    facade = await _started(facade_factory, hmac_secret_file=str(secret), signature_window="60")
    body = (
        f'{{"thirdServerCode": "{wallet.customer}", "userName": "{wallet.user_name}", '
        f'"currency": "{wallet.currency}"}}'
    ).encode()

    def signed(key: bytes, company: str, timestamp: str) -> dict[str, str]:
        headers = {**tradeboss.headers(), "companyId": company, "timestamp": timestamp}
        headers["X-Signature"] = "sha256=" + signature(key, company, timestamp, body)
        return headers

    now = str(int(time.time() * 1000))
    try:
        async with httpx.AsyncClient() as client:
            tradeboss = TradeBoss(facade.url, client)
            unsigned = await tradeboss.post(QUERY, None, content=body)
            assert unsigned["code"] == "LW_2003"
            wrong_key = await tradeboss.post(
                QUERY, None, content=body, headers=signed(b"wrong", "1", now)
            )
            assert wrong_key["code"] == "LW_2003"
            good = signed(b"s3cret", "1", now)
            assert (await tradeboss.post(QUERY, None, content=body, headers=good))["code"] == "0"
            # The same signature replayed for another tenant:
            replayed = {**good, "companyId": "2"}
            answer = await tradeboss.post(QUERY, None, content=body, headers=replayed)
            assert answer["code"] == "LW_2003"
            # A body changed under the signature:
            tampered = body.replace(b"}", b', "x": 1}')
            answer = await tradeboss.post(QUERY, None, content=tampered, headers=good)
            assert answer["code"] == "LW_2003"
            # Signed correctly, but ten minutes old (or ahead):
            for skew in (-600_000, 600_000):
                stale = signed(b"s3cret", "1", str(int(now) + skew))
                answer = await tradeboss.post(QUERY, None, content=body, headers=stale)
                assert answer["code"] == "LW_2003"
    finally:
        facade.terminate()


def test_the_signer_script_prints_what_the_facade_checks(tmp_path):
    """The documented signer: `python -m http_facade.security SECRET_FILE COMPANY_ID < body`."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    body = b'{"thirdServerCode": "C1"}'
    done = subprocess.run(
        [sys.executable, "-m", "http_facade.security", str(secret), "7"],
        input=body,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.decode().splitlines())
    expected = signature(b"s3cret", "7", lines["timestamp"], body)
    assert lines["X-Signature"] == "sha256=" + expected
    # The worked example in the README, byte for byte.
    assert (
        signature(b"s3cret", "1", "1764000000000", b'{"a":1}')
        == hmac.new(b"s3cret", b'1\n1764000000000\n{"a":1}', hashlib.sha256).hexdigest()
    )


async def test_refuses_to_listen_wide_open_without_an_allowlist():
    port = free_port()
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "http_facade.cli", "--listen", f"0.0.0.0:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert refused.returncode == 2
    assert "FACADE_ALLOWED_NETWORKS" in refused.stderr


async def test_wide_open_when_told_so(facade_factory):
    facade: FacadeProcess = facade_factory(allow_any_caller="true")
    facade.env["FACADE_LISTEN"] = "0.0.0.0:" + facade.url.rsplit(":", 1)[1]
    facade.start()
    await facade.wait_ready()
    assert facade.terminate() == 0


async def test_serves_https_with_uvicorn_tls(facade_factory, open_wallet, tmp_path):
    wallet = await open_wallet()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    facade = await _started(
        facade_factory, tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem")
    )
    try:
        assert facade.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with httpx.AsyncClient(verify=context) as client:
            answer = await TradeBoss(facade.url, client).query(wallet)
        assert answer["code"] == "0"
    finally:
        facade.terminate()


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("--ledger-deadline=5", "--ledger-deadline='5': Input should be less than 3"),
        ("--path-prefix=api", "the path prefix must start with /"),
        ("--max-connections=many", "--max-connections='many'"),
    ],
)
async def test_settings_that_make_no_sense_are_refused(flag, said):
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "http_facade.cli", flag],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert refused.returncode == 2 and said in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_facade_check_config_masks_nothing_it_need_not_and_names_every_setting():
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "http_facade.cli", "check-config", "--max-headers", "50"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "FACADE_ALLOWED_COMPANIES": "2,1"},
    )
    assert done.returncode == 0, done.stderr
    assert "FACADE_MAX_HEADERS=50" in done.stdout
    assert "FACADE_ALLOWED_COMPANIES=1,2" in done.stdout
    assert "FACADE_ADMIN_LISTEN=127.0.0.1:9465" in done.stdout


async def test_a_newline_in_a_field_cannot_forge_a_log_line(facade_factory, open_wallet):
    """Finding 7: every logged value is escaped in text logs."""
    wallet = await open_wallet()
    facade = await _started(facade_factory, log_format="text")
    try:
        async with httpx.AsyncClient() as client:
            tradeboss = TradeBoss(facade.url, client)
            body = tradeboss.execute_body(
                wallet, "1.00", requestUniqueNo="n1\n2026-01-01 INFO FORGED all good"
            )
            answer = await tradeboss.post(EXECUTE, body)
            assert answer["code"] == "LW_1002"
    finally:
        facade.terminate()
    log = facade.log()
    assert "n1\\n2026-01-01 INFO FORGED" in log
    assert not any(line.startswith("2026-01-01 INFO FORGED") for line in log.splitlines())
