"""The dashboard and the alert rules name only metrics the services export:
after real traffic through the facade and the ledger, every name they use is
on one of the two /metrics pages."""

from __future__ import annotations

import json
import re

import httpx

from .conftest import ROOT, unique
from .tradeboss import CANCEL, EXECUTE, TradeBoss

DEPLOY = ROOT / "deploy"
_NAME = re.compile(r"\b((?:ledger|facade)_[a-z_]+)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def _names_used() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "ledger-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    expressions.append((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = set()
    for expression in expressions:
        for name in _NAME.findall(expression):
            for suffix in _SUFFIXES:
                name = name.removesuffix(suffix) if name.endswith(suffix) else name
            names.add(name)
    return names


def _exported(text: str) -> set[str]:
    """Sample names, and the families declared (a labelled counter nobody has
    incremented yet shows only its TYPE line)."""
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}
    families = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            families |= {family, family + "_total"} if kind == "counter" else {family}
    return samples | families


async def test_every_metric_of_the_dashboard_and_alerts_is_exported(
    facade, ledger_server, open_wallet
):
    wallet = await open_wallet(balance="10.00")
    async with httpx.AsyncClient() as client:
        tradeboss = TradeBoss(facade.url, client)
        await tradeboss.query(wallet)
        execute = tradeboss.execute_body(wallet, "1.00")
        assert (await tradeboss.post(EXECUTE, execute))["code"] == "0"
        bad = tradeboss.execute_body(wallet, "1.001")
        assert (await tradeboss.post(EXECUTE, bad))["code"] == "LW_1005"
        cancel = tradeboss.cancel_body(wallet, execute["requestUniqueNo"], "1.00")
        assert (await tradeboss.post(CANCEL, cancel))["code"] == "0"
        lost = tradeboss.cancel_body(wallet, unique("lost"), "1.00")
        assert (await tradeboss.post(CANCEL, lost))["code"] == "US_0000002"
        facade_metrics = (await client.get(facade.admin_url + "/metrics")).text
        ledger_metrics = (await client.get(ledger_server.metrics_url)).text
    exported = _exported(facade_metrics) | _exported(ledger_metrics)
    used = _names_used()
    assert len(used) >= 15
    assert sorted(used - exported) == []
