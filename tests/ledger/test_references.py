"""References as ERPs write them: any printable Unicode up to 200 characters, addressed percent-encoded;
invoices and credit notes numbered apart."""

from urllib.parse import quote

from tests.helpers import buyer, exposure, ok, payment


def _path(ref: str) -> str:
    return quote(ref, safe="")


def _doc(buyer_ref: str = "B1", amount: str = "100.00", **kw):
    return {"buyer_ref": buyer_ref, "currency": "EUR", "amount": amount, "issue_date": "2026-01-10",
            "due_date": "2026-03-10"} | kw


def test_refs_with_spaces_slashes_and_unicode_round_trip(api):
    buyer_ref = "Société Générale / Agence 12"
    ok(api.put(f"/v1/buyers/{_path(buyer_ref)}", json={"name": "SG", "country": "FR"}))
    created = api.put(f"/v1/invoices/{_path('FA 2026/001')}", json=_doc(buyer_ref))
    assert created.status_code == 201 and created.json()["invoice_ref"] == "FA 2026/001"
    ok(api.put(f"/v1/invoices/{_path('018304 / 28865')}", json=_doc(buyer_ref, "40.00")))
    paid = payment(api, _path("VIR 2026/03 n°7"), "40.00", buyer_ref=buyer_ref,
                   allocations=[{"invoice_ref": "018304 / 28865", "amount": "40.00"}])
    assert paid["applied"] == [{"invoice_ref": "018304 / 28865", "amount": "40.00", "explicit": True}]

    got = ok(api.get(f"/v1/invoices/{_path('FA 2026/001')}"))
    assert (got["invoice_ref"], got["buyer_ref"], got["open_balance"]) == ("FA 2026/001", buyer_ref, "100.00")
    assert ok(api.get(f"/v1/invoices/{_path('018304 / 28865')}"))["status"] == "paid"
    assert ok(api.get(f"/v1/payments/{_path('VIR 2026/03 n°7')}"))["payment_ref"] == "VIR 2026/03 n°7"
    assert ok(api.get(f"/v1/buyers/{_path(buyer_ref)}"))["buyer_ref"] == buyer_ref
    assert ok(api.get(f"/v1/buyers/{_path(buyer_ref)}/limits"))["buyer_ref"] == buyer_ref
    assert exposure(api, _path(buyer_ref))["outstanding"] == "100.00"
    listed = ok(api.get("/v1/invoices", params={"buyer_ref": buyer_ref}))["items"]
    assert [i["invoice_ref"] for i in listed] == ["018304 / 28865", "FA 2026/001"]
    # A slash in a ref never reaches another route: "FA 2026" alone is no invoice.
    missing = api.get(f"/v1/invoices/{_path('FA 2026/999')}")
    assert missing.status_code == 404 and missing.json()["instance"] == "/v1/invoices/FA 2026%2F999"
    assert missing.json()["detail"] == "No invoice 'FA 2026/999'."
    assert api.get(f"/v1/invoices/{_path('FA 2026')}").status_code == 404
    assert api.get("/v1/invoices/FA%202026/001").status_code == 404


def test_a_200_character_ref_is_stored_and_201_is_refused(api):
    buyer(api, "B1")
    long_ref = "N° " + "x" * 197
    assert len(long_ref) == 200
    assert ok(api.put(f"/v1/invoices/{_path(long_ref)}", json=_doc()))["invoice_ref"] == long_ref
    r = api.put(f"/v1/invoices/{_path(long_ref + 'y')}", json=_doc())
    assert r.status_code == 422
    assert "at most 200 characters" in r.json()["errors"][0]["detail"]


def test_what_is_still_refused_gets_a_clear_problem(api):
    buyer(api, "B1")
    for bad, why in [
        (" FA-1", "whitespace"),
        ("FA-1 ", "whitespace"),
        ("FA\t1", "U+0009"),
        ("FA\u200b1", "U+200B"),
        ("FA\x001", "U+0001"),  # a NUL in a path is refused like any control character
    ]:
        r = api.put(f"/v1/invoices/{_path(bad)}", json=_doc())
        assert r.status_code == 422, bad
        assert r.headers["content-type"] == "application/problem+json"
        assert why in r.json()["errors"][0]["detail"], r.json()
    r = api.put("/v1/invoices/I1", json=_doc(buyer_ref="B1 "))
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/buyer_ref"
    batch = ok(api.post("/v1/invoices/batch", json={"items": [_doc() | {"invoice_ref": "ok ref/1"},
                                                              _doc() | {"invoice_ref": ""}]}))
    assert [i["outcome"] for i in batch["items"]] == ["created", "rejected"]
    assert batch["items"][1]["problem"]["errors"][0]["pointer"] == "/invoice_ref"


def test_batch_route_still_wins_over_a_ref(api):
    buyer(api, "B1")
    r = api.post("/v1/invoices/batch", json={"items": [_doc() | {"invoice_ref": "A/1"}]})
    assert r.status_code == 200 and r.json()["created"] == 1
    assert ok(api.get(f"/v1/invoices/{_path('A/1')}"))["invoice_ref"] == "A/1"
    # "batch" as an invoice number is addressable too, with PUT and GET.
    ok(api.put("/v1/invoices/batch", json=_doc()))
    assert ok(api.get("/v1/invoices/batch"))["invoice_ref"] == "batch"


def test_an_invoice_and_a_credit_note_may_share_a_number(api):
    buyer(api, "B1")
    ok(api.put("/v1/invoices/2026-17", json=_doc(amount="100.00")))
    credit = api.put("/v1/invoices/2026-17", json=_doc(amount="30.00", kind="credit_note", applies_to="2026-17"))
    assert credit.status_code == 201 and credit.json()["kind"] == "credit_note"

    invoice = ok(api.get("/v1/invoices/2026-17", params={"kind": "invoice"}))
    assert (invoice["kind"], invoice["amount"], invoice["open_balance"]) == ("invoice", "100.00", "70.00")
    note = ok(api.get("/v1/invoices/2026-17", params={"kind": "credit_note"}))
    assert (note["kind"], note["amount"], note["open_balance"]) == ("credit_note", "30.00", "0.00")
    assert ok(api.get("/v1/credit-notes/2026-17")) == note
    ambiguous = api.get("/v1/invoices/2026-17")
    assert ambiguous.status_code == 409 and "?kind=" in ambiguous.json()["detail"]

    # Each one is corrected on its own; payments and claims address invoices only.
    ok(api.put("/v1/invoices/2026-17", json=_doc(amount="40.00", kind="credit_note", applies_to="2026-17")))
    assert ok(api.get("/v1/invoices/2026-17", params={"kind": "invoice"}))["open_balance"] == "60.00"
    payment(api, "PAY-1", "60.00", allocations=[{"invoice_ref": "2026-17", "amount": "60.00"}])
    assert ok(api.get("/v1/invoices/2026-17", params={"kind": "invoice"}))["open_balance"] == "0.00"

    # Listing walks both, page by page, without losing one to the shared number.
    ok(api.put("/v1/invoices/2026-18", json=_doc()))
    seen = []
    cursor = None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = ok(api.get("/v1/invoices", params=params))
        seen += [(i["invoice_ref"], i["kind"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [("2026-17", "credit_note"), ("2026-17", "invoice"), ("2026-18", "invoice")]
    assert api.get("/v1/credit-notes/2026-18").status_code == 404
