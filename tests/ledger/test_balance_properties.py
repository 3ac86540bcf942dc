"""Property: any sequence of ledger events keeps every balance equal to the ledger's sum."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.tenants.service import create_tenant

BUYERS = ["B1", "B2"]
amounts = st.integers(min_value=1, max_value=50_000).map(lambda c: Decimal(c) / 100)
days = st.integers(min_value=1, max_value=28)

invoice_op = st.tuples(st.just("invoice"), st.sampled_from(BUYERS), amounts, days, st.integers(0, 9))
credit_op = st.tuples(st.just("credit"), st.sampled_from(BUYERS), amounts, days, st.integers(0, 9))
pay_op = st.tuples(st.just("pay"), st.sampled_from(BUYERS), amounts, days, st.integers(0, 9), st.booleans())
reverse_op = st.tuples(st.just("reverse"), st.integers(0, 9))
correct_op = st.tuples(st.just("correct"), st.integers(0, 9), amounts)
ops = st.lists(st.one_of(invoice_op, credit_op, pay_op, reverse_op, correct_op), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
def test_balances_always_equal_the_ledger_sum(app, database, sequence):
    with database.session() as session, session.begin():
        tenant, key = create_tenant(session, "prop", "EUR")
    api = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
    for b in BUYERS:
        assert api.put(f"/v1/buyers/{b}", json={"name": b, "country": "FR"}).status_code == 201

    docs: dict[str, tuple[str, str, Decimal]] = {}  # ref -> (kind, buyer, amount) as accepted
    invoices: list[str] = []
    payments: dict[str, tuple[str, Decimal, bool]] = {}  # ref -> (buyer, amount, reversed)
    for n, op in enumerate(sequence, start=1):
        if op[0] in ("invoice", "credit"):
            _, b, amount, day, target = op
            ref = f"D{n}"
            body = {"buyer_ref": b, "currency": "EUR", "amount": str(amount), "issue_date": f"2026-01-{day:02d}",
                    "due_date": f"2026-02-{day:02d}", "kind": "invoice" if op[0] == "invoice" else "credit_note"}
            same_buyer = [r for r in invoices if docs[r][1] == b]
            if op[0] == "credit" and same_buyer:
                body["applies_to"] = same_buyer[target % len(same_buyer)]
            r = api.put(f"/v1/invoices/{ref}", json=body)
            assert r.status_code == 201, r.text
            docs[ref] = (body["kind"], b, amount)
            if op[0] == "invoice":
                invoices.append(ref)
        elif op[0] == "pay":
            _, b, amount, day, target, allocate = op
            ref = f"P{n}"
            body = {"buyer_ref": b, "currency": "EUR", "amount": str(amount), "received_on": f"2026-03-{day:02d}"}
            if allocate and invoices:
                inv = invoices[target % len(invoices)]
                body["allocations"] = [{"invoice_ref": inv, "amount": str(min(amount, docs[inv][2]))}]
            r = api.put(f"/v1/payments/{ref}", json=body)
            assert r.status_code in (201, 422), r.text  # 422: over-allocation or another buyer's invoice
            if r.status_code == 201:
                payments[ref] = (b, amount, False)
        elif op[0] == "reverse" and payments:
            ref = sorted(payments)[op[1] % len(payments)]
            assert api.delete(f"/v1/payments/{ref}").status_code == 200
            b, amount, _ = payments[ref]
            payments[ref] = (b, amount, True)
        elif op[0] == "correct" and docs:
            ref = sorted(docs)[op[1] % len(docs)]
            kind, b, _ = docs[ref]
            current = api.get(f"/v1/invoices/{ref}").json()
            body = {k: current[k] for k in ("buyer_ref", "kind", "currency", "issue_date", "due_date")}
            body["amount"] = str(op[2])
            if current["applies_to"]:
                body["applies_to"] = current["applies_to"]
            r = api.put(f"/v1/invoices/{ref}", json=body)
            assert r.status_code in (200, 422), r.text  # 422: below what the ERP allocated to it
            if r.status_code == 200:
                docs[ref] = (kind, b, op[2])

    for b in BUYERS:
        expected = sum((a if k == "invoice" else -a for k, bb, a in docs.values() if bb == b), Decimal(0))
        expected -= sum((a for bb, a, rev in payments.values() if bb == b and not rev), Decimal(0))
        balances = api.get(f"/v1/buyers/{b}").json()["balances"]
        got = Decimal(balances[0]["balance"]) if balances else Decimal(0)
        assert got == expected
        if balances:
            assert Decimal(balances[0]["open_invoices"]) - Decimal(balances[0]["unapplied_credit"]) == expected
    _check_ledger_rows(database, tenant.id)
    api.close()


def _check_ledger_rows(database, tenant_id: str) -> None:
    q = {"t": tenant_id}
    with database.session() as s:
        rows = s.execute(text("""
            SELECT i.ref, i.kind, i.amount, i.open_balance,
                   (SELECT COALESCE(SUM(a.amount), 0) FROM allocations a WHERE a.invoice_id = i.id) AS into_it,
                   (SELECT COALESCE(SUM(a.amount), 0) FROM allocations a WHERE a.credit_note_id = i.id) AS from_it
            FROM invoices i WHERE i.tenant_id = :t"""), q).all()
        pays = s.execute(text("""
            SELECT p.ref, p.amount, p.unapplied, p.reversed_at,
                   (SELECT COALESCE(SUM(a.amount), 0) FROM allocations a WHERE a.payment_id = p.id) AS out_of_it
            FROM payments p WHERE p.tenant_id = :t"""), q).all()
        unsettled = s.execute(text("""
            SELECT COUNT(*) FROM invoices i WHERE i.tenant_id = :t AND i.kind = 'invoice' AND i.open_balance > 0
            AND (EXISTS (SELECT 1 FROM invoices c WHERE c.buyer_id = i.buyer_id AND c.kind = 'credit_note'
                         AND c.open_balance > 0)
              OR EXISTS (SELECT 1 FROM payments p WHERE p.buyer_id = i.buyer_id AND p.unapplied > 0
                         AND p.reversed_at IS NULL))"""), q).scalar()
    scale = 10_000 if database.dialect == "sqlite" else 1  # SQLite stores money as scaled integers
    for ref, kind, amount, open_, into_it, from_it in rows:
        amount, open_ = Decimal(amount) / scale, Decimal(open_) / scale
        into_it, from_it = Decimal(into_it) / scale, Decimal(from_it) / scale
        if kind == "invoice":
            assert open_ == amount - into_it, ref
            assert 0 <= open_ <= amount, ref
        else:
            assert open_ == amount - from_it, ref
            assert open_ >= 0, ref
    for ref, amount, unapplied, reversed_at, out_of_it in pays:
        amount, unapplied, out_of_it = Decimal(amount) / scale, Decimal(unapplied) / scale, Decimal(out_of_it) / scale
        if reversed_at is not None:
            assert unapplied == 0 and out_of_it == 0, ref
        else:
            assert unapplied == amount - out_of_it and unapplied >= 0, ref
    assert unsettled == 0, "credit left unapplied while an invoice of the same buyer is open"
