from decimal import Decimal

from tests.helpers import buyer, exposure, invoice, ok, open_balance, payment


def _body(**kw):
    base = {"buyer_ref": "B1", "currency": "EUR", "amount": "100.00", "issue_date": "2026-01-10",
            "due_date": "2026-03-10"}
    return base | kw


def test_put_is_create_then_noop_then_recorded_correction(api):
    buyer(api, "B1")
    assert api.put("/v1/invoices/I1", json=_body()).status_code == 201
    same = api.put("/v1/invoices/I1", json=_body())
    assert same.status_code == 200 and same.json()["revision"] == 1
    corrected = ok(api.put("/v1/invoices/I1", json=_body(amount="150.00", due_date="2026-04-10")))
    assert corrected["revision"] == 2
    assert corrected["amount"] == "150.00" and corrected["open_balance"] == "150.00"
    # A postponed due date does not move the original one (the claim deadline runs from it).
    assert corrected["due_date"] == "2026-04-10" and corrected["original_due_date"] == "2026-03-10"
    [correction] = corrected["corrections"]
    assert correction["revision"] == 1
    assert (correction["previous"]["amount"], correction["previous"]["due_date"]) == ("100.00", "2026-03-10")


def test_correction_keeps_erp_allocations_and_refuses_going_below_them(api):
    buyer(api, "B1")
    invoice(api, "I1", "100.00", "2026-01-10", "2026-03-10")
    payment(api, "P1", "60.00", allocations=[{"invoice_ref": "I1", "amount": "60.00"}])
    r = api.put("/v1/invoices/I1", json=_body(amount="50.00"))
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/amount"
    assert open_balance(api, "I1") == Decimal("40.00")
    ok(api.put("/v1/invoices/I1", json=_body(amount="80.00")))
    assert open_balance(api, "I1") == Decimal("20.00")


def test_batch_partial_failure_keeps_the_good_items(api):
    buyer(api, "B1")
    items = [
        {"invoice_ref": "G1", **_body()},
        {"invoice_ref": "BAD1", **_body(currency="EURO")},
        {"invoice_ref": "G2", **_body(amount="20.00")},
        {"invoice_ref": "BAD2", **_body(buyer_ref="UNKNOWN")},
        "not an object",
        {"invoice_ref": "G1", **_body()},
        {"invoice_ref": "G2", **_body(amount="25.00")},
    ]
    out = ok(api.post("/v1/invoices/batch", json={"items": items}))
    assert [i["outcome"] for i in out["items"]] == [
        "created", "rejected", "created", "rejected", "rejected", "unchanged", "updated"]
    assert (out["created"], out["updated"], out["unchanged"], out["rejected"]) == (2, 1, 1, 3)
    assert out["items"][1]["problem"]["errors"][0]["pointer"] == "/currency"
    assert out["items"][3]["problem"]["errors"][0]["pointer"] == "/buyer_ref"
    assert out["items"][1]["ref"] == "BAD1"
    refs = sorted(i["invoice_ref"] for i in ok(api.get("/v1/invoices"))["items"])
    assert refs == ["G1", "G2"]
    assert open_balance(api, "G2") == Decimal("25.00")


def test_erp_posts_5000_invoices_replays_pays_part_and_reads_exact_balances(api):
    for b in range(10):
        buyer(api, f"B{b}")
    items = [
        {"invoice_ref": f"INV-{i:05d}", "buyer_ref": f"B{i % 10}", "currency": "EUR",
         "amount": f"{100 + i}.{i % 100:02d}", "issue_date": "2026-01-15", "due_date": f"2026-03-{1 + i % 28:02d}"}
        for i in range(5000)
    ]
    headers = {"Idempotency-Key": "load-2026-01-15"}
    first = ok(api.post("/v1/invoices/batch", json={"items": items}, headers=headers))
    assert first["created"] == 5000 and first["rejected"] == 0
    replay = api.post("/v1/invoices/batch", json={"items": items}, headers=headers)
    assert replay.json() == first and replay.headers["idempotent-replayed"] == "true"
    again = ok(api.post("/v1/invoices/batch", json={"items": items}))
    assert again["unchanged"] == 5000

    expected = {f"B{b}": Decimal(0) for b in range(10)}
    for it in items:
        expected[it["buyer_ref"]] += Decimal(it["amount"])
    # Buyer B3 pays 12,345.67 unallocated: oldest due date first.
    payment(api, "PAY-B3", "12345.67", buyer_ref="B3")
    expected["B3"] -= Decimal("12345.67")
    for ref, total in expected.items():
        bal = ok(api.get(f"/v1/buyers/{ref}"))["balances"][0]
        assert Decimal(bal["balance"]) == total
        assert Decimal(bal["open_invoices"]) == total
    b3 = [i for i in items if i["buyer_ref"] == "B3"]
    b3.sort(key=lambda i: (i["due_date"], i["issue_date"], i["invoice_ref"]))
    left = Decimal("12345.67")
    for it in b3:
        paid = min(left, Decimal(it["amount"]))
        left -= paid
        assert open_balance(api, it["invoice_ref"]) == Decimal(it["amount"]) - paid
        if left == 0:
            break


def test_list_filters_and_cursor_pagination(api, clock):
    buyer(api, "B1")
    buyer(api, "B2", country="DE")
    for i in range(7):
        invoice(api, f"I{i}", "10.00", "2026-01-01", f"2026-0{1 + i % 4}-28", buyer_ref="B1" if i < 5 else "B2")
    payment(api, "P1", "10.00", allocations=[{"invoice_ref": "I0", "amount": "10.00"}])
    payment(api, "P2", "4.00", allocations=[{"invoice_ref": "I1", "amount": "4.00"}])
    invoice(api, "CN1", "10.00", "2026-01-05", "2026-01-05", kind="credit_note", applies_to="I2")

    seen, cursor = [], None
    while True:
        page = ok(api.get("/v1/invoices", params={"limit": 3} | ({"cursor": cursor} if cursor else {})))
        seen += [i["invoice_ref"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(["CN1", *(f"I{i}" for i in range(7))])

    def refs(**params):
        return [i["invoice_ref"] for i in ok(api.get("/v1/invoices", params=params))["items"]]

    assert refs(buyer_ref="B2") == ["I5", "I6"]
    assert refs(status="paid") == ["I0"]
    assert refs(status="partially_paid") == ["I1"]
    assert refs(status="credited") == ["CN1", "I2"]
    assert refs(status="open", kind="invoice") == ["I3", "I4", "I5", "I6"]
    assert refs(due_before="2026-02-01", kind="invoice") == ["I0", "I4"]
    assert refs(due_after="2026-03-01") == ["I2", "I3", "I6"]
    clock.set(__import__("datetime").date(2026, 2, 1))
    assert refs(overdue="true") == ["I4"]
    assert ok(api.get("/v1/buyers", params={"country": "DE"}))["items"][0]["buyer_ref"] == "B2"


def test_invoice_detail_lists_what_was_applied(api):
    buyer(api, "B1")
    invoice(api, "I1", "100.00", "2026-01-10", "2026-02-10")
    invoice(api, "CN1", "30.00", "2026-01-12", "2026-01-12", kind="credit_note", applies_to="I1")
    payment(api, "P1", "50.00")
    got = ok(api.get("/v1/invoices/I1"))
    assert got["open_balance"] == "20.00" and got["status"] == "partially_paid"
    applied = {(a["source"], a["ref"], a["amount"]) for a in got["applied"]}
    assert applied == {("credit_note", "CN1", "30.00"), ("payment", "P1", "50.00")}


def test_new_documents_of_a_large_batch_are_written_as_rows_and_settled_corrected_and_valued_in_it(api):
    """Past 200 new documents a batch writes them by COPY on PostgreSQL, as plain rows: a credit note of the same
    batch still goes to the invoice it names, an invoice created and corrected in one batch ends at revision 2 with
    its first version recorded,
    the single PUT answers with the stored row, and the buyer's exposure counts all of it."""
    buyer(api, "B1")
    items = [{"invoice_ref": f"N{n:03d}", **_body(amount="10.00")} for n in range(250)]
    items.append({"invoice_ref": "CN1", **_body(kind="credit_note", amount="4.00", applies_to="N007")})
    items.append({"invoice_ref": "N010", **_body(amount="12.50")})
    out = ok(api.post("/v1/invoices/batch", json={"items": items}))
    assert (out["created"], out["updated"], out["unchanged"], out["rejected"]) == (251, 1, 0, 0)
    assert open_balance(api, "N007") == Decimal("6.00")
    n010 = ok(api.get("/v1/invoices/N010"))
    assert (n010["amount"], n010["open_balance"], n010["revision"]) == ("12.50", "12.50", 2)
    assert [c["previous"]["amount"] for c in n010["corrections"]] == ["10.00"]  # the batch's first version kept
    assert ok(api.get("/v1/invoices/CN1", params={"kind": "credit_note"}))["open_balance"] == "0.00"
    again = ok(api.post("/v1/invoices/batch", json={"items": [
        {"invoice_ref": "N001", **_body(amount="11.00")}, {"invoice_ref": "N002", **_body(amount="10.00")}]}))
    assert [i["outcome"] for i in again["items"]] == ["updated", "unchanged"]
    n001 = ok(api.get("/v1/invoices/N001"))
    assert (n001["open_balance"], n001["revision"], len(n001["corrections"])) == ("11.00", 2, 1)
    put = api.put("/v1/invoices/N900", json=_body(amount="1.00"))
    assert put.status_code == 201 and (put.json()["open_balance"], put.json()["revision"]) == ("1.00", 1)
    assert Decimal(exposure(api)["outstanding"]) == Decimal("2500.00") + Decimal("2.50") - Decimal("4.00") + 1 + 1


def test_a_batch_of_corrections_ends_where_the_same_puts_one_at_a_time_end(make_tenant):
    """A batch loads the invoices it corrects and their allocations once, and flushes once: the ERP's allocations
    kept, the applied cash released and applied again, a move to another buyer, a ref corrected twice in the
    batch: the same balances, revisions and exposure as the same corrections put one at a time."""
    corrections = [("C1", "B1", "80.00"), ("C2", "B2", "100.00"), ("C3", "B1", "50.00"), ("C3", "B1", "30.00")]

    def book(api):
        buyer(api, "B1")
        buyer(api, "B2")
        for ref in ("C1", "C2", "C3"):
            invoice(api, ref, "100.00", "2026-01-10", "2026-03-10")
        payment(api, "P1", "60.00", allocations=[{"invoice_ref": "C1", "amount": "60.00"}])
        payment(api, "P2", "150.00")  # applied oldest first: 40 to C1, 100 to C2, 10 to C3

    def state(api):
        docs = {ref: ok(api.get(f"/v1/invoices/{ref}")) for ref in ("C1", "C2", "C3")}
        return ({ref: (d["buyer_ref"], d["open_balance"], d["revision"], len(d["corrections"]))
                 for ref, d in docs.items()},
                {ref: ok(api.get(f"/v1/payments/{ref}"))["unapplied"] for ref in ("P1", "P2")},
                {b: exposure(api, b)["outstanding"] for b in ("B1", "B2")})

    one, batch = make_tenant("one at a time"), make_tenant("in a batch")
    for t in (one, batch):
        book(t.client)
    for ref, buyer_ref, amount in corrections:
        ok(one.client.put(f"/v1/invoices/{ref}", json=_body(buyer_ref=buyer_ref, amount=amount)))
    out = ok(batch.client.post("/v1/invoices/batch", json={"items": [
        {"invoice_ref": ref, **_body(buyer_ref=buyer_ref, amount=amount)} for ref, buyer_ref, amount in corrections]}))
    assert [i["outcome"] for i in out["items"]] == ["updated"] * 4
    assert state(batch.client) == state(one.client)
    assert state(batch.client)[0]["C2"][:2] == ("B2", "100.00")
    # A batch naming only the buyer an invoice moves to: the buyer it leaves is locked with the batch's.
    move = _body(buyer_ref="B2", amount="30.00")
    ok(one.client.put("/v1/invoices/C3", json=move))
    assert ok(batch.client.post("/v1/invoices/batch", json={"items": [{"invoice_ref": "C3", **move}]}))["updated"] == 1
    assert state(batch.client) == state(one.client)
    assert state(batch.client)[0]["C3"][:2] == ("B2", "30.00")
