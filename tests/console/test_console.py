"""The console in a real browser, against the API on the same server: what the page shows is what the API says.

A known book is posted through the API (worked example A for LECLERC, a reduction for MUELLER, a claim deadline
near for GARCIA, no cover for ROSSI, France above its country limit), then the page is read figure by figure in
the tenant's fr-FR formatting and parsed back to exact decimals.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.db import Database
from app.migrate import upgrade
from app.tenants.service import create_tenant
from tests.console.conftest import Recorder, Server, parse_money, postgres_url, start_server
from tests.helpers import TEST_SECRET_KEY, free_port

TODAY = "2026-03-20"
FIGURES = ("outstanding", "covered_primary", "covered_top_up", "uncovered", "indemnifiable")


def _seed(server: Server) -> None:
    with server.client() as api:
        def ok(r):  # type: ignore[no-untyped-def]
            assert r.status_code in (200, 201), r.text
            return r.json()

        policy = {"insurer": "Allianz Trade", "currency": "EUR", "starts_on": "2026-01-01", "ends_on": "2026-12-31",
                  "indemnity_rate": "0.90"}
        ok(api.put("/v1/policies/WT-1", json={**policy, "kind": "whole_turnover", "max_credit_period_days": 120,
                                              "claim_deadline_days": 60}))
        ok(api.put("/v1/policies/TU-1", json={
            **policy, "insurer": "Coface", "kind": "top_up", "mode": "complement", "ratio": "1.0",
            "primary_policy_ref": "WT-1", "countries": ["FR", "DE"]}))
        for ref, name, country in (("LECLERC", "Leclerc SA", "FR"), ("MUELLER", "Müller GmbH", "DE"),
                                   ("GARCIA", "García SL", "ES"), ("ROSSI", "Rossi SpA", "IT")):
            ok(api.put(f"/v1/buyers/{ref}", json={"name": name, "country": country}))
        for ref, amount, status, start in (("LECLERC", "100000.00", "granted", "2026-01-01"),
                                           ("MUELLER", "50000.00", "granted", "2026-01-01"),
                                           ("MUELLER", "30000.00", "reduced", "2026-03-01"),
                                           ("GARCIA", "20000.00", "granted", "2026-01-01")):
            ok(api.post("/v1/policies/WT-1/limits", json={"buyer_ref": ref, "amount": amount, "status": status,
                                                          "effective_from": start}))
        for ref, buyer, amount, issued, due in (
            ("F1", "LECLERC", "80000.00", "2026-02-10", "2026-04-11"),
            ("F2", "LECLERC", "90000.00", "2026-03-01", "2026-04-30"),
            ("M1", "MUELLER", "40000.00", "2026-02-15", "2026-04-15"),
            ("M2", "MUELLER", "45000.00", "2026-03-10", "2026-05-09"),
            ("G1", "GARCIA", "8000.00", "2026-01-02", "2026-02-01"),
            ("R1", "ROSSI", "12000.00", "2026-03-05", "2026-05-04"),
        ):
            ok(api.put(f"/v1/invoices/{ref}", json={"buyer_ref": buyer, "currency": "EUR", "amount": amount,
                                                    "issue_date": issued, "due_date": due}))
        ok(api.put("/v1/country-limits/FR", json={"amount": "150000.00", "currency": "EUR"}))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'console.db'}"
    else:
        url = postgres_url()
    upgrade(url)
    db = Database(url)
    with db.session() as session, session.begin():
        _, key = create_tenant(session, "Console Test SAS", "EUR")
    db.dispose()
    srv = start_server(["uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1", "--port", "{port}",
                        "--log-level", "warning"],
                       {"COVERWATCH_DATABASE_URL": url, "COVERWATCH_TODAY": TODAY,
                        "COVERWATCH_SCHEDULER_ENABLED": "false",
                        "COVERWATCH_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "COVERWATCH_SECRET_KEY": TEST_SECRET_KEY})
    srv.key, srv.database_url = key, url
    _seed(srv)
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, server: Server, tmp_path: Path):  # type: ignore[no-untyped-def]
    recorder = Recorder()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    recorder.attach(context)
    context.add_init_script("sessionStorage.setItem('coverwatch.poll_ms', '400')")
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.recorder = recorder
    yield p
    try:
        recorder.assert_local_only()
        assert errors == [], errors
    finally:
        context.close()


def sign_in(page, server: Server) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/")
    page.fill("#api-key", server.key)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("[data-testid=portfolio-figures]")


def shown(page, selector: str) -> Decimal:  # type: ignore[no-untyped-def]
    return parse_money(page.locator(selector).inner_text())


def test_sign_in_refuses_a_wrong_key_and_keeps_the_key_out_of_urls_and_cookies(page, server: Server):
    page.goto(server.url + "/")
    page.fill("#api-key", "cw_not-a-key")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#sign-in-error').textContent.length > 0")
    assert "Unknown or revoked" in page.inner_text("#sign-in-error")
    sign_in(page, server)
    assert page.evaluate("sessionStorage.getItem('coverwatch.key')") == server.key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert all(server.key not in url for url in page.recorder.requests)
    page.click("#sign-out")
    assert page.evaluate("sessionStorage.getItem('coverwatch.key')") is None
    assert page.is_visible("#sign-in")


def test_portfolio_figures_are_the_apis(page, server: Server):
    sign_in(page, server)
    with server.client() as api:
        portfolio = api.get("/v1/exposure").json()
    for f in FIGURES:
        assert shown(page, f"[data-testid=portfolio-figures] [data-field={f}] .value") == Decimal(portfolio[f]), f
    assert page.inner_text("[data-testid=portfolio-figures] [data-field=buyers] .value") == str(portfolio["buyers"])
    for status, count in portfolio["buyers_by_status"].items():
        assert page.inner_text(f"#pf-status tr[data-status={status}] td[data-col=count]") == str(count)
    for bucket in ("not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90"):
        assert shown(page, f"#pf-aging tr[data-bucket={bucket}] td[data-col=amount]") == Decimal(portfolio[bucket])
    assert portfolio["buyers_by_status"] == {
        "ok": 1, "above_primary": 1, "above_cover": 1, "no_cover": 1, "incomplete": 0}
    page.wait_for_selector("#pf-top canvas")


def test_a_buyer_page_shows_the_apis_figures_invoices_reasons_and_decisions(page, server: Server):
    sign_in(page, server)
    page.goto(server.url + "/#/buyers/MUELLER")
    page.wait_for_selector("[data-testid=buyer-figures]")
    with server.client() as api:
        detail = api.get("/v1/exposure/buyers/MUELLER").json()
        limits = api.get("/v1/buyers/MUELLER/limits").json()
    for f in (*FIGURES, "primary_limit", "top_up_limit"):
        assert shown(page, f"[data-testid=buyer-figures] [data-field={f}] .value") == Decimal(detail[f]), f
    assert page.get_attribute("#b-head .badge", "data-code") == detail["status"] == "above_cover"
    page.wait_for_selector("#b-invoices tr[data-invoice]")
    for inv in detail["invoices"]:
        row = f"#b-invoices tr[data-invoice='{inv['invoice_ref']}']"
        for f in ("open_balance", "covered_primary", "covered_top_up", "uncovered"):
            assert shown(page, f"{row} td[data-col={f}]") == Decimal(inv[f]), (inv["invoice_ref"], f)
        code = page.locator(f"{row} td[data-col=reason] [data-code]")
        assert (code.get_attribute("data-code") if code.count() else None) == inv["reason"]
    assert page.locator("#b-timeline li[data-decision]").count() == len(limits["decisions"]) == 2
    assert "reduced" in page.inner_text("#b-timeline")


def test_a_country_row_is_the_apis(page, server: Server):
    sign_in(page, server)
    page.goto(server.url + "/#/countries")
    page.wait_for_selector("#countries-table tr[data-country=FR]")
    with server.client() as api:
        countries = {c["country"]: c for c in api.get("/v1/exposure/countries").json()}
    fr = countries["FR"]
    for f in ("outstanding", "covered_primary", "covered_top_up", "uncovered", "indemnifiable", "country_limit",
              "headroom"):
        assert shown(page, f"tr[data-country=FR] td[data-col={f}]") == Decimal(fr[f]), f
    assert fr["above_limit"] is True
    assert "above" in (page.get_attribute("tr[data-country=FR]", "class") or "")
    assert page.locator("#countries-table tr[data-country]").count() == len(countries)


def test_an_alert_acknowledged_on_the_page_is_acknowledged_in_the_api(page, server: Server):
    sign_in(page, server)
    page.goto(server.url + "/#/alerts")
    card = page.locator("[data-alert-id][data-state=open]").first
    card.wait_for()
    alert_id = card.get_attribute("data-alert-id")
    card.locator("input[name=note]").fill("Called the buyer: paying Friday")
    card.locator("button[data-action=acknowledge]").click()
    page.wait_for_selector(f"[data-alert-id='{alert_id}'][data-state=acknowledged]")
    with server.client() as api:
        alert = api.get(f"/v1/alerts/{alert_id}").json()
    assert alert["state"] == "acknowledged"
    assert alert["acknowledged_note"] == alert["note"] == "Called the buyer: paying Friday"
    assert alert["acknowledged_by"] == "admin (created with the tenant)"
    record = page.inner_text(f"[data-alert-id='{alert_id}'] [data-field=acknowledged]")
    assert "Called the buyer: paying Friday" in record


def test_a_credit_check_on_the_page_answers_as_the_api(page, server: Server):
    sign_in(page, server)
    page.goto(server.url + "/#/buyers/LECLERC")
    page.wait_for_selector("[data-testid=buyer-figures]")
    form = page.locator("[data-testid=credit-form]")
    form.wait_for()
    assert form.locator("input[name=currency]").input_value() == "EUR"
    form.locator("input[name=amount]").fill("45000.00")
    form.locator("input[name=terms]").fill("60")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#credit-answer').textContent.length > 0 && "
                           "!document.querySelector('#credit-answer').textContent.startsWith('Checking')")
    answer = page.locator("[data-testid=credit-answer]")
    assert answer.count() == 1, page.inner_text("#credit-answer")
    with server.client() as api:
        expected = api.post("/v1/credit-checks", json={"buyer_ref": "LECLERC", "currency": "EUR", "amount": "45000.00",
                                                       "delivery_date": TODAY, "payment_terms_days": 60}).json()
    assert answer.get_attribute("data-decision") == expected["decision"] == "partially_covered"
    for f in ("covered_primary", "covered_top_up", "uncovered", "headroom_primary", "headroom_top_up",
              "exposure_after"):
        assert parse_money(answer.locator(f"[data-field={f}]").inner_text()) == Decimal(expected[f]), f


def test_claim_deadlines_list_and_claim_filed(page, server: Server):
    sign_in(page, server)
    page.goto(server.url + "/#/deadlines")
    with server.client() as api:
        deadlines = api.get("/v1/claim-deadlines?within_days=30").json()["items"]
    assert [d["invoice_ref"] for d in deadlines] == ["G1"]
    assert deadlines[0]["claim_deadline"] == "2026-04-02"
    row = page.locator("#deadlines-table tr[data-invoice=G1]")
    row.wait_for()
    assert shown(page, "#deadlines-table tr[data-invoice=G1] td[data-col=open_balance]") == Decimal("8000.00")
    row.locator("button[data-action=claim]").click()
    page.wait_for_selector("#deadlines-table tr[data-invoice=G1]", state="detached")
    with server.client() as api:
        claims = api.get("/v1/claims?buyer_ref=GARCIA").json()["items"]
        assert [i["invoice_ref"] for c in claims for i in c["invoices"]] == ["G1"]
        assert api.get("/v1/claim-deadlines").json()["items"] == []


def test_the_page_follows_the_api_without_a_reload_and_polls_with_etags(page, server: Server):
    sign_in(page, server)
    page.evaluate("window.__sameDocument = 'yes'")
    outstanding = "[data-testid=portfolio-figures] [data-field=outstanding] .value"
    before = shown(page, outstanding)
    draws = page.get_attribute("#pf-figures", "data-draws")
    page.wait_for_timeout(1500)  # several polls with nothing new: 304s, nothing redrawn
    assert page.get_attribute("#pf-figures", "data-draws") == draws
    assert any(status == 304 and "/v1/exposure" in url for url, status in page.recorder.statuses)
    with server.client() as api:
        r = api.put("/v1/invoices/G2", json={"buyer_ref": "GARCIA", "currency": "EUR", "amount": "5000.00",
                                             "issue_date": "2026-03-18", "due_date": "2026-05-17"})
        assert r.status_code == 201, r.text
        after = Decimal(api.get("/v1/exposure").json()["outstanding"])
    assert after == before + Decimal("5000.00")
    page.wait_for_function(
        "(want) => document.querySelector('[data-testid=portfolio-figures] [data-field=outstanding] .value')"
        ".textContent.replace(/[^0-9,]/g, '').replace(',', '.') === want",
        arg=f"{after:.2f}", timeout=10_000)
    assert page.evaluate("window.__sameDocument") == "yes"
    assert shown(page, outstanding) == after


def test_buyers_table_filters_and_sorts_like_the_api(page, server: Server):
    sign_in(page, server)
    page.goto(server.url + "/#/buyers")
    page.wait_for_selector("[data-testid=buyers] tr[data-buyer]")
    page.select_option("select[name=status]", "above_cover")
    with server.client() as api:
        expected = [b["buyer_ref"] for b in api.get("/v1/exposure/buyers?status=above_cover").json()["items"]]
    page.wait_for_function("(n) => document.querySelectorAll('[data-testid=buyers] tr[data-buyer]').length === n",
                           arg=len(expected))
    rows = page.locator("[data-testid=buyers] tr[data-buyer]").all()
    assert [r.get_attribute("data-buyer") for r in rows] == expected
    page.select_option("select[name=status]", "")
    page.fill("input[name=q]", "gar")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=buyers] tr[data-buyer]').length === 1")
    page.fill("input[name=q]", "")
    page.click("th button:text('Outstanding')")
    page.click("th button:text('Outstanding')")  # descending
    with server.client() as api:
        by_outstanding = [b["buyer_ref"] for b in api.get("/v1/exposure/buyers?sort=-outstanding").json()["items"]]
    page.wait_for_function("() => document.querySelector('th[aria-sort=descending]') !== null")
    assert [r.get_attribute("data-buyer") for r in page.locator("[data-testid=buyers] tr[data-buyer]").all()] == \
        by_outstanding


def _delivery_status(server: Server, endpoint_id: str, delivery_id: int) -> str:
    with server.client() as api:
        items = api.get("/v1/webhook-deliveries", params={"endpoint_id": endpoint_id}).json()["items"]
    return next(d["status"] for d in items if d["id"] == delivery_id)


def test_a_failed_webhook_delivery_is_retried_from_the_page(page, server: Server):
    from app.webhooks.dispatcher import dispatch_pending

    with server.client() as api:
        endpoint = api.post("/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:{free_port()}/hook",
                                                           "event_types": ["ping"]})
        assert endpoint.status_code == 201, endpoint.text
        delivery = api.post(f"/v1/webhook-endpoints/{endpoint.json()['id']}/test").json()
    db = Database(server.database_url)
    try:  # one attempt at a port nobody listens on, with no retry window: the delivery fails
        dispatch_pending(db, Settings(database_url=server.database_url, webhook_allow_private=True,
                                      webhook_retry_window_hours=0, webhook_timeout_seconds=2))
    finally:
        db.dispose()
    assert _delivery_status(server, endpoint.json()["id"], delivery["id"]) == "failed"
    sign_in(page, server)
    page.goto(server.url + "/#/webhooks")
    row = page.locator(f"#wh-deliveries tr[data-delivery='{delivery['id']}']")
    row.wait_for()
    assert row.locator(".badge").get_attribute("data-code") == "failed"
    assert endpoint.json()["url"] in page.inner_text("#wh-endpoints")
    row.locator("button[data-action=retry]").click()
    page.wait_for_selector(f"#wh-deliveries tr[data-delivery='{delivery['id']}'] .badge[data-code=pending]")
    assert _delivery_status(server, endpoint.json()["id"], delivery["id"]) == "pending"


def test_keyboard_only_navigation(page, server: Server):
    sign_in(page, server)
    page.reload()  # signed in still (sessionStorage), focus at the top of the document
    page.wait_for_selector("[data-testid=portfolio-figures]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(2):  # Portfolio, then Buyers
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#/buyers"
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=buyers] tr[data-buyer]")
    page.focus("th button:text('Uncovered')")
    page.keyboard.press("Enter")
    page.wait_for_selector("th[aria-sort=ascending] button:text('Uncovered')")
    link = page.locator("[data-testid=buyers] tr[data-buyer] a").first
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=buyer-figures]")


def test_phone_width_has_no_horizontal_scroll(browser, server: Server):
    recorder = Recorder()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    recorder.attach(context)
    page = context.new_page()
    try:
        sign_in(page, server)
        for view in ("#/", "#/buyers", "#/buyers/LECLERC", "#/countries", "#/alerts", "#/deadlines"):
            page.goto(server.url + "/" + view)
            page.wait_for_timeout(300)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, view
        recorder.assert_local_only()
    finally:
        context.close()


def test_api_docs_render_offline(browser, server: Server):
    recorder = Recorder()
    context = browser.new_context()
    recorder.attach(context)
    page = context.new_page()
    try:
        page.goto(server.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
        assert "Coverwatch" in page.inner_text(".swagger-ui .info .title")
        page.goto(server.url + "/redoc")
        page.wait_for_selector("h1:has-text('Coverwatch')", timeout=20_000)
        recorder.assert_local_only()
    finally:
        context.close()
