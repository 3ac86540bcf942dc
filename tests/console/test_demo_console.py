"""The console on the demo book, as a new user meets it after `make run`: signs in with the printed key, sees
the figures the API gives, and each view is photographed into docs/screenshots/ (the README shows them).

"Today" is pinned so that the screenshots committed with the code are the ones this test takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.console.conftest import SCREENSHOTS, Recorder, Server, parse_money, start_server

PINNED_TODAY = "2026-11-20"
VIEWS = (("portfolio", "#/"), ("buyers", "#/buyers"), ("countries", "#/countries"), ("alerts", "#/alerts"),
         ("deadlines", "#/deadlines"), ("webhooks", "#/webhooks"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    srv = start_server(["app.cli", "serve", "--demo", "--port", "{port}"],
                       {"COVERWATCH_DATABASE_URL": f"sqlite:///{db}", "COVERWATCH_TODAY": PINNED_TODAY,
                        "COVERWATCH_SCHEDULER_ENABLED": "false"},
                       wait_for=r"Admin API key: (\S+)")
    yield srv
    srv.stop()


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)


def test_the_demo_console_shows_the_apis_figures_and_is_photographed(browser, demo: Server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    recorder = Recorder()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    recorder.attach(context)
    page = context.new_page()
    try:
        page.goto(demo.url + "/")
        page.fill("#api-key", demo.key)
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("[data-testid=portfolio-figures]")
        page.wait_for_selector("#pf-history canvas")
        with demo.client() as api:
            portfolio = api.get("/v1/exposure").json()
            largest = api.get("/v1/exposure/buyers?sort=-uncovered&limit=1").json()["items"][0]
        for f in ("outstanding", "covered_primary", "covered_top_up", "uncovered", "indemnifiable"):
            shown = page.inner_text(f"[data-testid=portfolio-figures] [data-field={f}] .value")
            assert parse_money(shown) == Decimal(portfolio[f]), f
        for name, route in VIEWS:
            page.goto(f"{demo.url}/{route}")
            page.wait_for_selector("#view h1")
            _settle(page)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=name == "portfolio")
        page.goto(f"{demo.url}/#/buyers/{largest['buyer_ref']}")
        page.wait_for_selector("[data-testid=buyer-figures]")
        _settle(page)
        shown = page.inner_text("[data-testid=buyer-figures] [data-field=uncovered] .value")
        assert parse_money(shown) == Decimal(largest["uncovered"])
        page.screenshot(path=str(SCREENSHOTS / "buyer.png"), full_page=True)
        phone = context.new_page()  # a new tab: sessionStorage is per tab, so it signs in again
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(demo.url + "/")
        phone.fill("#api-key", demo.key)
        phone.click("#sign-in-form button[type=submit]")
        phone.wait_for_selector("[data-testid=portfolio-figures]")
        _settle(phone)
        phone.screenshot(path=str(SCREENSHOTS / "portfolio-phone.png"))
        recorder.assert_local_only()
    finally:
        context.close()
    assert all((SCREENSHOTS / f"{n}.png").stat().st_size > 10_000 for n, _ in VIEWS)
    assert Path(SCREENSHOTS / "buyer.png").exists()
