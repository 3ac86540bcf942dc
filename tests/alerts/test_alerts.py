"""Alerts raised by the change that causes them, one per condition and subject, resolved when it clears."""

from datetime import date

from app.scheduling.jobs import daily_scan
from tests.helpers import PRIMARY, buyer, domain_policies, exposure, invoice, limit, ok, payment


def alerts(api, **params):
    return ok(api.get("/v1/alerts", params=params))["items"]


def open_types(api, **params):
    return sorted((a["type"], a["subject"]) for a in alerts(api, **params) if a["state"] != "resolved")


def _endpoint(api, receiver, **extra):
    return ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url} | extra), 201)


def test_over_cover_opens_a_signed_alert_and_a_payment_resolves_it(api, receiver, dispatch):
    secret = _endpoint(api, receiver)["secret"]
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "80000.00", "2026-02-10", "2026-04-11")
    assert open_types(api) == []
    invoice(api, "I2", "90000.00", "2026-03-01", "2026-04-30")
    assert open_types(api) == [("exposure_above_primary", "B1")]
    invoice(api, "I3", "50000.00", "2026-03-15", "2026-05-14")
    assert open_types(api) == [("exposure_above_cover", "B1"), ("exposure_above_primary", "B1"),
                               ("utilisation_high", "B1")]
    # Another ingest while the conditions hold raises nothing twice.
    invoice(api, "I4", "10.00", "2026-03-16", "2026-05-15")
    assert len(alerts(api)) == 3

    dispatch()
    events = receiver.verified(secret)  # every delivery verifies with standardwebhooks
    opened = [e for e in events if e["type"] == "alert.opened"]
    assert sorted(e["data"]["type"] for e in opened) == ["exposure_above_cover", "exposure_above_primary",
                                                         "utilisation_high"]
    above = next(e for e in opened if e["data"]["type"] == "exposure_above_cover")
    assert above["data"]["details"]["uncovered"] == "20000.00"  # as it stood when the alert opened
    assert above["data"]["buyer_ref"] == "B1" and above["data"]["state"] == "open"

    payment(api, "PAY1", "130000.00")  # oldest due first: I1, then 50,000 of I2: 90,010 left, under the primary
    assert open_types(api) == []
    resolved = {a["type"]: a for a in alerts(api, state="resolved")}
    assert resolved["exposure_above_cover"]["resolution"] == "cleared"
    dispatch()
    assert sorted(e["data"]["type"] for e in receiver.verified(secret) if e["type"] == "alert.resolved") == [
        "exposure_above_cover", "exposure_above_primary", "utilisation_high"]
    assert len({r.id for r in receiver.received}) == len(receiver.received) == 6


def test_claim_deadline_near_and_missed_on_the_right_days(api, tenant, clock, app, database, receiver, dispatch):
    secret = _endpoint(api, receiver, event_types=["alert.opened"])["secret"]
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "10000.00", "2026-02-01", "2026-03-31")  # claim deadline 30 May

    def scan_on(day):
        clock.set(day)
        daily_scan(database, app.state.settings, tenant_ids=[tenant.id])
        return open_types(api)

    assert scan_on(date(2026, 5, 15)) == []
    assert scan_on(date(2026, 5, 16)) == [("claim_deadline_near", "I1/14d")]
    assert scan_on(date(2026, 5, 22)) == [("claim_deadline_near", "I1/14d")]
    assert scan_on(date(2026, 5, 23)) == [("claim_deadline_near", "I1/7d")]
    assert scan_on(date(2026, 5, 29)) == [("claim_deadline_near", "I1/1d")]
    assert scan_on(date(2026, 5, 30)) == [("claim_deadline_near", "I1/1d")]
    missed = scan_on(date(2026, 5, 31))
    assert ("claim_deadline_missed", "I1") in missed and ("claim_deadline_near", "I1/1d") not in missed
    assert exposure(api)["invoices"][0]["reason"] == "claim_deadline_passed"
    opened_on = {(a["type"], a["subject"]): a["opened_on"] for a in alerts(api)}
    assert opened_on[("claim_deadline_near", "I1/14d")] == "2026-05-16"
    assert opened_on[("claim_deadline_near", "I1/7d")] == "2026-05-23"
    assert opened_on[("claim_deadline_near", "I1/1d")] == "2026-05-29"
    assert opened_on[("claim_deadline_missed", "I1")] == "2026-05-31"
    # The missed alert stays, even once paid.
    payment(api, "P1", "10000.00", received_on="2026-06-01")
    assert ("claim_deadline_missed", "I1") in open_types(api)
    dispatch()
    # Deliveries may arrive in any order; each event carries the time it was raised.
    near = sorted((e["timestamp"], e["data"]["subject"]) for e in receiver.verified(secret)
                  if e["data"]["type"] == "claim_deadline_near")
    assert [subject for _, subject in near] == ["I1/14d", "I1/7d", "I1/1d"]


def test_a_claim_stops_deadline_alerts_and_shows_the_expected_indemnity(api, clock, receiver, dispatch):
    secret = _endpoint(api, receiver, event_types=["claim.filed"])["secret"]
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "50000.00", "2026-01-01")
    clock.set(date(2026, 5, 20))
    invoice(api, "I1", "40000.00", "2026-02-01", "2026-03-31")  # deadline 30 May: within 14 days
    invoice(api, "I2", "20000.00", "2026-02-05", "2026-04-05")  # primary 10,000 + Top Up 10,000
    assert ("claim_deadline_near", "I1/14d") in open_types(api)
    r = api.post("/v1/claims", json={"buyer_ref": "B1", "invoice_refs": ["I1", "I2"], "filed_on": "2026-05-20",
                                     "insurer_claim_ref": "AT-CL-77"})
    claim = ok(r, 201)
    assert (claim["declared"], claim["expected_indemnity"], claim["currency"]) == ("60000.00", "54000.00", "EUR")
    assert [(i["invoice_ref"], i["in_time"]) for i in claim["invoices"]] == [("I1", True), ("I2", True)]
    assert [a for a in open_types(api) if a[0] == "claim_deadline_near"] == []
    clock.set(date(2026, 6, 30))  # past both deadlines: claimed in time, the cover stays
    ok(api.put("/v1/buyers/B1", json={"name": "B1 SA", "country": "FR"}))
    e = exposure(api)
    assert e["uncovered"] == "0.00" and [i["claim_filed_on"] for i in e["invoices"]] == ["2026-05-20"] * 2
    assert [a for a in open_types(api) if a[0] == "claim_deadline_missed"] == []
    listed = ok(api.get("/v1/claims"))["items"]
    assert listed[0]["insurer_claim_ref"] == "AT-CL-77" and listed[0]["expected_indemnity"] == "54000.00"
    again = api.post("/v1/claims", json={"buyer_ref": "B1", "invoice_refs": ["I1"], "filed_on": "2026-05-21"})
    assert again.status_code == 409
    dispatch()
    [filed] = receiver.verified(secret)
    assert filed["type"] == "claim.filed" and filed["data"]["expected_indemnity"] == "54000.00"


def test_claim_problems(api):
    domain_policies(api)
    buyer(api, "B1")
    buyer(api, "B2")
    invoice(api, "I1", "100.00", "2026-02-01", "2026-03-31")
    invoice(api, "X1", "100.00", "2026-02-01", "2026-03-31", buyer_ref="B2")
    for body, pointer in [
        ({"buyer_ref": "B1", "invoice_refs": ["NOPE"], "filed_on": "2026-03-01"}, "/invoice_refs/0"),
        ({"buyer_ref": "B1", "invoice_refs": ["I1", "X1"], "filed_on": "2026-03-01"}, "/invoice_refs/1"),
        ({"buyer_ref": "B1", "invoice_refs": ["I1"], "filed_on": "2027-01-01"}, "/filed_on"),
        ({"buyer_ref": "B1", "invoice_refs": [], "filed_on": "2026-03-01"}, "/invoice_refs"),
        ({"buyer_ref": "NOPE", "invoice_refs": ["I1"], "filed_on": "2026-03-01"}, "/buyer_ref"),
    ]:
        r = api.post("/v1/claims", json=body)
        assert r.status_code == 422, body
        assert r.json()["errors"][0]["pointer"] == pointer
    assert ok(api.get("/v1/claims"))["items"] == []


def test_acknowledge_resolve_and_reraise(api):
    domain_policies(api)
    buyer(api, "B1")
    invoice(api, "I1", "100.00", "2026-02-01", "2026-03-31")
    [a] = alerts(api)
    assert (a["type"], a["state"]) == ("no_cover", "open")
    acked = ok(api.post(f"/v1/alerts/{a['id']}/acknowledge"))
    assert acked["state"] == "acknowledged" and acked["acknowledged_at"]
    # Still one alert for the condition while it is acknowledged.
    invoice(api, "I2", "100.00", "2026-02-02", "2026-03-31")
    assert len(alerts(api)) == 1
    resolved = ok(api.post(f"/v1/alerts/{a['id']}/resolve"))
    assert (resolved["state"], resolved["resolution"]) == ("resolved", "manual")
    assert api.post(f"/v1/alerts/{a['id']}/acknowledge").status_code == 409
    # The condition still holds: the next change raises it again, as a new alert.
    invoice(api, "I3", "100.00", "2026-02-03", "2026-03-31")
    assert [(x["type"], x["state"]) for x in alerts(api)] == [("no_cover", "open"), ("no_cover", "resolved")]
    limit(api, "1000.00", "2026-01-01")
    assert open_types(api) == []
    assert api.get("/v1/alerts/999999999").status_code == 404


def test_utilisation_threshold_setting_and_country_limits(api):
    domain_policies(api)
    buyer(api, "B1")
    limit(api, "100000.00", "2026-01-01")
    invoice(api, "I1", "150000.00", "2026-02-01", "2026-03-31")  # utilisation 0.75
    assert open_types(api) == [("exposure_above_primary", "B1")]
    got = ok(api.put("/v1/settings", json={"utilisation_threshold": "0.70"}))
    assert got["utilisation_threshold"] == "0.7" and got["claim_lead_days"] == [14, 7, 1]
    assert ("utilisation_high", "B1") in open_types(api)
    assert api.put("/v1/settings", json={"timezone": "Mars/Olympus"}).json()["errors"][0]["pointer"] == "/timezone"
    assert api.put("/v1/settings", json={"utilisation_threshold": 0.7}).status_code == 422

    ok(api.put("/v1/country-limits/FR", json={"amount": "100000.00", "currency": "EUR"}))
    assert ("country_above_limit", "FR") in open_types(api)
    [country_alert] = alerts(api, type="country_above_limit")
    assert country_alert["details"]["headroom"] == "-50000.00"
    ok(api.put("/v1/country-limits/FR", json={"amount": "200000.00", "currency": "EUR"}))
    assert ("country_above_limit", "FR") not in open_types(api)


def test_stop_of_cover_limit_expiring_and_limit_reduced(api, clock):
    domain_policies(api, top_up=False, primary=PRIMARY | {"max_extension_days": 30, "claim_deadline_days": 120})
    buyer(api, "B1")
    limit(api, "50000.00", "2026-01-01", expires_on="2026-04-10")
    invoice(api, "OLD", "1000.00", "2026-01-05", "2026-02-04")  # + 30 days: 6 March, passed on 20 March
    assert ("stop_of_cover", "B1") in open_types(api)
    assert ("limit_expiring", "B1/P") in open_types(api)  # expires within 30 days
    payment(api, "P1", "1000.00")
    assert ("stop_of_cover", "B1") not in open_types(api)
    limit(api, "50000.00", "2026-03-20", expires_on="2026-12-31")  # renewed
    assert ("limit_expiring", "B1/P") not in open_types(api)

    invoice(api, "BIG", "40000.00", "2026-03-01", "2026-04-30")
    limit(api, "10000.00", "2026-03-20", status="reduced")
    # The decision governs deliveries from its date: BIG (1 March) keeps its cover.
    assert ("limit_reduced_below_exposure", "B1") not in open_types(api)
    limit(api, "10000.00", "2026-02-01", status="reduced")
    assert ("limit_reduced_below_exposure", "B1") in open_types(api)
    payment(api, "P2", "30000.00")
    assert ("limit_reduced_below_exposure", "B1") not in open_types(api)


def test_alerts_are_isolated(make_tenant):
    a, b = make_tenant(), make_tenant()
    buyer(a.client, "B1")
    invoice(a.client, "I1", "100.00", "2026-02-01", "2026-03-31")
    [alert] = alerts(a.client)
    assert b.client.get(f"/v1/alerts/{alert['id']}").status_code == 404
    assert b.client.post(f"/v1/alerts/{alert['id']}/acknowledge").status_code == 404
    assert alerts(b.client) == []
