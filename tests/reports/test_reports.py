"""Every report on one small portfolio posted through the API, its figures computed by hand (both databases).

The portfolio, valued on 2026-03-20. Policies: P (primary, EUR 2026, indemnity 0.90, claim deadline due + 60,
Italy excluded, premium rate 0.25 %, minimum premium 500) and T (complement Top Up x1.0, indemnity 0.90).
- B1 (FR), limit 100,000: H1 10,000 (delivered 01-02, due 02-01, paid 02-11: 10 days late) and H2 30,000
  (01-10, due 02-09, paid on the day); open I1 80,000 (02-10, due 04-11) and I2 90,000 (03-01, due 04-30):
  DOMAIN.md example A, primary 80,000 + 20,000, Top Up 70,000.
- B2 (DE), limit 50,000: J1 30,000 (01-05, due 02-04: 44 days late), J2 10,000 (01-20, due 03-10) less credit
  note C1 5,000 (02-15), J3 USD 1,100 (03-05, due 04-04) at EUR/USD 1.10 = 1,000 EUR. All within the primary.
- B3 (IT, outside the territory): K1 12,000 (2025-11-01, due 2025-12-01), K2 7,000 (02-01, due 03-03).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.reports.service import round_up
from app.scheduling.jobs import daily_scan
from tests.helpers import PRIMARY, TOP_UP, buyer, invoice, limit, ok, payment

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def portfolio(api, scan=None, clock=None) -> None:
    ok(api.put("/v1/policies/P", json={**PRIMARY, "excluded_countries": ["IT"], "premium_rate": "0.0025",
                                       "minimum_premium": "500.00"}))
    ok(api.put("/v1/policies/T", json=TOP_UP))
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-01", "base": "EUR", "quote": "USD",
                                                "rate": "1.10"}]}))
    buyer(api, "B1", "FR")
    buyer(api, "B2", "DE")
    buyer(api, "B3", "IT")
    limit(api, "100000.00", "2026-01-01", buyer_ref="B1")
    limit(api, "50000.00", "2026-01-01", buyer_ref="B2")
    invoice(api, "H1", "10000.00", "2026-01-02", "2026-02-01", buyer_ref="B1")
    invoice(api, "H2", "30000.00", "2026-01-10", "2026-02-09", buyer_ref="B1")
    payment(api, "PAY1", "10000.00", buyer_ref="B1", received_on="2026-02-11",
            allocations=[{"invoice_ref": "H1", "amount": "10000.00"}])
    payment(api, "PAY2", "30000.00", buyer_ref="B1", received_on="2026-02-09",
            allocations=[{"invoice_ref": "H2", "amount": "30000.00"}])
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11", buyer_ref="B1")
    invoice(api, "J1", "30000.00", "2026-01-05", "2026-02-04", buyer_ref="B2")
    invoice(api, "J2", "10000.00", "2026-01-20", "2026-03-10", buyer_ref="B2")
    invoice(api, "C1", "5000.00", "2026-02-15", "2026-02-15", buyer_ref="B2", kind="credit_note", applies_to="J2")
    invoice(api, "J3", "1100.00", "2026-03-05", "2026-04-04", buyer_ref="B2", currency="USD")
    invoice(api, "K1", "12000.00", "2025-11-01", "2025-12-01", buyer_ref="B3")
    invoice(api, "K2", "7000.00", "2026-02-01", "2026-03-03", buyer_ref="B3")
    if scan is not None:  # a snapshot on 03-18 before I2, then on 03-19 and 03-20 with it
        clock.set(date(2026, 3, 18))
        scan()
        clock.set(date(2026, 3, 19))
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30", buyer_ref="B1")
    if scan is not None:
        scan()
        clock.set(date(2026, 3, 20))
        scan()


def parse_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


def parse_xlsx(response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    header, *rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(header, r, strict=True)) for r in rows]


def pick(rows, *keys):
    return [tuple(r[k] for k in keys) for r in rows]


def test_aging_per_buyer_and_currency(api):
    portfolio(api)
    report = ok(api.get("/v1/reports/aging"))
    assert report["as_of"] == "2026-03-20"
    keys = ("buyer_ref", "currency", "invoices", "outstanding", "not_due", "overdue_1_30", "overdue_31_60",
            "overdue_61_90", "overdue_over_90")
    assert pick(report["rows"], *keys) == [
        ("B1", "EUR", 2, "170000.00", "170000.00", "0.00", "0.00", "0.00", "0.00"),
        ("B2", "EUR", 2, "35000.00", "0.00", "5000.00", "30000.00", "0.00", "0.00"),
        ("B2", "USD", 1, "1100.00", "1100.00", "0.00", "0.00", "0.00", "0.00"),
        ("B3", "EUR", 2, "19000.00", "0.00", "7000.00", "0.00", "0.00", "12000.00"),
    ]
    assert pick(report["totals"], "currency", "buyers", *keys[2:]) == [
        ("EUR", 3, 6, "224000.00", "170000.00", "12000.00", "30000.00", "0.00", "12000.00"),
        ("USD", 1, 1, "1100.00", "1100.00", "0.00", "0.00", "0.00", "0.00"),
    ]
    # Filtered by country, and aged on another day: on 04-15 I1 (due 04-11) is 4 days late, J3 11.
    de = ok(api.get("/v1/reports/aging", params={"country": "DE", "as_of": "2026-04-15"}))
    assert pick(de["rows"], *keys) == [
        ("B2", "EUR", 2, "35000.00", "0.00", "0.00", "5000.00", "30000.00", "0.00"),
        ("B2", "USD", 1, "1100.00", "0.00", "1100.00", "0.00", "0.00", "0.00"),
    ]
    late = ok(api.get("/v1/reports/aging", params={"as_of": "2026-04-15"}))["rows"][0]
    assert (late["not_due"], late["overdue_1_30"]) == ("90000.00", "80000.00")

    # The same rows as CSV and as an Excel file.
    as_csv = parse_csv(api.get("/v1/reports/aging", headers={"Accept": "text/csv"}))
    assert pick(as_csv, *keys) == [tuple(str(v) for v in r) for r in pick(report["rows"], *keys)]
    as_xlsx = parse_xlsx(api.get("/v1/reports/aging", headers={"Accept": XLSX}))
    assert [(r["buyer_ref"], r["currency"], Decimal(str(r["outstanding"])), r["overdue_over_90"]) for r in as_xlsx] == [
        ("B1", "EUR", Decimal("170000"), 0), ("B2", "EUR", Decimal("35000"), 0), ("B2", "USD", Decimal("1100"), 0),
        ("B3", "EUR", Decimal("19000"), 12000)]


def test_top_up_needs_from_the_snapshots(api, tenant, app, database, clock):
    portfolio(api, scan=lambda: daily_scan(database, app.state.settings, force=True, tenant_ids=[tenant.id]),
              clock=clock)
    report = ok(api.get("/v1/reports/top-up-needs"))
    assert (report["from_day"], report["to_day"], report["snapshot_days"]) == ("2025-12-21", "2026-03-20", 3)
    keys = ("buyer_ref", "days", "peak_outstanding", "primary_limit", "top_up_limit", "peak_above_primary",
            "peak_uncovered", "days_above_primary", "share_days_above_primary", "suggested_top_up")
    # B1 went above its primary when I2 came (2 days of 3), by 70,000; B3 has no cover at all (19,000).
    # B2 stayed within its primary: not listed.
    assert pick(report["rows"], *keys) == [
        ("B1", 3, "170000.00", "100000.00", "100000.00", "70000.00", "0.00", 2, "0.6667", "70000.00"),
        ("B3", 3, "19000.00", "0.00", "0.00", "19000.00", "19000.00", 3, "1.0000", "20000.00"),
    ]
    assert report["totals"] == [{"currency": "EUR", "buyers": 2, "peak_outstanding": "189000.00",
                                 "peak_above_primary": "89000.00", "peak_uncovered": "19000.00",
                                 "suggested_top_up": "90000.00"}]
    two_days = ok(api.get("/v1/reports/top-up-needs", params={"days": 2}))
    assert pick(two_days["rows"], "buyer_ref", "days", "share_days_above_primary") == [
        ("B1", 2, "1.0000"), ("B3", 2, "1.0000")]
    as_csv = parse_csv(api.get("/v1/reports/top-up-needs", params={"format": "csv"}))
    assert pick(as_csv, "buyer_ref", "suggested_top_up") == [("B1", "70000.00"), ("B3", "20000.00")]


def test_suggested_top_up_rounds_up_to_a_round_figure():
    assert [round_up(Decimal(v)) for v in ("0", "0.01", "4000", "5000", "99999.99", "100000", "100000.01",
                                           "999999", "1000000", "1000000.01", "2340000")] == [
        0, 5000, 5000, 5000, 100000, 100000, 110000, 1000000, 1000000, 1050000, 2350000]


def test_turnover_to_declare_with_the_premium(api):
    portfolio(api)
    report = ok(api.get("/v1/reports/turnover", params={"policy_ref": "P"}))
    assert (report["from_day"], report["to_day"], report["currency"]) == ("2026-01-01", "2026-12-31", "EUR")
    keys = ("month", "country", "invoices", "invoiced", "credit_notes", "credited", "turnover")
    # Italy is outside the territory, K1 (2025) outside the period; J3's USD 1,100 is 1,000 EUR.
    assert pick(report["rows"], *keys) == [
        ("2026-01", "DE", 2, "40000.00", 0, "0.00", "40000.00"),
        ("2026-01", "FR", 2, "40000.00", 0, "0.00", "40000.00"),
        ("2026-02", "DE", 0, "0.00", 1, "5000.00", "-5000.00"),
        ("2026-02", "FR", 1, "80000.00", 0, "0.00", "80000.00"),
        ("2026-03", "DE", 1, "1000.00", 0, "0.00", "1000.00"),
        ("2026-03", "FR", 1, "90000.00", 0, "0.00", "90000.00"),
    ]
    assert report["totals"] == {"invoices": 7, "invoiced": "251000.00", "credit_notes": 1, "credited": "5000.00",
                                "turnover": "246000.00", "premium_at_rate": "615.00", "estimated_premium": "615.00"}
    assert (report["premium_rate"], report["minimum_premium"], report["errors"]) == ("0.0025", "500.00", [])

    # One month: the minimum premium applies.
    feb = ok(api.get("/v1/reports/turnover", params={"policy_ref": "P", "from": "2026-02-01", "to": "2026-02-28"}))
    assert (feb["totals"]["turnover"], feb["totals"]["premium_at_rate"], feb["totals"]["estimated_premium"]) == (
        "75000.00", "187.50", "500.00")
    as_xlsx = parse_xlsx(api.get("/v1/reports/turnover", params={"policy_ref": "P", "format": "xlsx"}))
    assert [(r["month"], r["country"], r["turnover"]) for r in as_xlsx][:3] == [
        ("2026-01", "DE", 40000), ("2026-01", "FR", 40000), ("2026-02", "DE", -5000)]
    assert api.get("/v1/reports/turnover", params={"policy_ref": "NOPE"}).status_code == 404


def test_turnover_with_a_missing_rate_is_unknown_not_zero(api):
    portfolio(api)
    ok(api.put("/v1/buyers/B4", json={"name": "Buyer B4", "country": "CH"}))
    invoice(api, "L1", "5000.00", "2026-03-02", "2026-04-01", buyer_ref="B4", currency="CHF")
    report = ok(api.get("/v1/reports/turnover", params={"policy_ref": "P"}))
    ch = next(r for r in report["rows"] if r["country"] == "CH")
    assert (ch["invoices"], ch["invoiced"], ch["turnover"]) == (1, None, None)
    assert report["totals"]["turnover"] is None and report["totals"]["estimated_premium"] is None
    assert report["errors"] == ["missing FX rate CHF/EUR on or before 2026-03-31"]


def test_overdue_declarations(api):
    portfolio(api)
    keys = ("buyer_ref", "invoice_ref", "open_balance", "days_overdue", "policy_ref", "declare_by", "claim_deadline",
            "days_to_claim_deadline")
    # Default threshold: claim deadline (60) - 30 = 30 days after the due date. B3 has no policy (Italy).
    now = ok(api.get("/v1/reports/overdue-declarations"))
    assert pick(now["rows"], *keys) == [("B2", "J1", "30000.00", 44, "P", "2026-03-06", "2026-04-05", 16)]
    assert now["totals"] == [{"currency": "EUR", "invoices": 1, "open_balance": "30000.00"}]
    later = ok(api.get("/v1/reports/overdue-declarations", params={"as_of": "2026-04-10"}))
    assert pick(later["rows"], "invoice_ref", "open_balance", "declare_by", "days_to_claim_deadline") == [
        ("J1", "30000.00", "2026-03-06", -5), ("J2", "5000.00", "2026-04-09", 29)]

    # The policy's own threshold: 45 days.
    ok(api.put("/v1/policies/P", json={**PRIMARY, "excluded_countries": ["IT"], "overdue_declaration_days": 45}))
    assert ok(api.get("/v1/policies/P"))["overdue_declaration_days"] == 45
    assert ok(api.get("/v1/reports/overdue-declarations"))["rows"] == []
    rows = parse_csv(api.get("/v1/reports/overdue-declarations", params={"as_of": "2026-03-21", "format": "csv"}))
    assert pick(rows, "invoice_ref", "declare_by", "days_overdue") == [("J1", "2026-03-21", "45")]

    # Once declared in a claim, it is no longer to declare.
    ok(api.post("/v1/claims", json={"buyer_ref": "B2", "invoice_refs": ["J1"], "filed_on": "2026-03-20"}), 201)
    assert ok(api.get("/v1/reports/overdue-declarations", params={"as_of": "2026-03-21"}))["rows"] == []


def test_insured_receivables_schedule(api):
    portfolio(api)
    report = ok(api.get("/v1/reports/insured-receivables"))
    keys = ("buyer_ref", "invoice_ref", "currency", "open_balance", "primary_policy_ref", "covered_primary",
            "primary_indemnity_rate", "top_up_policy_ref", "covered_top_up", "top_up_indemnity_rate", "uncovered",
            "uncovered_reason", "indemnifiable")
    assert pick(report["rows"], *keys) == [
        ("B1", "I1", "EUR", "80000.00", "P", "80000.00", "0.9", "T", "0.00", "0.9", "0.00", None, "72000.00"),
        ("B1", "I2", "EUR", "90000.00", "P", "20000.00", "0.9", "T", "70000.00", "0.9", "0.00", None, "81000.00"),
        ("B2", "J1", "EUR", "30000.00", "P", "30000.00", "0.9", "T", "0.00", "0.9", "0.00", None, "27000.00"),
        ("B2", "J2", "EUR", "5000.00", "P", "5000.00", "0.9", "T", "0.00", "0.9", "0.00", None, "4500.00"),
        ("B2", "J3", "EUR", "1000.00", "P", "1000.00", "0.9", "T", "0.00", "0.9", "0.00", None, "900.00"),
        ("B3", "K1", "EUR", "12000.00", None, "0.00", None, None, "0.00", None, "12000.00", "outside_territory",
         "0.00"),
        ("B3", "K2", "EUR", "7000.00", None, "0.00", None, None, "0.00", None, "7000.00", "outside_territory",
         "0.00"),
    ]
    assert report["totals"] == [{"currency": "EUR", "invoices": 7, "open_balance": "225000.00",
                                 "covered_primary": "136000.00", "covered_top_up": "70000.00",
                                 "uncovered": "19000.00", "indemnifiable": "185400.00"}]
    assert report["rows"][1]["claim_deadline"] == "2026-06-29"

    # Valued on another day: on 2026-07-01 I1's claim deadline (06-10) has passed without a claim.
    july = ok(api.get("/v1/reports/insured-receivables", params={"as_of": "2026-07-01"}))
    i1 = next(r for r in july["rows"] if r["invoice_ref"] == "I1")
    assert (i1["covered_primary"], i1["uncovered"], i1["uncovered_reason"]) == ("0.00", "80000.00",
                                                                                "claim_deadline_passed")
    rows = parse_xlsx(api.get("/v1/reports/insured-receivables", headers={"Accept": XLSX}))
    assert [(r["invoice_ref"], r["covered_primary"], r["covered_top_up"]) for r in rows][:2] == [
        ("I1", 80000, 0), ("I2", 20000, 70000)]


def test_payment_behaviour(api):
    portfolio(api)
    # B2 pays J2 in full on 03-15 (5 days late), after its credit note.
    payment(api, "PAY3", "5000.00", buyer_ref="B2", received_on="2026-03-15",
            allocations=[{"invoice_ref": "J2", "amount": "5000.00"}])
    report = ok(api.get("/v1/reports/payment-behaviour"))
    assert (report["from_day"], report["to_day"]) == ("2025-03-21", "2026-03-20")
    keys = ("buyer_ref", "currency", "invoices_paid", "amount_paid", "average_days_beyond_terms",
            "weighted_days_beyond_terms", "max_days_beyond_terms", "paid_late", "share_paid_late")
    assert pick(report["rows"], *keys) == [
        ("B1", "EUR", 2, "40000.00", "5.0", "2.5", 10, 1, "0.5000"),
        ("B2", "EUR", 1, "10000.00", "5.0", "5.0", 5, 1, "1.0000"),
    ]
    # The window: 10 days back from 03-20 starts on 03-11, after B1's payments.
    assert pick(ok(api.get("/v1/reports/payment-behaviour", params={"days": 10}))["rows"], "buyer_ref") == [("B2",)]
    # A bounced payment: H1 is open again, so it is no longer paid.
    ok(api.delete("/v1/payments/PAY1"))
    b1 = ok(api.get("/v1/reports/payment-behaviour"))["rows"][0]
    assert (b1["invoices_paid"], b1["paid_late"], b1["average_days_beyond_terms"]) == (1, 0, "0.0")


@pytest.mark.parametrize("path", ["/v1/reports/aging", "/v1/reports/insured-receivables", "/v1/exports/buyers",
                                  "/v1/exports/invoices", "/v1/exports/alerts", "/v1/exports/limits"])
def test_reports_need_a_key_and_stay_in_their_tenant(api, make_tenant, anon, path):
    portfolio(api)
    assert anon.get(path).status_code == 401
    other = make_tenant("Other SAS").client
    assert parse_csv(other.get(path, params={"format": "csv"})) == []
