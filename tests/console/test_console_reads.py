"""The reads and actions the console needs, over HTTP on SQLite and PostgreSQL: who the key is, alert notes and
who acted, exposure over time from the snapshots, coming claim deadlines, and the offline docs pages."""

from datetime import date, timedelta

from app.exposure.models import ExposureSnapshot
from app.scheduling.jobs import daily_scan
from tests.helpers import buyer, domain_policies, invoice, limit, ok


def test_me_tells_the_key_its_scope_and_the_tenants_locale(api, make_tenant):
    me = ok(api.get("/v1/me"))
    assert me["scope"] == "admin" and me["key_name"] == "admin (created with the tenant)"
    assert me["currency"] == "EUR" and me["locale"] == "fr-FR" and me["today"] == "2026-03-20"
    reader = ok(api.post("/v1/api-keys", json={"name": "wallboard", "scope": "read"}), 201)
    me = ok(api.get("/v1/me", headers={"Authorization": f"Bearer {reader['key']}"}))
    assert (me["scope"], me["key_name"]) == ("read", "wallboard")
    settings = ok(api.get("/v1/settings"))
    assert ok(api.put("/v1/settings", json={**settings, "locale": "en-GB"}))["locale"] == "en-GB"
    assert ok(api.get("/v1/me"))["locale"] == "en-GB"
    bad = api.put("/v1/settings", json={**settings, "locale": "xx-notalocale"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/locale"


def _above_cover(api):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30")
    invoice(api, "I3", "50000.00", "2026-03-15", "2026-05-14")


def test_acknowledge_and_resolve_keep_the_note_and_who(api):
    _above_cover(api)
    alert = next(a for a in ok(api.get("/v1/alerts"))["items"] if a["type"] == "exposure_above_cover")
    clerk = ok(api.post("/v1/api-keys", json={"name": "Marie (credit desk)", "scope": "ingest"}), 201)["key"]
    as_clerk = {"Authorization": f"Bearer {clerk}"}
    acked = ok(api.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "  Buyer pays on Friday  "},
                        headers=as_clerk))
    assert acked["state"] == "acknowledged" and acked["acknowledged_at"] is not None
    assert (acked["acknowledged_by"], acked["acknowledged_note"], acked["note"]) == (
        "Marie (credit desk)", "Buyer pays on Friday", "Buyer pays on Friday")
    resolved = ok(api.post(f"/v1/alerts/{alert['id']}/resolve", json={"note": "Paid"}))
    assert (resolved["state"], resolved["resolution"]) == ("resolved", "manual")
    assert (resolved["resolved_by"], resolved["resolved_note"], resolved["note"]) == (
        "admin (created with the tenant)", "Paid", "Paid")
    assert resolved["acknowledged_note"] == "Buyer pays on Friday"
    assert ok(api.get(f"/v1/alerts/{alert['id']}"))["resolved_by"] == "admin (created with the tenant)"
    other = next(a for a in ok(api.get("/v1/alerts", params={"state": "open"}))["items"])
    bare = ok(api.post(f"/v1/alerts/{other['id']}/acknowledge"))  # the body stays optional
    assert bare["acknowledged_note"] is None and bare["acknowledged_by"] == "admin (created with the tenant)"
    too_long = api.post(f"/v1/alerts/{other['id']}/resolve", json={"note": "x" * 2001})
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["pointer"] == "/note"
    unknown = api.post(f"/v1/alerts/{other['id']}/resolve", json={"comment": "x"})
    assert unknown.status_code == 422


def test_a_read_key_cannot_acknowledge(api):
    _above_cover(api)
    alert = ok(api.get("/v1/alerts"))["items"][0]
    reader = ok(api.post("/v1/api-keys", json={"name": "wallboard", "scope": "read"}), 201)["key"]
    r = api.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "x"},
                 headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    assert ok(api.get(f"/v1/alerts/{alert['id']}"))["state"] == "open"


def test_history_sums_the_snapshots_per_day_in_the_tenants_currency(api, tenant, app, database):
    domain_policies(api)
    buyer(api, "B1")
    buyer(api, "B2", country="US")
    limit(api, "100000.00", "2026-01-01")
    ok(api.put("/v1/fx-rates", json={"rates": [{"date": "2026-03-01", "base": "EUR", "quote": "USD",
                                                "rate": "1.25"}]}))
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    ok(api.put("/v1/invoices/U1", json={"buyer_ref": "B2", "currency": "USD", "amount": "12500.00",
                                       "issue_date": "2026-03-01", "due_date": "2026-04-30"}), 201)
    assert ok(api.get("/v1/exposure/history")) == []
    daily_scan(database, app.state.settings, force=True, tenant_ids=[tenant.id])
    with database.session() as session, session.begin():  # an older day, as the scan kept it
        b1 = session.execute(ExposureSnapshot.__table__.select().where(
            ExposureSnapshot.tenant_id == tenant.id)).first()
        session.execute(ExposureSnapshot.__table__.insert().values(
            tenant_id=tenant.id, buyer_id=b1.buyer_id, day=date(2026, 3, 19), currency="EUR", outstanding=70000,
            overdue=0, covered_primary=70000, covered_top_up=0, uncovered=0, indemnifiable=63000, status="ok"))
        session.execute(ExposureSnapshot.__table__.insert().values(
            tenant_id=tenant.id, buyer_id=b1.buyer_id, day=date(2026, 1, 1), currency="EUR", outstanding=1,
            overdue=0, covered_primary=1, covered_top_up=0, uncovered=0, indemnifiable=1, status="ok"))
    first = api.get("/v1/exposure/history?days=30")
    days = ok(first)
    assert [d["day"] for d in days] == ["2026-03-19", "2026-03-20"]
    assert days[0]["outstanding"] == "70000.00" and days[0]["buyers"] == 1
    today = days[1]
    assert today["buyers"] == 2 and today["currency"] == "EUR" and today["errors"] == []
    assert today["outstanding"] == ok(api.get("/v1/exposure"))["outstanding"] == "90000.00"  # 12,500 USD at 1.25
    assert api.get("/v1/exposure/history?days=30", headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert api.get("/v1/exposure/history?days=0").status_code == 422


def test_claim_deadlines_within_the_window_soonest_first_until_claimed(api, clock):
    domain_policies(api)
    buyer(api, "B1")
    buyer(api, "B2", country="DE")
    limit(api, "100000.00", "2026-01-01")
    limit(api, "100000.00", "2026-01-01", buyer_ref="B2")
    invoice(api, "SOON", "1000.00", "2026-01-02", "2026-02-01")  # deadline 2026-04-02
    invoice(api, "LATER", "2000.00", "2026-01-20", "2026-02-15", buyer_ref="B2")  # 2026-04-16
    invoice(api, "FAR", "3000.00", "2026-02-01", "2026-03-15")  # 2026-05-14: beyond 30 days
    invoice(api, "PAST", "4000.00", "2025-12-01", "2026-01-10")  # 2026-03-11: already passed
    rows = ok(api.get("/v1/claim-deadlines"))["items"]
    assert [(r["invoice_ref"], r["claim_deadline"], r["days_left"]) for r in rows] == [
        ("SOON", "2026-04-02", 13), ("LATER", "2026-04-16", 27)]
    assert rows[0]["open_balance"] == "1000.00" and rows[0]["covered"] == "1000.00" and rows[0]["buyer_ref"] == "B1"
    soon_first = ok(api.get("/v1/claim-deadlines?within_days=60"))["items"]
    assert [r["invoice_ref"] for r in soon_first] == ["SOON", "LATER", "FAR"]
    ok(api.post("/v1/claims", json={"buyer_ref": "B1", "invoice_refs": ["SOON"], "filed_on": "2026-03-20"}), 201)
    assert [r["invoice_ref"] for r in ok(api.get("/v1/claim-deadlines"))["items"]] == ["LATER"]
    clock.set(date(2026, 3, 20) + timedelta(days=28))
    assert [r["invoice_ref"] for r in ok(api.get("/v1/claim-deadlines"))["items"]] == ["FAR"]  # LATER's has passed


def test_console_and_docs_are_served_without_a_cdn(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for path in ("/docs", "/redoc"):
            html = client.get(path).text
            assert "cdn" not in html.lower() and "https://" not in html.replace("https://fastapi", ""), path
        for asset in ("/console/console.js", "/console/console.css", "/console/vendor/chartjs/chart.umd.min.js",
                      "/console/docs-assets/swagger-ui-bundle.js", "/console/docs-assets/redoc.standalone.js"):
            assert client.get(asset).status_code == 200, asset
        assert client.get("/v1/exposure").status_code == 401
