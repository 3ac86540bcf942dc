from datetime import date
from decimal import Decimal

from tests.helpers import buyer, invoice, ok, open_balance, payment


def _three(api):
    buyer(api, "B1")
    invoice(api, "OLD", "100.00", "2026-01-01", "2026-02-01")
    invoice(api, "MID", "200.00", "2026-01-05", "2026-02-15")
    invoice(api, "NEW", "300.00", "2026-01-10", "2026-03-01")


def test_unallocated_cash_goes_to_the_oldest_due_date_first(api):
    _three(api)
    p = payment(api, "P1", "250.00")
    assert [(a["invoice_ref"], a["amount"], a["explicit"]) for a in p["applied"]] == [
        ("OLD", "100.00", False), ("MID", "150.00", False)]
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [0, 50, 300]
    assert ok(api.get("/v1/invoices/OLD"))["status"] == "paid"


def test_explicit_allocation_then_the_rest_oldest_first(api):
    _three(api)
    p = payment(api, "P1", "350.00", allocations=[{"invoice_ref": "NEW", "amount": "300.00"}])
    assert p["unapplied"] == "0.00"
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [50, 200, 0]


def test_over_allocation_and_other_buyers_invoices_are_422_and_write_nothing(api):
    _three(api)
    buyer(api, "B2")
    invoice(api, "OTHER", "10.00", "2026-01-01", "2026-02-01", buyer_ref="B2")
    cases = [
        ([{"invoice_ref": "OLD", "amount": "100.01"}], "/allocations/0/amount"),
        ([{"invoice_ref": "OLD", "amount": "60.00"}, {"invoice_ref": "OLD", "amount": "60.00"}],
         "/allocations/0/amount"),
        ([{"invoice_ref": "OTHER", "amount": "5.00"}], "/allocations/0/invoice_ref"),
        ([{"invoice_ref": "GHOST", "amount": "5.00"}], "/allocations/0/invoice_ref"),
        ([{"invoice_ref": "MID", "amount": "200.00"}, {"invoice_ref": "NEW", "amount": "300.00"}], "/allocations"),
    ]
    for allocations, pointer in cases:
        r = api.put("/v1/payments/P1", json={"buyer_ref": "B1", "amount": "400.00", "currency": "EUR",
                                             "received_on": "2026-03-01", "allocations": allocations})
        assert r.status_code == 422, (allocations, r.text)
        assert r.json()["errors"][0]["pointer"] == pointer
    assert api.get("/v1/payments/P1").status_code == 404
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW", "OTHER")] == [100, 200, 300, 10]


def test_reversal_restores_balances_and_is_idempotent(api):
    _three(api)
    payment(api, "P1", "250.00")
    reversed_ = ok(api.delete("/v1/payments/P1"))
    assert reversed_["reversed"] is True and reversed_["applied"] == []
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [100, 200, 300]
    assert ok(api.delete("/v1/payments/P1"))["reversed"] is True
    assert api.put("/v1/payments/P1", json={"buyer_ref": "B1", "amount": "250.00", "currency": "EUR",
                                            "received_on": "2026-03-01"}).status_code == 409
    bal = ok(api.get("/v1/buyers/B1"))["balances"][0]
    assert bal["balance"] == "600.00"


def test_reversal_lets_waiting_credit_land(api):
    buyer(api, "B1")
    invoice(api, "I1", "100.00", "2026-01-01", "2026-02-01")
    payment(api, "P1", "100.00")
    payment(api, "P2", "40.00")  # nothing open: stays unapplied
    assert ok(api.get("/v1/payments/P2"))["unapplied"] == "40.00"
    ok(api.delete("/v1/payments/P1"))
    assert open_balance(api, "I1") == Decimal("60.00")
    assert ok(api.get("/v1/payments/P2"))["unapplied"] == "0.00"


def test_cash_received_before_the_invoice_is_applied_when_it_arrives(api):
    buyer(api, "B1")
    payment(api, "P1", "70.00")
    bal = ok(api.get("/v1/buyers/B1"))["balances"][0]
    assert bal == {"currency": "EUR", "balance": "-70.00", "open_invoices": "0.00", "unapplied_credit": "70.00"}
    invoice(api, "I1", "100.00", "2026-01-01", "2026-02-01")
    assert open_balance(api, "I1") == Decimal("30.00")


def test_credit_notes_go_to_the_named_invoice_then_the_oldest(api):
    _three(api)
    invoice(api, "CN1", "250.00", "2026-01-20", "2026-01-20", kind="credit_note", applies_to="MID")
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [50, 0, 300]
    invoice(api, "CN2", "20.00", "2026-01-21", "2026-01-21", kind="credit_note")
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [30, 0, 300]
    assert ok(api.get("/v1/invoices/CN1"))["status"] == "credited"
    # Correcting a credit note re-applies it.
    ok(api.put("/v1/invoices/CN1", json={"buyer_ref": "B1", "kind": "credit_note", "currency": "EUR",
                                         "amount": "100.00", "issue_date": "2026-01-20", "due_date": "2026-01-20",
                                         "applies_to": "MID"}))
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [80, 100, 300]


def test_payment_correction_reapplies(api):
    _three(api)
    payment(api, "P1", "100.00")
    p = payment(api, "P1", "150.00", allocations=[{"invoice_ref": "NEW", "amount": "150.00"}])
    assert p["amount"] == "150.00"
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [100, 200, 150]


def test_payment_batch_each_item_on_its_own(api):
    _three(api)
    items = [
        {"payment_ref": "P1", "buyer_ref": "B1", "amount": "50.00", "currency": "EUR", "received_on": "2026-03-01"},
        {"payment_ref": "P2", "buyer_ref": "B1", "amount": "500.00", "currency": "EUR", "received_on": "2026-03-01",
         "allocations": [{"invoice_ref": "OLD", "amount": "500.00"}]},
        {"payment_ref": "P3", "buyer_ref": "B1", "amount": "30.00", "currency": "EUR", "received_on": "2026-03-02",
         "allocations": [{"invoice_ref": "NEW", "amount": "30.00"}]},
        {"payment_ref": "P4", "buyer_ref": "B1", "amount": "30", "currency": "EUR"},
    ]
    out = ok(api.post("/v1/payments/batch", json={"items": items}))
    assert [i["outcome"] for i in out["items"]] == ["created", "rejected", "created", "rejected"]
    assert out["items"][1]["problem"]["errors"][0]["pointer"] == "/allocations/0/amount"
    assert out["items"][3]["problem"]["errors"][0]["pointer"] == "/received_on"
    assert api.get("/v1/payments/P2").status_code == 404
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [50, 200, 270]


def test_a_batch_applies_every_explicit_allocation_before_unallocated_cash(api):
    """Unallocated cash of a batch goes to what the batch's own allocations left open (oldest due date first),
    whatever the items' order: the ERP's allocations are never refused because an earlier item of the same
    batch happened to be applied to that invoice automatically."""
    _three(api)
    items = [
        {"payment_ref": "P1", "buyer_ref": "B1", "amount": "100.00", "currency": "EUR", "received_on": "2026-03-01"},
        {"payment_ref": "P2", "buyer_ref": "B1", "amount": "100.00", "currency": "EUR", "received_on": "2026-03-01",
         "allocations": [{"invoice_ref": "OLD", "amount": "100.00"}]},
        {"payment_ref": "P2", "buyer_ref": "B1", "amount": "100.00", "currency": "EUR", "received_on": "2026-03-01",
         "allocations": [{"invoice_ref": "OLD", "amount": "100.00"}]},
    ]
    out = ok(api.post("/v1/payments/batch", json={"items": items}))
    assert [i["outcome"] for i in out["items"]] == ["created", "created", "unchanged"]
    assert [open_balance(api, r) for r in ("OLD", "MID", "NEW")] == [0, 100, 300]
    assert [(a["invoice_ref"], a["amount"]) for a in ok(api.get("/v1/payments/P1"))["applied"]] == [("MID", "100.00")]


def test_cash_reaches_only_as_far_as_it_goes_and_a_named_invoice_first(api):
    """Settlement reads only the oldest invoices the cash can reach: the balances are those of applying it to
    the whole queue, oldest due date first, a credit note to the invoice it names before the rest. A FIFO of
    our own, computed here, is the reference."""
    buyer(api, "B1")
    invoices = [(f"I{n:02d}", Decimal(100 + 7 * n), f"2026-01-{1 + n % 28:02d}", f"2026-03-{1 + (n * 11) % 28:02d}")
                for n in range(40)]
    ok(api.post("/v1/invoices/batch", json={"items": [
        {"invoice_ref": ref, "buyer_ref": "B1", "currency": "EUR", "amount": str(amount), "issue_date": issue,
         "due_date": due} for ref, amount, issue, due in invoices]}))
    # The credit note names the invoice due last, far beyond where the cash stops.
    queue = sorted(invoices, key=lambda i: (i[3], i[2], i[0]))
    named = queue[-1][0]
    balances = {ref: amount for ref, amount, _, _ in invoices}

    def fifo(amount: Decimal, first: str | None = None) -> None:
        for ref in ([first] if first else []) + [r for r, *_ in queue if r != first]:
            take = min(amount, balances[ref])
            balances[ref] -= take
            amount -= take

    invoice(api, "CN", "150.00", "2026-02-01", "2026-02-01", kind="credit_note", applies_to=named)
    fifo(Decimal("150.00"), named)
    ok(api.post("/v1/payments/batch", json={"items": [
        {"payment_ref": f"P{n}", "buyer_ref": "B1", "currency": "EUR", "amount": amount, "received_on": "2026-03-01"}
        for n, amount in enumerate(["95.50", "120.00", "333.33"])]}))
    for amount in ("95.50", "120.00", "333.33"):
        fifo(Decimal(amount))
    assert {ref: open_balance(api, ref) for ref in balances} == balances
    original = {ref: amount for ref, amount, _, _ in invoices}
    assert sum(0 < balances[r] < original[r] for r in balances) == 2  # the named one, and where the cash stopped
    assert balances[queue[-2][0]] == original[queue[-2][0]]  # the queue's far end untouched
    # More than the whole queue: every invoice paid, the rest of the payment unapplied.
    total = sum(balances.values())
    p = payment(api, "ALL", str(total + Decimal("10.00")))
    assert p["unapplied"] == "10.00"
    assert all(open_balance(api, ref) == 0 for ref in balances)


def test_a_batch_moving_many_invoices_writes_their_balances_and_settlement_dates(api, tenant, database):
    """From UPDATE_FROM_ROWS invoices, what cash moves (balance, settlement date, updated_at) is held out of the
    ORM's flush and written once, with the dates, as rows: the unallocated cash must still go by the balances the
    batch's own allocations left (the database has the old ones until then). A correction (in a savepoint) and a
    reversal go the ORM's way. What is stored is what applying the cash in order gives."""
    from sqlalchemy import select

    from app.core.db import UPDATE_FROM_ROWS
    from app.ledger.models import Invoice

    n = UPDATE_FROM_ROWS + 30
    buyer(api, "B1")
    refs = [f"I{k:03d}" for k in range(n)]
    ok(api.post("/v1/invoices/batch", json={"items": [
        {"invoice_ref": ref, "buyer_ref": "B1", "currency": "EUR", "amount": "100.00", "issue_date": "2026-01-01",
         "due_date": f"2026-02-{1 + k % 28:02d}"} for k, ref in enumerate(refs)]}))

    def stored() -> dict[str, tuple]:
        with database.session(tenant.id) as session:
            return {i.ref: (i.open_balance, i.settled_on, i.updated_at) for i in session.scalars(select(Invoice))}

    before = stored()
    explicit = refs[: UPDATE_FROM_ROWS + 10]  # paid in full, each by its own payment, on its own day
    items = [{"payment_ref": f"P{k}", "buyer_ref": "B1", "amount": "100.00", "currency": "EUR",
              "received_on": f"2026-03-{1 + k % 28:02d}", "allocations": [{"invoice_ref": ref, "amount": "100.00"}]}
             for k, ref in enumerate(explicit)]
    # the rest of the queue, oldest due date first: 250.00 pays two and a half of the others
    items.append({"payment_ref": "CASH", "buyer_ref": "B1", "amount": "250.00", "currency": "EUR",
                  "received_on": "2026-04-01"})
    out = ok(api.post("/v1/payments/batch", json={"items": items}))
    assert {i["outcome"] for i in out["items"]} == {"created"}
    after = stored()
    rest = refs[len(explicit):]
    cash = {}
    left = Decimal("250.00")
    for ref in sorted(rest, key=lambda r: (1 + refs.index(r) % 28, r)):  # by due date, then ref (same issue date)
        take = min(left, Decimal("100.00"))
        cash[ref] = take
        left -= take
    for k, ref in enumerate(explicit):
        assert after[ref][:2] == (Decimal(0), date(2026, 3, 1 + k % 28)), ref
        assert after[ref][2] > before[ref][2]
    for ref in rest:
        paid = cash[ref]
        assert after[ref][:2] == (Decimal("100.00") - paid, date(2026, 4, 1) if paid == 100 else None), ref
    assert ok(api.get("/v1/payments/CASH"))["unapplied"] == "0.00"
    # A correction goes in a savepoint; this one over-allocates (422): it leaves P0 and every balance as they were.
    out = ok(api.post("/v1/payments/batch", json={"items": [
        items[0] | {"amount": "500.00", "allocations": [{"invoice_ref": refs[-1], "amount": "500.00"}]}]}))
    assert out["items"][0]["problem"]["errors"][0]["pointer"] == "/allocations/0/amount"
    assert stored() == after
    assert [(a["invoice_ref"], a["amount"]) for a in ok(api.get("/v1/payments/P0"))["applied"]] == [(refs[0], "100.00")]
    # a reversal reopens what it paid, dates cleared
    ok(api.delete("/v1/payments/CASH"))
    reopened = stored()
    assert {r: reopened[r][:2] for r in rest} == {r: (Decimal("100.00"), None) for r in rest}
    assert {r: reopened[r][:2] for r in explicit} == {r: after[r][:2] for r in explicit}
