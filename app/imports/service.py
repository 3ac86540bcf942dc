"""Importing a CSV: rows validated as the JSON API validates them, written in batches through the same service
functions as the batch endpoints, each batch its own transaction. Idempotent: a row that is already stored as it
says is `unchanged`, and importing the same file twice changes nothing.

Invoices and payments do not re-walk their buyers' cover in every batch: each batch marks the buyers it wrote to
stale and queues a revaluation in its own transaction (app.exposure.revaluation), and the import runs it at its
end, each buyer walked once whatever the number of batches that touched it. Exposure and alerts are current
when the import returns; an import cut off half-way leaves its batches and their queued revaluation, which any
runner (`coverwatch worker`, the scheduler of `coverwatch serve`) completes.

Payments take one row per allocation: the rows of one payment follow each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

from pydantic import ValidationError

from app.core.context import Context
from app.core.db import analyze
from app.core.errors import ProblemError, validation_problem
from app.core.fields import REF_PATTERN
from app.cover import service as cover_service
from app.cover.models import LimitDecision
from app.cover.schemas import LimitIn
from app.exposure.models import BuyerExposure, InvoiceCover
from app.imports import parsing
from app.imports import repository as repo
from app.imports.schemas import ImportOut, RejectedRow
from app.ledger import service as ledger_service
from app.ledger.models import Allocation, Buyer, Invoice, Payment
from app.ledger.schemas import BuyerIn

BATCH = 5000
DEFERRED = frozenset({"invoices", "payments"})  # kinds whose exposure is revalued once, at the end of the import
# A bulk load refreshes the planner's statistics of the tables it grows (PostgreSQL; autovacuum comes minutes later,
# if it is on): every ANALYZE_EVERY rows written, and at the end from ANALYZE_MIN. With the statistics of a small
# table, PostgreSQL looked a batch's 5,000 references up by reading the tenant's whole index (170 ms a batch at
# 1,000,000 invoices, 2 ms after ANALYZE).
ANALYZE_EVERY = 100_000
ANALYZE_MIN = 10_000
GROWS: dict[str, tuple[type, ...]] = {"invoices": (Invoice,), "payments": (Payment, Allocation), "buyers": (Buyer,),
                                      "limits": (LimitDecision,)}
_REF = re.compile(REF_PATTERN)


@dataclass
class _Item:
    lines: list[int]
    ref: str | None
    data: dict[str, Any]
    outcome: str = "rejected"
    reason: str | None = None


@dataclass
class Tally:
    kind: str
    rows: int = 0
    items: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("created", "updated", "unchanged",
                                                                          "rejected"), 0))
    rejected_rows: list[RejectedRow] = field(default_factory=list)
    seconds: float = 0.0

    def out(self) -> ImportOut:
        return ImportOut(kind=self.kind, rows=self.rows, items=self.items,  # type: ignore[arg-type]
                         rejected_rows=self.rejected_rows, **self.counts)


def _reason(errors: list[dict[str, str]], detail: str) -> str:
    """`column: what is wrong`, for each error (the detail of a domain error names its field already)."""
    parts = []
    for e in errors:
        name = e["pointer"].lstrip("/") or "row"
        parts.append(e["detail"] if e["detail"].startswith(name.split("/")[0] + ":") else f"{name}: {e['detail']}")
    return "; ".join(parts) or detail


def reason(problem: ProblemError) -> str:
    return _reason(problem.errors, problem.detail)


# --- rows into items --------------------------------------------------------------------------------


def _items(kind: str, rows: Iterator[tuple[int, dict[str, str]]]) -> Iterator[_Item]:
    if kind != "payments":
        ref_field = {"buyers": "buyer_ref", "invoices": "invoice_ref", "limits": "decision_ref"}[kind]
        for line, row in rows:
            item = _Item([line], row.get(ref_field) or row.get("buyer_ref"), row)
            if "__error__" in row:
                item.reason = row["__error__"]
            yield item
        return
    current: _Item | None = None
    for line, row in rows:
        ref = row.get("payment_ref")
        if current is not None and ref is not None and ref == current.ref and "__error__" not in row:
            _allocate(current, line, row)
            continue
        if current is not None:
            yield current
        current = _Item([line], ref, {k: v for k, v in row.items() if not k.startswith("allocated_")})
        if "__error__" in row:
            current.reason = row["__error__"]
        else:
            current.data["allocations"] = []
            _allocate(current, line, row)
    if current is not None:
        yield current


def _allocate(item: _Item, line: int, row: dict[str, str]) -> None:
    if item.lines[-1] != line:
        item.lines.append(line)
        for k, v in row.items():
            if not k.startswith("allocated_") and item.data.get(k) != v and item.reason is None:
                item.reason = f"line {line}: {k} '{v}' differs from the payment's first row ('{item.data.get(k)}')"
    if "allocated_invoice_ref" in row or "allocated_amount" in row:
        item.data["allocations"].append({"invoice_ref": row.get("allocated_invoice_ref"),
                                         "amount": row.get("allocated_amount")})


# --- writing a batch --------------------------------------------------------------------------------


def _write_ledger(ctx: Context, kind: str, batch: list[_Item]) -> None:
    valid = [i for i in batch if i.reason is None]
    ingest = ledger_service.invoice_items if kind == "invoices" else ledger_service.payment_items
    for item, res in zip(valid, ingest(ctx, [i.data for i in valid]), strict=True):
        item.outcome = res.outcome
        if res.problem is not None:
            item.reason = reason(res.problem)


def _write_buyers(ctx: Context, batch: list[_Item]) -> None:
    valid: list[tuple[_Item, str, BuyerIn]] = []
    for item in batch:
        if item.reason is not None:
            continue
        data = dict(item.data)
        ref = data.pop("buyer_ref", None)
        if ref is None or not _REF.match(ref):
            item.reason = "buyer_ref: required, letters, digits and . _ : - (at most 100)"
            continue
        try:
            body = BuyerIn.model_validate(data)
        except ValidationError as exc:
            item.reason = reason(validation_problem(exc.errors()))
            continue
        valid.append((item, ref, body))
    written = ledger_service.upsert_buyers(ctx, [(ref, body) for _, ref, body in valid])
    for (item, _, _), (_, outcome) in zip(valid, written, strict=True):
        item.outcome = outcome


_DECISION_FIELDS = ("status", "amount", "effective_from", "expires_on", "source", "decision_ref",
                    "max_credit_period_days")


def _wanted(body: LimitIn) -> tuple[Any, ...]:
    wanted = body.model_dump(include=set(_DECISION_FIELDS))
    if wanted["amount"] is None:
        wanted["amount"] = Decimal(0)
    return tuple(wanted[f] for f in _DECISION_FIELDS)


def _same_decision(d: Any, body: LimitIn) -> bool:
    return tuple(getattr(d, f) for f in _DECISION_FIELDS) == _wanted(body)


def _write_limits(ctx: Context, batch: list[_Item]) -> None:
    parsed: list[tuple[_Item, str, LimitIn]] = []
    for item in batch:
        if item.reason is not None:
            continue
        data = dict(item.data)
        policy_ref = data.pop("policy_ref", None)
        if policy_ref is None or not _REF.match(policy_ref):
            item.reason = "policy_ref: required, letters, digits and . _ : - (at most 100)"
            continue
        try:
            parsed.append((item, policy_ref, LimitIn.model_validate(data)))
        except ValidationError as exc:
            item.reason = reason(validation_problem(exc.errors()))
    recorded = repo.decisions_of(ctx.session, [(p, b.buyer_ref) for _, p, b in parsed])
    new: list[tuple[_Item, str, LimitIn]] = []
    first: dict[tuple[Any, ...], int] = {}  # a decision of the file by what it says -> its place in `new`
    again: list[tuple[_Item, int]] = []  # the same decision again in the file: it goes as the first one went
    for item, policy_ref, body in parsed:
        if any(_same_decision(d, body) for d in recorded[(policy_ref, body.buyer_ref)]):
            item.outcome = "unchanged"  # decisions are history: the same one is not recorded twice
            continue
        key = (policy_ref, body.buyer_ref, *_wanted(body))
        if key in first:
            again.append((item, first[key]))
            continue
        first[key] = len(new)
        new.append((item, policy_ref, body))
    results = cover_service.add_limits(ctx, [(p, b) for _, p, b in new])
    for (item, _, _), result in zip(new, results, strict=True):
        if isinstance(result, ProblemError):
            item.reason = reason(result)
        else:
            item.outcome = "created"
    for item, n in again:
        result = results[n]
        if isinstance(result, ProblemError):
            item.reason = reason(result)
        else:
            item.outcome = "unchanged"


def _write(ctx: Context, kind: str, batch: list[_Item]) -> None:
    if kind in ("invoices", "payments"):
        _write_ledger(ctx, kind, batch)
    elif kind == "buyers":
        _write_buyers(ctx, batch)
    else:
        _write_limits(ctx, batch)


# --- the import -------------------------------------------------------------------------------------


def _end(batch: list[_Item]) -> int:
    """Where a full batch of ledger items ends: before the rows of its last buyer, which go with the next batch
    (unless they fill the whole batch). In a file sorted by buyer, as ERP exports usually are, no buyer then
    straddles two batches, and the revaluation of one batch (the process alongside) never waits for the writing
    of the next, nor the writing for it: 1,000,000 rows over 1,500 buyers took 56.7 s when batches ended every
    5,000 rows, and one buyer in each batch was wanted by both."""
    last = batch[-1].data.get("buyer_ref")
    end = len(batch)
    while end and batch[end - 1].data.get("buyer_ref") == last:
        end -= 1
    return end or len(batch)


def import_csv(
    ctx: Context, kind: str, stream: TextIO, *, commit: Callable[[], None], revalue: Callable[[], object],
    batch_size: int = BATCH, on_batch: Callable[[Tally], None] | None = None,
    on_reject: Callable[[RejectedRow], None] | None = None,
) -> Tally:
    """Read `stream` (a CSV of `kind`), write it batch by batch, call `commit` after each batch, then `revalue`
    (run the tenant's queued revaluation) when ledger rows were written. Rejected rows go to `on_reject` (default:
    kept in the tally)."""
    tally = Tally(kind)
    batch_size = max(1, min(batch_size, ctx.settings.max_batch_items))
    reject = on_reject or tally.rejected_rows.append

    analyzed = 0  # rows created or updated when the statistics were last refreshed

    def refresh_statistics(models: tuple[type, ...]) -> None:
        nonlocal analyzed
        analyze(ctx.session, *models)
        commit()
        analyzed = tally.counts["created"] + tally.counts["updated"]

    def flush(batch: list[_Item]) -> None:
        _write(ctx, kind, batch)
        commit()
        for item in batch:
            tally.items += 1
            if item.reason is not None:
                item.outcome = "rejected"
                for line in item.lines:
                    reject(RejectedRow(line=line, ref=item.ref, reason=item.reason))
            tally.counts[item.outcome] += 1
        if tally.counts["created"] + tally.counts["updated"] - analyzed >= ANALYZE_EVERY:
            refresh_statistics(GROWS[kind])
        if on_batch is not None:
            on_batch(tally)

    def counted() -> Iterator[tuple[int, dict[str, str]]]:
        for line, row in parsing.rows(kind, stream):
            tally.rows += 1
            yield line, row

    deferred = kind in DEFERRED
    ctx.defer_exposure = deferred
    batch: list[_Item] = []
    try:
        for item in _items(kind, counted()):
            batch.append(item)
            if len(batch) >= batch_size:
                end = _end(batch) if deferred else len(batch)
                flush(batch[:end])
                batch = batch[end:]
        if batch:
            flush(batch)
    finally:
        ctx.defer_exposure = False
    written = tally.counts["created"] + tally.counts["updated"]
    if written - analyzed >= ANALYZE_MIN:
        refresh_statistics(GROWS[kind])
    if deferred and tally.items:
        revalue()
    if deferred and written >= ANALYZE_MIN:
        refresh_statistics((InvoiceCover, BuyerExposure))
    return tally
