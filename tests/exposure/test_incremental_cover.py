"""A differential test for the stored exposure under ledger changes: random sequences of operations on one tenant,
through the HTTP API, and after EVERY operation the stored rows must equal a recomputation from scratch
(`jobs.recompute(check_only=True)` answers `[]`).

It guards the incremental refresh (a ledger change re-walks only the buyer's invoices delivered on or after the
earliest changed delivery date, resuming from stored per-invoice state): a path that forgets to say what changed,
or a walk whose order differs from the engine's. The engine walks a buyer's invoices by (delivery date, reference)
with references compared by code point ("B2" < "b10" < "b9" < "é-1"); PostgreSQL under a locale or ICU collation
orders them otherwise ("b10" < "B2" < "b9"), and C / C.UTF-8 orders them as Python does: the collation trap shows
only on a database created with a locale collation.

After the clock moves forward, buyers that nothing touched since keep rows valued on an earlier day: each stored
row is then compared with a recomputation as of its own `valued_on` (one check per distinct day, each keeping the
lines about its own buyers), and every buyer an operation changed must be valued today.
COVERWATCH_INCREMENTAL_EXAMPLES sets the number of random sequences (default 15).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.cover import engine
from app.exposure import jobs
from app.exposure import service as exposure_service
from app.exposure.models import BuyerExposure, InvoiceCover
from tests import helpers
from tests.conftest import VALUATION_DATE
from tests.helpers import PRIMARY, TOP_UP, exposure, limit, ok

EXAMPLES = int(os.environ.get("COVERWATCH_INCREMENTAL_EXAMPLES", "15"))
START = date(2026, 1, 1)  # the policies' first day: every date drawn is on or after it
BUYERS = {"B1": "FR", "B2": "DE", "B3": "FR"}
# Same-day references whose code-point order differs from a locale collation's (spaces and "/" included).
COLLATION_REFS = ["a1", "B2", "b10", "b9", "Z", "é-1", "e-2", "ÿ", "Ab c", "ab/c"]
REF_POOL = COLLATION_REFS + [f"{r}/2" for r in COLLATION_REFS]


def path(ref: str) -> str:
    return quote(ref, safe="")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def cents_of(amount: Any) -> int:
    return int(Decimal(str(amount)) * 100)


@dataclass
class Inv:
    buyer: str
    amount: int  # cents
    issue: date
    due: date
    revision: int = 1


@dataclass
class Pay:
    buyer: str
    amount: int
    received_on: date
    allocations: list[tuple[str, int]]
    reversed: bool = False


@dataclass
class Run:
    """One tenant driven through the API, with what the test knows of its ledger."""

    api: Any
    app: Any
    database: Any
    tenant_id: str
    clock: Any
    today: date = VALUATION_DATE
    invoices: dict[str, Inv] = field(default_factory=dict)
    payments: dict[str, Pay] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)  # buyers an operation changed since the clock last moved
    log: list[str] = field(default_factory=list)
    n: int = 0
    in_hypothesis: bool = True  # record events (shown by --hypothesis-show-statistics)

    def event(self, what: str) -> None:
        if self.in_hypothesis:
            event(what)

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def call(self, method: str, url: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        r = self.api.request(method, url, json=body)
        self.log.append(f"{method} {url} {body!r} -> {r.status_code}")
        assert r.status_code in expect, f"{method} {url} {body!r}: expected {expect}, got {r.status_code}: {r.text}"
        if method != "GET":
            self.event(f"{method} {url.split('/')[2]} -> {r.status_code}")
        return r.json() if r.content else None

    def invoice(self, ref: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/invoices/{path(ref)}?kind=invoice", expect=(200,))

    def explicitly_paid(self, ref: str) -> int:
        """What payments allocated by the ERP hold on this invoice (a correction may not go below it)."""
        return sum(cents_of(a["amount"]) for a in self.invoice(ref)["applied"]
                   if a["source"] == "payment" and a["explicit"])

    def open_cents(self, ref: str) -> int:
        return cents_of(self.invoice(ref)["open_balance"])

    def touched(self, *buyers: str) -> None:
        self.fresh.update(buyers)

    def check(self) -> None:
        """Stored rows equal a recomputation from scratch: each as of its valued_on (today unless the clock moved
        since nothing touched its buyer); the buyers an operation changed are valued today."""
        with self.database.session(self.tenant_id) as session:
            rows = session.execute(select(BuyerExposure.buyer_ref, BuyerExposure.valued_on, BuyerExposure.buyer_id)
                                   .where(BuyerExposure.tenant_id == self.tenant_id)).all()
            covers = session.execute(select(InvoiceCover.buyer_id, InvoiceCover.issue_date, InvoiceCover.invoice_ref)
                                     .order_by(InvoiceCover.buyer_id, InvoiceCover.seq)).all()
        for buyer, _, buyer_id in rows:  # the walk order, whatever the database's collation: day, code points
            walk = [(day, ref) for b, day, ref in covers if b == buyer_id]
            assert walk == sorted(walk), f"{buyer}: invoices stored out of walk order: {walk}\n" + self.trail()
        valued = {buyer: day for buyer, day, _ in rows}
        stale = {b: d for b, d in valued.items() if d != self.today}
        assert not (set(stale) & self.fresh), f"changed buyers not valued on {self.today}: {stale}\n" + self.trail()
        days = {self.today} | set(stale.values())
        if stale:
            self.event("checked rows valued before today")
        problems: list[str] = []
        for day in sorted(days):
            mine = {b for b, d in valued.items() if d == day}
            others = set(valued) - mine
            settings_then = self.app.state.settings.model_copy(update={"today": day})
            lines = jobs.recompute(self.database, settings_then, tenant_id=self.tenant_id, check_only=True)
            if day == self.today and not stale:
                assert lines == [], "\n".join(lines) + "\n" + self.trail()  # the plain check: all valued today
            for line in lines:
                about = line.split(": ", 1)[1]
                if not any(about.startswith(f"{b}: ") for b in others) and line not in problems:
                    problems.append(line)
        assert problems == [], "\n".join(problems) + "\n" + self.trail()

    def trail(self) -> str:
        return "operations, last 25:\n  " + "\n  ".join(self.log[-25:])

    # -- operations used by several others ----------------------------------------------------------------

    def put_invoice(self, ref: str, buyer: str, amount: int, issue: date, due: date,
                    expect: tuple[int, ...] = (201,)) -> Any:
        body = {"buyer_ref": buyer, "kind": "invoice", "currency": "EUR", "amount": money(amount),
                "issue_date": issue.isoformat(), "due_date": due.isoformat()}
        out = self.call("PUT", f"/v1/invoices/{path(ref)}", body, expect)
        if out is not None and "revision" in out:
            before = self.invoices.get(ref)
            if before is None or out["revision"] != before.revision:
                self.touched(buyer, *([before.buyer] if before else []))
            self.invoices[ref] = Inv(buyer, amount, issue, due, out["revision"])
        return out


# --- what the operations draw --------------------------------------------------------------------------------

amount_cents = st.integers(min_value=100, max_value=500_000)
buyer_ref = st.sampled_from(["B1", "B1", "B2", "B3"])  # B1, the one with many invoices, most often


def a_day(data: st.DataObject, run: Run, label: str, back: int | None = None) -> date:
    """A day from START (or `back` days before today) to today."""
    span = (run.today - START).days if back is None else min(back, (run.today - START).days)
    return run.today - timedelta(days=data.draw(st.integers(0, span), label=label))


def terms(data: st.DataObject, label: str = "terms") -> timedelta:
    return timedelta(days=data.draw(st.sampled_from([0, 15, 30, 45, 60, 90, 150]), label=label))


def some_invoices(data: st.DataObject, run: Run, buyer: str, most: int, label: str) -> list[str]:
    mine = sorted(r for r, i in run.invoices.items() if i.buyer == buyer)
    if not mine:
        return []
    return data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=most, unique=True), label=label)


def correction_body(data: st.DataObject, run: Run, ref: str) -> tuple[str, int, date, date]:
    """Another buyer, amount, issue date or due date (at least one of them) for an existing invoice."""
    inv = run.invoices[ref]
    what = data.draw(st.sets(st.sampled_from(["issue", "due", "amount", "buyer"]), min_size=1), label="correct")
    issue, due, amount, buyer = inv.issue, inv.due, inv.amount, inv.buyer
    if "issue" in what:
        shift = data.draw(st.one_of(st.integers(-40, -1), st.integers(1, 40)), label="issue shift")
        issue = min(run.today, max(START, issue + timedelta(days=shift)))
    if "due" in what:
        due = issue + terms(data, "new terms")
    due = max(due, issue)
    if "amount" in what:
        amount = data.draw(amount_cents, label="new amount")
    if "buyer" in what:
        buyer = data.draw(st.sampled_from(sorted(set(BUYERS) - {inv.buyer})), label="new buyer")
    return buyer, amount, issue, due


def correction_refused(run: Run, ref: str, buyer: str, amount: int) -> bool:
    """The API refuses a correction below what the ERP allocated, or moving such an invoice to another buyer."""
    paid = run.explicitly_paid(ref)
    return amount < paid or (paid > 0 and buyer != run.invoices[ref].buyer)


def allocations(data: st.DataObject, run: Run, buyer: str, avoid: set[str], label: str) -> list[tuple[str, int]]:
    """Allocations to 1-2 of the buyer's open invoices: part of their balance, or all of it (a late settlement
    when the invoice is overdue)."""
    out = []
    for ref in some_invoices(data, run, buyer, 2, label):
        open_ = run.open_cents(ref)
        if ref in avoid or open_ <= 0:
            continue
        full = data.draw(st.booleans(), label="settle in full")
        out.append((ref, open_ if full or open_ == 1 else data.draw(st.integers(1, open_ - 1), label="part")))
        avoid.add(ref)
    return out


def another_amount(data: st.DataObject, allocs: list[tuple[str, int]], old: int) -> int:
    """A corrected payment amount: not the old one, and not below its allocations."""
    amount = sum(c for _, c in allocs) + data.draw(st.integers(1, 300_000), label="amount")
    return amount + 1 if amount == old else amount


def payment_body(buyer: str, amount: int, received_on: date, allocs: list[tuple[str, int]]) -> dict[str, Any]:
    body: dict[str, Any] = {"buyer_ref": buyer, "amount": money(amount), "currency": "EUR",
                            "received_on": received_on.isoformat()}
    if allocs:
        body["allocations"] = [{"invoice_ref": r, "amount": money(c)} for r, c in allocs]
    return body


# --- operations: each makes one or more requests, and the stored exposure is checked after each -----------


def op_invoice(data: st.DataObject, run: Run) -> None:
    buyer = data.draw(buyer_ref, label="buyer")
    issue = a_day(data, run, "issue")
    run.put_invoice(run.next("I"), buyer, data.draw(amount_cents, label="amount"), issue, issue + terms(data))
    run.check()


def op_same_day(data: st.DataObject, run: Run) -> None:
    """Invoices delivered the same day, whose references sort apart by code point and by collation, posted in a
    random order."""
    unused = [r for r in REF_POOL if r not in run.invoices]
    if len(unused) < 2:
        return
    refs = data.draw(st.lists(st.sampled_from(unused), min_size=2, max_size=min(5, len(unused)), unique=True),
                     label="same-day refs")
    buyer = data.draw(buyer_ref, label="buyer")
    issue = a_day(data, run, "issue")
    due = issue + terms(data)
    for ref in refs:
        run.put_invoice(ref, buyer, data.draw(st.integers(10_000, 300_000), label="amount"), issue, due)
        run.check()


def op_correct(data: st.DataObject, run: Run) -> None:
    if not run.invoices:
        return
    allocated = sorted({r for p in run.payments.values() if not p.reversed for r, _ in p.allocations})
    if bool(allocated) and data.draw(st.booleans(), label="one the ERP allocated payments to"):
        ref = data.draw(st.sampled_from(allocated), label="invoice")  # below them, or to another buyer: 422
    else:
        ref = data.draw(st.sampled_from(sorted(run.invoices)), label="invoice")
    buyer, amount, issue, due = correction_body(data, run, ref)
    refused = correction_refused(run, ref, buyer, amount)
    run.put_invoice(ref, buyer, amount, issue, due, expect=(422,) if refused else (200,))
    run.check()


def op_credit_note(data: st.DataObject, run: Run) -> None:
    if not run.invoices:
        return
    ref = data.draw(st.sampled_from(sorted(run.invoices)), label="credited invoice")
    inv = run.invoices[ref]
    issue = a_day(data, run, "credit note date")
    body = {"buyer_ref": inv.buyer, "kind": "credit_note", "currency": "EUR", "applies_to": ref,
            "amount": money(data.draw(st.integers(100, inv.amount + 10_000), label="credit")),
            "issue_date": issue.isoformat(), "due_date": issue.isoformat()}
    run.call("PUT", f"/v1/invoices/{path(run.next('CN'))}", body, (201,))
    run.touched(inv.buyer)
    run.check()


def op_payment(data: st.DataObject, run: Run) -> None:
    """A payment, with the ERP's allocations to older invoices (partial, or settling them late) or without."""
    buyer = data.draw(buyer_ref, label="buyer")
    allocated = data.draw(st.sampled_from([True, True, False]), label="allocated")
    allocs = allocations(data, run, buyer, set(), "allocated to") if allocated else []
    extra = data.draw(st.sampled_from([0, 0, 5_000, 150_000]), label="unallocated") if allocs else \
        data.draw(amount_cents, label="amount")
    amount = sum(c for _, c in allocs) + extra
    if amount == 0:
        return
    received = a_day(data, run, "received", back=30)
    ref = run.next("Y")
    run.call("PUT", f"/v1/payments/{path(ref)}", payment_body(buyer, amount, received, allocs), (201,))
    run.payments[ref] = Pay(buyer, amount, received, allocs)
    run.touched(buyer)
    run.check()


def op_reverse(data: st.DataObject, run: Run) -> None:
    if not run.payments:
        return
    ref = data.draw(st.sampled_from(sorted(run.payments)), label="reversed payment")
    pay = run.payments[ref]
    run.call("DELETE", f"/v1/payments/{path(ref)}", expect=(200,))
    if not pay.reversed:
        run.touched(pay.buyer)
    pay.reversed = True
    run.check()


def op_correct_payment(data: st.DataObject, run: Run) -> None:
    """The same payment_ref again with another amount (keeping or dropping its allocations): 409 once reversed."""
    if not run.payments:
        return
    ref = data.draw(st.sampled_from(sorted(run.payments)), label="corrected payment")
    pay = run.payments[ref]
    allocs = pay.allocations if data.draw(st.booleans(), label="keep allocations") else []
    amount = another_amount(data, allocs, pay.amount)
    body = payment_body(pay.buyer, amount, pay.received_on, allocs)
    run.call("PUT", f"/v1/payments/{path(ref)}", body, (409,) if pay.reversed else (200,))
    if not pay.reversed:
        pay.amount, pay.allocations = amount, allocs
        run.touched(pay.buyer)
    run.check()


def op_invoice_batch(data: st.DataObject, run: Run) -> None:
    """POST /v1/invoices/batch: new invoices and corrections of existing ones over two or three buyers."""
    buyers = data.draw(st.lists(st.sampled_from(sorted(BUYERS)), min_size=2, max_size=3, unique=True), label="buyers")
    items: list[dict[str, Any]] = []
    refused: list[bool] = []
    used: set[str] = set()
    for _ in range(data.draw(st.integers(2, 6), label="items")):
        existing = sorted(set(run.invoices) - used)
        if bool(existing) and data.draw(st.booleans(), label="correction"):
            ref = data.draw(st.sampled_from(existing), label="corrected")
            buyer, amount, issue, due = correction_body(data, run, ref)
            if buyer not in buyers:
                buyer = run.invoices[ref].buyer if run.invoices[ref].buyer in buyers else buyers[0]
            refused.append(correction_refused(run, ref, buyer, amount))
        else:
            unused = [r for r in REF_POOL if r not in run.invoices and r not in used]
            ref = data.draw(st.sampled_from(unused), label="new ref") if bool(unused) and data.draw(
                st.booleans(), label="collation ref") else run.next("I")
            buyer = data.draw(st.sampled_from(buyers), label="buyer")
            amount, issue = data.draw(amount_cents, label="amount"), a_day(data, run, "issue")
            due = issue + terms(data)
            refused.append(False)
        used.add(ref)
        items.append({"invoice_ref": ref, "buyer_ref": buyer, "kind": "invoice", "currency": "EUR",
                      "amount": money(amount), "issue_date": issue.isoformat(), "due_date": due.isoformat()})
    out = run.call("POST", "/v1/invoices/batch", {"items": items}, (200,))
    for item, result, no in zip(items, out["items"], refused, strict=True):
        assert (result["outcome"] == "rejected") == no, f"{item}: {result}\n" + run.trail()
        ref, before = item["invoice_ref"], run.invoices.get(item["invoice_ref"])
        if result["outcome"] in ("created", "updated"):
            run.touched(item["buyer_ref"], *([before.buyer] if before else []))
            run.invoices[ref] = Inv(item["buyer_ref"], cents_of(item["amount"]), date.fromisoformat(
                item["issue_date"]), date.fromisoformat(item["due_date"]), run.invoice(ref)["revision"])
    run.check()


def op_payment_batch(data: st.DataObject, run: Run) -> None:
    """POST /v1/payments/batch: new payments (allocated or not) and corrections of existing ones (another
    amount; a reversed one is rejected) over two or three buyers."""
    buyers = data.draw(st.lists(st.sampled_from(sorted(BUYERS)), min_size=2, max_size=3, unique=True), label="buyers")
    items: list[dict[str, Any]] = []
    expected: list[tuple[str, Pay, bool]] = []
    targets: set[str] = set()
    for _ in range(data.draw(st.integers(2, 5), label="items")):
        existing = sorted(set(run.payments) - {ref for ref, _, _ in expected})
        if bool(existing) and data.draw(st.booleans(), label="correction"):
            ref = data.draw(st.sampled_from(existing), label="corrected")
            old = run.payments[ref]
            amount = another_amount(data, old.allocations, old.amount)
            pay = Pay(old.buyer, amount, old.received_on, old.allocations, old.reversed)
            expected.append((ref, pay, old.reversed))
        else:
            buyer = data.draw(st.sampled_from(buyers), label="buyer")
            allocs = allocations(data, run, buyer, targets, "allocated to") if data.draw(
                st.booleans(), label="alloc") else []
            amount = sum(c for _, c in allocs) + data.draw(st.sampled_from([0, 10_000, 200_000]), label="extra")
            pay = Pay(buyer, max(amount, 100), a_day(data, run, "received", back=30), allocs)
            expected.append((run.next("Y"), pay, False))
        items.append({"payment_ref": expected[-1][0], **payment_body(pay.buyer, pay.amount, pay.received_on,
                                                                      pay.allocations)})
    out = run.call("POST", "/v1/payments/batch", {"items": items}, (200,))
    for (ref, pay, rejected), result in zip(expected, out["items"], strict=True):
        assert (result["outcome"] == "rejected") == rejected, f"{ref}: {result}\n" + run.trail()
        if not rejected:
            run.payments[ref] = pay
            run.touched(pay.buyer)
    run.check()


def op_limit(data: st.DataObject, run: Run) -> None:
    """A limit decision effective in the past (on the primary P or the Top Up T)."""
    buyer = data.draw(buyer_ref, label="buyer")
    policy = data.draw(st.sampled_from(["P", "P", "T"]), label="policy")
    status = data.draw(st.sampled_from(["granted", "granted", "reduced", "withdrawn", "refused"]), label="status")
    body: dict[str, Any] = {"buyer_ref": buyer, "status": status,
                            "effective_from": a_day(data, run, "effective").isoformat()}
    if status in ("granted", "reduced"):
        body["amount"] = money(data.draw(st.integers(100_000, 3_000_000), label="limit"))
    run.call("POST", f"/v1/policies/{policy}/limits", body, (201,))
    run.touched(buyer)
    run.check()


def op_claim(data: st.DataObject, run: Run) -> None:
    """A claim on open invoices: 409 when one of them is claimed already."""
    buyer = data.draw(buyer_ref, label="buyer")
    refs = [r for r in some_invoices(data, run, buyer, 2, "claimed") if run.open_cents(r) > 0]
    if not refs:
        return
    body = {"buyer_ref": buyer, "invoice_refs": refs, "filed_on": a_day(data, run, "filed", back=10).isoformat()}
    again = bool(set(refs) & run.claimed)
    run.call("POST", "/v1/claims", body, (409,) if again else (201,))
    if not again:
        run.claimed.update(refs)
        run.touched(buyer)
    run.check()


def op_clock(data: st.DataObject, run: Run) -> None:
    """Days pass: the stored rows stay valued on the day they were computed until something touches them."""
    run.today += timedelta(days=data.draw(st.integers(1, 30), label="days"))
    run.clock.set(run.today)
    run.fresh.clear()
    run.log.append(f"clock -> {run.today}")
    run.check()


OPERATIONS = {
    "invoice": (op_invoice, 3), "same_day": (op_same_day, 2), "correct": (op_correct, 3),
    "credit_note": (op_credit_note, 2), "payment": (op_payment, 3), "reverse": (op_reverse, 2),
    "correct_payment": (op_correct_payment, 2), "invoice_batch": (op_invoice_batch, 2),
    "payment_batch": (op_payment_batch, 2), "limit": (op_limit, 2), "claim": (op_claim, 2), "clock": (op_clock, 2),
}
operation = st.sampled_from([name for name, (_, weight) in OPERATIONS.items() for _ in range(weight)])


def set_up(data: st.DataObject, run: Run) -> None:
    """Policies (the primary with a maximum extension: stops of cover), three buyers with limits, and B1's many
    invoices in one batch, over a few delivery days (same-day runs whose references sort apart by collation)."""
    extension = data.draw(st.sampled_from([0, 10, 30, 60]), label="max_extension_days")
    run.call("PUT", "/v1/policies/P", PRIMARY | {"max_extension_days": extension}, (201,))
    run.call("PUT", "/v1/policies/T", TOP_UP, (201,))
    for ref, country in BUYERS.items():
        run.call("PUT", f"/v1/buyers/{ref}", {"name": ref, "country": country}, (201,))
        run.call("POST", "/v1/policies/P/limits", {
            "buyer_ref": ref, "status": "granted", "effective_from": START.isoformat(),
            "amount": money(data.draw(st.integers(100_000, 3_000_000), label=f"{ref} limit"))}, (201,))
    run.call("POST", "/v1/policies/T/limits", {"buyer_ref": "B1", "status": "granted",
                                               "effective_from": START.isoformat(), "amount": "5000.00"}, (201,))
    run.touched(*BUYERS)
    run.check()
    days = data.draw(st.lists(st.integers(0, (run.today - START).days), min_size=3, max_size=8, unique=True),
                     label="delivery days")
    items = []
    for k in range(data.draw(st.integers(20, 40), label="B1 invoices")):
        issue = run.today - timedelta(days=data.draw(st.sampled_from(days), label="day"))
        due = issue + terms(data)
        ref = f"{'m' if k % 2 else 'M'}{k}"  # "M2" < "m1" < "m11" < "m3" by code point; "m1" < "m11" < "M2" by ICU
        amount = data.draw(st.integers(10_000, 300_000), label="amount")
        items.append({"invoice_ref": ref, "buyer_ref": "B1", "kind": "invoice", "currency": "EUR",
                      "amount": money(amount), "issue_date": issue.isoformat(), "due_date": due.isoformat()})
        run.invoices[ref] = Inv("B1", amount, issue, due)
    out = run.call("POST", "/v1/invoices/batch", {"items": items}, (200,))
    assert out["created"] == len(items), out
    run.check()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_incremental_cover_equals_recompute_after_every_operation(app, database, make_tenant, clock, monkeypatch,
                                                                   data):
    clock.set(VALUATION_DATE)  # the fixture restores it after the test only, not between examples
    # A re-walk stops a few invoices past the latest change when it is back in the stored walk's state (a large
    # buyer's: 256 or 2,048 past it); here after 1 or 3, so that the few invoices of these buyers take that path too.
    monkeypatch.setattr(exposure_service, "WINDOWS", (1, 3))
    tenant = make_tenant()
    run = Run(tenant.client, app, database, tenant.id, clock)
    set_up(data, run)
    for _ in range(data.draw(st.integers(8, 30), label="operations")):
        name = data.draw(operation, label="operation")
        run.event(f"operation {name}")
        OPERATIONS[name][0](data, run)


def test_same_day_invoices_walk_in_code_point_order(app, database, make_tenant, clock):
    """The collation trap by hand: under a locale collation PostgreSQL orders "b10" < "B2" < "b9"; the engine
    walks B2 < b10 < b9 (code points), and so must the stored exposure after every change."""
    clock.set(VALUATION_DATE)
    tenant = make_tenant()
    run = Run(tenant.client, app, database, tenant.id, clock, in_hypothesis=False)
    run.call("PUT", "/v1/policies/P", PRIMARY, (201,))
    run.call("PUT", "/v1/buyers/B1", {"name": "B1", "country": "FR"}, (201,))
    run.call("POST", "/v1/policies/P/limits", {"buyer_ref": "B1", "status": "granted", "amount": "1000.00",
                                               "effective_from": "2026-01-01"}, (201,))
    run.check()
    for ref in ("b9", "B2", "b10"):
        run.put_invoice(ref, "B1", 60_000, date(2026, 3, 2), date(2026, 4, 30))
        run.check()
    run.call("PUT", "/v1/payments/PAY-1", payment_body("B1", 10_000, date(2026, 3, 10), [("b9", 10_000)]), (201,))
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
    row = run.call("GET", "/v1/exposure/buyers/B1", expect=(200,))
    walk = [(i["invoice_ref"], Decimal(i["open_balance"]), Decimal(i["covered_primary"])) for i in row["invoices"]]
    assert walk == [("B2", Decimal(600), Decimal(600)), ("b10", Decimal(600), Decimal(400)),
                    ("b9", Decimal(500), Decimal(0))], walk


def test_a_change_of_terms_that_moves_every_cover_rewrites_them_exactly(app, database, make_tenant, clock):
    """Past 200 changed invoice covers a walk deletes them and writes them again (COPY on PostgreSQL) instead of
    one UPDATE each: the stored rows still equal a recomputation from scratch, under the corrected terms."""
    clock.set(VALUATION_DATE)
    tenant = make_tenant()
    api = tenant.client
    ok(api.put("/v1/policies/P", json=PRIMARY))
    helpers.buyer(api, "B1")
    limit(api, "10000000.00", "2026-01-01")
    items = [{"invoice_ref": f"R{n:03d}", "buyer_ref": "B1", "currency": "EUR", "amount": "100.00",
              "issue_date": "2026-03-01", "due_date": "2026-04-30"} for n in range(250)]
    assert ok(api.post("/v1/invoices/batch", json={"items": items}))["created"] == 250
    assert Decimal(exposure(api)["indemnifiable"]) == Decimal("22500.00")  # 250 x 100 x 0.90
    ok(api.put("/v1/policies/P", json=PRIMARY | {"indemnity_rate": "0.80", "effective_from": "2026-01-01"}))
    assert Decimal(exposure(api)["indemnifiable"]) == Decimal("20000.00")
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
    with database.session(tenant.id) as session:
        assert len(session.scalars(select(InvoiceCover.id)).all()) == 250


def test_a_payment_of_the_oldest_invoices_walks_and_rewrites_only_what_it_moves(app, database, make_tenant, clock,
                                                                             monkeypatch):
    """Cash applied to a buyer's oldest invoices moves the invoices after them until the limit it freed is used
    again; from there the walk is in the stored walk's state and nothing after moves but positions. The walk stops
    a little past that point (not through the buyer's 600 invoices), the paid invoices' rows go, the few that the
    freed limit now covers are rewritten, the others stay the same rows at the same positions (`seq`); the stored
    rows still equal a walk from scratch."""
    clock.set(VALUATION_DATE)
    tenant = make_tenant()
    api = tenant.client
    ok(api.put("/v1/policies/P", json=PRIMARY))
    helpers.buyer(api, "B1")
    limit(api, "1000.00", "2026-01-01")  # ten invoices of 100 fill it
    first = date(2026, 1, 5)
    items = [{"invoice_ref": f"R{n:03d}", "buyer_ref": "B1", "currency": "EUR", "amount": "100.00",
              "issue_date": (first + timedelta(days=n // 10)).isoformat(),
              "due_date": (first + timedelta(days=n // 10 + 60)).isoformat()} for n in range(600)]
    assert ok(api.post("/v1/invoices/batch", json={"items": items}))["created"] == 600

    def covers() -> dict[str, tuple[int, int, Decimal]]:
        with database.session(tenant.id) as session:
            return {c.invoice_ref: (c.id, c.seq, c.covered_primary) for c in session.scalars(select(InvoiceCover))}

    walked: list[int] = []
    evaluate = engine.evaluate

    def counting(**kw: Any) -> Any:
        walked.append(len(kw["items"]))
        return evaluate(**kw)

    before = covers()
    assert [before[f"R{n:03d}"][2] for n in (9, 10)] == [Decimal(100), Decimal(0)]
    monkeypatch.setattr(engine, "evaluate", counting)
    ok(api.put("/v1/payments/PAY-1", json={"buyer_ref": "B1", "currency": "EUR", "amount": "200.00",
                                          "received_on": "2026-03-10"}))  # applied to R000 and R001
    monkeypatch.undo()
    assert walked and max(walked) < 598, walked  # not to the end of the buyer's walk
    after = covers()
    assert set(before) - set(after) == {"R000", "R001"}
    assert [after[f"R{n:03d}"][2] for n in (10, 11, 12)] == [Decimal(100), Decimal(100), Decimal(0)]
    kept = [f"R{n:03d}" for n in range(12, 600)]  # past the limit before and after: not rewritten
    assert [after[r] for r in kept] == [before[r] for r in kept]
    assert jobs.recompute(database, app.state.settings, tenant_id=tenant.id, check_only=True) == []
    row = exposure(api)
    assert Decimal(row["covered_primary"]) == Decimal(1000) and Decimal(row["outstanding"]) == Decimal(59800)
    assert Decimal(row["indemnifiable"]) == Decimal(900)
