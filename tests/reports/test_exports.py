"""The exports: every row streamed as CSV or Excel (the portfolio of test_reports)."""

from __future__ import annotations

from tests.helpers import buyer, ok
from tests.reports.test_reports import XLSX, parse_csv, parse_xlsx, pick, portfolio


def test_buyers_export(api):
    portfolio(api)
    response = api.get("/v1/exports/buyers")
    assert "etag" not in response.headers and "content-length" not in response.headers  # streamed, not buffered
    rows = parse_csv(response)
    assert pick(rows, "buyer_ref", "country", "outstanding", "covered_primary", "covered_top_up", "uncovered",
                "status") == [
        ("B1", "FR", "170000.00", "100000.00", "70000.00", "0.00", "above_primary"),
        ("B2", "DE", "36000.00", "36000.00", "0.00", "0.00", "ok"),
        ("B3", "IT", "19000.00", "0.00", "0.00", "19000.00", "no_cover"),
    ]
    assert rows[0]["utilisation"] == "0.85"
    as_xlsx = parse_xlsx(api.get("/v1/exports/buyers", params={"format": "xlsx"}))
    assert [(r["buyer_ref"], r["outstanding"]) for r in as_xlsx] == [("B1", 170000), ("B2", 36000), ("B3", 19000)]


def test_invoices_export_with_their_cover(api):
    portfolio(api)
    rows = parse_csv(api.get("/v1/exports/invoices", headers={"Accept": "text/csv"}))
    keys = ("invoice_ref", "kind", "currency", "amount", "open_balance", "cover_currency", "covered_primary",
            "covered_top_up", "uncovered", "uncovered_reason")
    assert pick(rows, *keys) == [
        ("H1", "invoice", "EUR", "10000.00", "0.00", "", "", "", "", ""),
        ("H2", "invoice", "EUR", "30000.00", "0.00", "", "", "", "", ""),
        ("I1", "invoice", "EUR", "80000.00", "80000.00", "EUR", "80000.00", "0.00", "0.00", ""),
        ("I2", "invoice", "EUR", "90000.00", "90000.00", "EUR", "20000.00", "70000.00", "0.00", ""),
        ("J1", "invoice", "EUR", "30000.00", "30000.00", "EUR", "30000.00", "0.00", "0.00", ""),
        ("J2", "invoice", "EUR", "10000.00", "5000.00", "EUR", "5000.00", "0.00", "0.00", ""),
        ("C1", "credit_note", "EUR", "5000.00", "0.00", "", "", "", "", ""),
        ("J3", "invoice", "USD", "1100.00", "1100.00", "EUR", "1000.00", "0.00", "0.00", ""),
        ("K1", "invoice", "EUR", "12000.00", "12000.00", "EUR", "0.00", "0.00", "12000.00", "outside_territory"),
        ("K2", "invoice", "EUR", "7000.00", "7000.00", "EUR", "0.00", "0.00", "7000.00", "outside_territory"),
    ]
    assert rows[3]["claim_deadline"] == "2026-06-29" and rows[6]["applies_to"] == "J2"
    as_xlsx = parse_xlsx(api.get("/v1/exports/invoices", headers={"Accept": XLSX}))
    assert [r["invoice_ref"] for r in as_xlsx] == [r["invoice_ref"] for r in rows]


def test_alerts_and_limits_export(api):
    portfolio(api)
    alerts = parse_csv(api.get("/v1/exports/alerts"))
    assert ("exposure_above_primary", "B1", "open") in pick(alerts, "type", "buyer_ref", "state")
    assert ("no_cover", "B3", "open") in pick(alerts, "type", "buyer_ref", "state")
    limits = parse_csv(api.get("/v1/exports/limits"))
    assert pick(limits, "buyer_ref", "policy_ref", "status", "currency", "amount", "effective_from") == [
        ("B1", "P", "granted", "EUR", "100000.00", "2026-01-01"),
        ("B2", "P", "granted", "EUR", "50000.00", "2026-01-01"),
    ]
    as_xlsx = parse_xlsx(api.get("/v1/exports/limits", params={"format": "xlsx"}))
    assert [(r["buyer_ref"], r["amount"]) for r in as_xlsx] == [("B1", 100000), ("B2", 50000)]
    assert api.get("/v1/exports/nothing").status_code == 422


def test_a_large_export_streams_every_row(api):
    buyer(api, "B1")
    items = [{"invoice_ref": f"INV-{n:05d}", "buyer_ref": "B1", "currency": "EUR", "amount": "10.00",
              "issue_date": "2026-02-01", "due_date": "2026-03-31"} for n in range(4500)]
    assert ok(api.post("/v1/invoices/batch", json={"items": items}))["created"] == 4500
    response = api.get("/v1/exports/invoices")
    rows = parse_csv(response)
    assert len(rows) == 4500 and rows[-1]["invoice_ref"] == "INV-04499"
    assert {r["covered_primary"] for r in rows} == {"0.00"}  # no policy: nothing covered
