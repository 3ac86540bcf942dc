"""Stored exposure: recomputed for the buyers a change touches, in the same transaction.

Dashboards read the stored rows (one per buyer) and never sum the ledger at
request time. `recompute` rebuilds every row from scratch; `check` tells what
differs from what is stored (it must be nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, literal, select, update

from app.core.clock import utcnow
from app.core.context import Context
from app.core.db import COPY_FROM_ROWS, in_list, insert_rows, update_rows
from app.core.errors import FxRateMissing, Invalid
from app.core.money import quantize
from app.cover import engine
from app.cover import repository as cover_repo
from app.cover.inputs import CoverInputs, engine_decisions
from app.cover.models import StopOfCover
from app.exposure import repository as repo
from app.exposure import totals
from app.exposure.changes import Since
from app.exposure.models import BuyerExposure, ExposureSnapshot, InvoiceCover
from app.exposure.schemas import CreditCheckIn, CreditCheckOut, Reason
from app.ledger import repository as ledger_repo
from app.ledger.models import Buyer
from app.tenants.models import Tenant

# Buyers walked, stored and settled together. Its walks' rows are in memory at once: a backdated batch of 5,000
# invoices over 5,000 buyers read 24,000 stored covers for a chunk of 500 (2.3 KB each as rows: a web worker's peak
# 267 MB; 196 MB by chunks of 250, for 5-8% more time).
CHUNK = 250
# The utilisation column holds up to 999,999.9999 (exposure a million times the limits): above, it is stored capped.
UTILISATION_MAX = Decimal("999999.9999")


def bump_version(ctx: Context) -> None:
    """Every dashboard ETag carries this version: bump it whenever stored exposure changes."""
    ctx.session.execute(
        update(Tenant).where(Tenant.id == ctx.tenant.id).values(exposure_version=Tenant.exposure_version + 1)
        .execution_options(synchronize_session=False)
    )


def _items(invoices: Iterable[Any], claimed: dict[int, date]) -> dict[int, list[engine.OpenItem]]:
    out: dict[int, list[engine.OpenItem]] = defaultdict(list)
    for i in invoices:
        out[i.buyer_id].append(engine.OpenItem(
            ref=i.ref, currency=i.currency, open_balance=i.open_balance, issue_date=i.issue_date,
            due_date=i.due_date, original_due_date=i.original_due_date, claim_filed_on=claimed.get(i.id),
        ))
    return out


def _decisions(ctx: Context, ids: list[int], inputs: CoverInputs) -> dict[int, list[engine.Decision]]:
    decisions: dict[int, list[engine.Decision]] = defaultdict(list)
    for row in cover_repo.decisions_of_buyers(ctx.session, ids):
        decisions[row.buyer_id].extend(engine_decisions([row], inputs.refs_by_id))
    return decisions


def _stops_from_history(ctx: Context, buyers: list[Buyer], inputs: CoverInputs) -> dict[int, list[engine.StopPeriod]]:
    if not buyers:
        return {}
    history: dict[int, list[engine.HistoryItem]] = defaultdict(list)
    # A stop starts on an original due date + the maximum extension: only invoices due before today can have one.
    for i in ledger_repo.stop_history(ctx.session, [b.id for b in buyers], due_before=inputs.valued_on):
        history[i.buyer_id].append(engine.HistoryItem(i.ref, i.issue_date, i.original_due_date, i.settled_on))
    return {b.id: engine.stop_periods(country=b.country, history=history.get(b.id, []), policies=inputs.policies,
                                      valued_on=inputs.valued_on) for b in buyers}


def evaluate_buyers(
    ctx: Context, buyers: list[Buyer], inputs: CoverInputs,
    extra: dict[int, list[engine.OpenItem]] | None = None, invoice_ids: dict[str, int] | None = None,
) -> list[tuple[Buyer, engine.BuyerCover]]:
    """The engine's result for each buyer, from all its open invoices (plus `extra` hypothetical ones) and the
    stop-of-cover periods its invoice history gives. `invoice_ids` receives the invoices' ids by reference."""
    session = ctx.session
    ids = [b.id for b in buyers]
    invoices = ledger_repo.open_items(session, ids)
    if invoice_ids is not None:
        invoice_ids.update((i.ref, i.id) for i in invoices)
    items = _items(invoices, repo.claimed_invoices(session, ids))
    decisions = _decisions(ctx, ids, inputs)
    stops_of = _stops_from_history(ctx, buyers, inputs)
    out = []
    for b in buyers:
        stops = stops_of[b.id]
        out.append((b, engine.evaluate(
            country=b.country, items=[*items.get(b.id, []), *(extra or {}).get(b.id, [])], policies=inputs.policies,
            decisions=decisions.get(b.id, []), valued_on=inputs.valued_on, rates=inputs.rates,
            default_currency=ctx.tenant.currency, stops=stops,
        )))
    return out


def _stop_key(stop: engine.StopPeriod) -> tuple[str, str, str | None, tuple[str, ...]]:
    return (stop.policy_ref, stop.starts_on.isoformat(), stop.ends_on.isoformat() if stop.ends_on else None,
            tuple(stop.invoice_refs))


def _stored_stop(row: StopOfCover, inputs: CoverInputs) -> engine.StopPeriod:
    """A stored stop-of-cover row as the engine's period."""
    return engine.StopPeriod(inputs.refs_by_id.get(row.policy_id, ""), row.starts_on, row.ends_on,
                             tuple(row.invoice_refs))


def store_stops(ctx: Context, results: list[tuple[Buyer, engine.BuyerCover]], inputs: CoverInputs) -> None:
    """Keep each buyer's stop-of-cover periods as rows (what the buyer's exposure and the console show)."""
    session = ctx.session
    stored: dict[int, list[StopOfCover]] = defaultdict(list)
    for row in cover_repo.stops_of_buyers(session, [b.id for b, _ in results]):
        stored[row.buyer_id].append(row)
    ids = inputs.ids_by_ref
    gone: list[int] = []
    added: list[dict[str, Any]] = []
    for buyer, result in results:
        wanted = {_stop_key(s): s for s in result.stop_periods}
        have = {_stop_key(_stored_stop(r, inputs)): r for r in stored[buyer.id]}
        gone += [row.id for key, row in have.items() if key not in wanted]
        added += [{"tenant_id": ctx.tenant.id, "buyer_id": buyer.id, "policy_id": ids[stop.policy_ref],
                   "starts_on": stop.starts_on, "ends_on": stop.ends_on, "invoice_refs": list(stop.invoice_refs)}
                  for key, stop in wanted.items() if key not in have]
    # A period that changed is deleted before its new version is added; one statement each.
    if gone:
        session.execute(delete(StopOfCover).where(in_list(StopOfCover.id, gone)))
    insert_rows(session, StopOfCover, added)


def row_values(buyer: Buyer, r: engine.BuyerCover, invoice_count: int) -> dict[str, Any]:
    """The buyer's stored row (its invoices are rows of their own: `cover_rows`)."""
    c = r.currency

    def s(amount: Decimal) -> str:
        return str(quantize(amount, c))

    values: dict[str, Any] = {f: quantize(getattr(r, f), c) for f in engine.AMOUNT_FIELDS}
    utilisation = None if r.utilisation is None else min(r.utilisation, UTILISATION_MAX)
    values.update(
        buyer_ref=buyer.ref, buyer_name=buyer.name, country=buyer.country, currency=c, valued_on=r.valued_on,
        utilisation=utilisation, status=r.status, errors=list(r.errors), error_count=len(r.errors),
        updated_at=utcnow(),
        detail={
            "stop_of_cover_from": r.stop_of_cover_from.isoformat() if r.stop_of_cover_from else None,
            "stop_periods": [{"policy_ref": p.policy_ref, "starts_on": p.starts_on.isoformat(),
                              "ends_on": p.ends_on.isoformat() if p.ends_on else None,
                              "invoice_refs": list(p.invoice_refs)} for p in r.stop_periods],
            "missing_rates": sorted(f"{a}/{b}" for a, b in r.missing_rates),
            "limits": [{"policy_ref": x.policy_ref, "layer": x.layer, "amount": s(x.amount), "source": x.source,
                        "expires_on": x.expires_on.isoformat() if x.expires_on else None} for x in r.limits],
            "invoice_count": invoice_count,
        },
    )
    return values


def _exact(amount: Decimal) -> str:
    """An exact amount in one spelling whatever the arithmetic that gave it ("27900.0000" and "27900.00000000" are
    both "27900"): a resumed walk and a walk from scratch store the same text."""
    return f"{amount.normalize():f}"


def cover_values(i: engine.InvoiceCover, currency: str) -> dict[str, Any]:
    """One invoice's stored cover (an `InvoiceCover` row but its ids and position)."""
    return {
        "invoice_ref": i.invoice_ref, "issue_date": i.issue_date, "due_date": i.due_date, "currency": currency,
        "open_balance": quantize(i.open_balance, currency),
        "covered_primary": quantize(i.covered_primary, currency),
        "covered_top_up": quantize(i.covered_top_up, currency), "uncovered": quantize(i.uncovered, currency),
        "indemnifiable": quantize(i.indemnifiable, currency), "reason": i.reason,
        "claim_deadline": i.claim_deadline, "claim_filed_on": i.claim_filed_on,
        "original_currency": i.original_currency,
        "original_open_balance": quantize(i.original_open_balance, i.original_currency)
        if i.original_open_balance is not None and i.original_currency else None,
        "primary_policy_ref": i.primary_policy_ref, "state": _walk_state(i),
    }


def _walk_state(i: engine.InvoiceCover) -> dict[str, Any]:
    """What the walk has consumed up to and including this invoice, as stored (`InvoiceCover.state`)."""
    return {"used": {ref: _exact(amount) for ref, amount in sorted((i.used_after or {}).items())},
            "indemnifiable": _exact(i.indemnifiable_after)}


NO_STATE = {"used": {}, "indemnifiable": "0"}  # before a buyer's first invoice


COVER_KEYS = ("seq", "invoice_id", "invoice_ref", "issue_date", "due_date", "currency", "open_balance",
              "covered_primary", "covered_top_up", "uncovered", "indemnifiable", "reason", "claim_deadline",
              "claim_filed_on", "original_currency", "original_open_balance", "primary_policy_ref", "state")


@dataclass
class _Walk:
    """One buyer's walk in a refresh: whole, or from `since` on (incremental)."""

    buyer: Buyer
    result: engine.BuyerCover
    invoice_count: int
    whole: bool = True
    since: date | None = None  # incremental: the buyer's invoices delivered from this day are re-walked
    first_seq: int = 0  # the position of the first invoice re-walked
    scope: set[str] = field(default_factory=set)  # incremental: the invoices re-walked, before and after
    # incremental: the stored covers re-walked, as (row id, *COVER_KEYS)
    replaced: list[tuple[Any, ...]] = field(default_factory=list)
    stops_read: bool = True  # False: the stored stops of cover were taken as they are (nothing could move them)

    @property
    def rewritten(self) -> bool:
        return self.whole or self.since is not None


def _whole_walks(ctx: Context, buyers: list[Buyer], inputs: CoverInputs, invoice_ids: dict[str, int]) -> list[_Walk]:
    if not buyers:
        return []
    return [_Walk(b, r, len(r.invoices)) for b, r in evaluate_buyers(ctx, buyers, inputs, invoice_ids=invoice_ids)]


def _resumable(row: Any, buyer: Buyer, inputs: CoverInputs) -> bool:
    """Whether a buyer's stored walk can be resumed: valued today under the inputs in force (not stale), with
    every conversion known (a missing rate knocks a layer out for the whole buyer), in the same country."""
    return (row is not None and row.valued_on == inputs.valued_on and not row.stale and not row.errors
            and row.country == buyer.country and "invoice_count" in (row.detail or {}))


# A stored cover as _Walk.replaced holds it, from a tail row (repo.TAIL_COLUMNS): (row id, *COVER_KEYS).
_replaced = itemgetter(*(repo.TAIL_COLUMNS.index(k) for k in ("id", *COVER_KEYS)))

WINDOWS = (256, 2048)  # invoices walked past the latest change before the walk is expected back in step


def _window(last: date | None, old: list[Any], items: list[engine.OpenItem], extra: int
            ) -> tuple[list[Any], list[engine.OpenItem], Any] | None:
    """A buyer's re-walk up to the latest changed delivery date (`Since.last`) and `extra` invoices past it: the
    stored covers it replaces, the invoices to walk and the stored cover that follows them. None (walk to the end)
    when the invoices past that date are not the stored ones, or not many more than `extra` (a window that does
    not end back in step is walked again whole: at most half of it)."""
    if last is None:
        return None
    rest = [t for t in old if t.issue_date > last]  # `old` in walk order
    if len(rest) <= 2 * extra:
        return None
    later = sorted((i for i in items if i.issue_date > last and i.open_balance > 0),
                   key=lambda i: (i.issue_date, i.ref))
    if [t.invoice_ref for t in rest] != [i.ref for i in later]:
        return None
    walked = {t.invoice_ref for t in rest[:extra]}
    return (old[: len(old) - len(rest) + extra], [i for i in items if i.issue_date <= last or i.ref in walked],
            rest[extra])


def _positions(stored: Mapping[int, int], invoice_ids: list[int], first: int) -> list[int]:
    """The positions (`seq`) of a walk's rows from `first` on: an invoice keeps its stored position while it stays
    in order with the rows before it; a new one, or one out of order, takes the next."""
    out = []
    seq = first - 1
    for invoice_id in invoice_ids:
        kept = stored.get(invoice_id)
        seq = kept if kept is not None and kept > seq else seq + 1
        out.append(seq)
    return out


def _partial_walks(
    ctx: Context, buyers: list[Buyer], inputs: CoverInputs, stored: dict[int, Any], since: Mapping[int, Since],
    invoice_ids: dict[str, int],
) -> tuple[list[_Walk], list[Buyer]]:
    """Re-walk each buyer from the earliest changed delivery date only, resuming from the stored state of the last
    invoice before it; the cost is that of the invoices re-walked, plus indexed lookups. Returns the walks and
    the buyers that must be walked whole after all (a conversion turned out missing)."""
    if not buyers:
        return [], []
    session = ctx.session
    valued_on = inputs.valued_on
    by_id = {b.id: b for b in buyers}
    start: dict[int, date | None] = {b.id: since[b.id].delivered for b in buyers}
    stops: dict[int, list[engine.StopPeriod]] = defaultdict(list)
    for row in cover_repo.stops_of_buyers(session, list(by_id)):
        stops[row.buyer_id].append(_stored_stop(row, inputs))
    # Stops of cover come from invoices unpaid past their original due date: only a change to such an invoice can
    # move them, and then the walk goes back to the day after the earliest period that moved.
    late = [by_id[b] for b, s in since.items() if b in by_id and s.due is not None and s.due < valued_on]
    rechecked = {b.id for b in late}
    moved: set[int] = set()  # buyers whose stops moved: walked to the end (a period reaches past any change)
    for b, new in _stops_from_history(ctx, late, inputs).items():
        old_keys = {_stop_key(p): p for p in stops[b]}
        new_keys = {_stop_key(p): p for p in new}
        for key in old_keys.keys() ^ new_keys.keys():
            day = (old_keys.get(key) or new_keys[key]).starts_on + timedelta(days=1)
            first = start[b]
            start[b] = day if first is None else min(first, day)
            moved.add(b)
        stops[b] = new
    prefixes = repo.walk_prefixes(session, start)
    tails = repo.walk_tails(session, {b: d for b, d in start.items() if d is not None})
    invoices = ledger_repo.open_items_from(session, {b: d for b, d in start.items() if d is not None})
    invoice_ids.update((i.ref, i.id) for i in invoices)
    items = _items(invoices, repo.claims_of_invoices(session, [i.id for i in invoices]))
    decisions = _decisions(ctx, list(by_id), inputs)
    walks: list[_Walk] = []
    whole: list[Buyer] = []
    for buyer in buyers:
        row = stored[buyer.id]
        old = sorted(tails.get(buyer.id, []), key=lambda t: (t.issue_date, t.seq))
        its = items.get(buyer.id, [])
        prefix = prefixes.get(buyer.id)
        first_seq = prefix.seq + 1 if prefix is not None else 0
        state = prefix.state if prefix is not None else NO_STATE

        def walk(replaced: list[Any], walked: list[engine.OpenItem], buyer: Buyer = buyer, row: Any = row,
                 state: dict[str, Any] = state) -> engine.BuyerCover:
            amounts = {f: getattr(row, f) for f in engine.PRIOR_FIELDS}
            for t in replaced:  # what the re-walked invoices counted for until now
                amounts["outstanding"] -= t.open_balance
                amounts[engine.bucket(t.due_date, valued_on)] -= t.open_balance
                for f in ("covered_primary", "covered_top_up", "uncovered"):
                    amounts[f] -= getattr(t, f)
            resume = engine.Resume(used={k: Decimal(v) for k, v in state.get("used", {}).items()},
                                   indemnifiable=Decimal(state.get("indemnifiable", "0")), amounts=amounts)
            return engine.evaluate(
                country=buyer.country, items=walked, policies=inputs.policies,
                decisions=decisions.get(buyer.id, []), valued_on=valued_on, rates=inputs.rates,
                default_currency=ctx.tenant.currency, stops=stops[buyer.id], resume=resume,
            )

        result: engine.BuyerCover | None = None
        replaced = old
        # A change early in a large buyer's walk (its oldest invoices paid) moves the invoices after it until the
        # limits it freed are used again; from there the walk is in the state the stored walk was in, and every
        # invoice after would be walked as before (their rows stand). So the walk goes a little past the latest
        # change first, and to the end only if it is not back in step by then: a payment of a large buyer's
        # oldest invoices walks a few hundred invoices, not its 20,000.
        # (Only where a limit was exceeded: with every invoice covered, what each layer has used keeps the difference
        # to the end, and the walk never gets back in step.)
        for extra in WINDOWS if buyer.id not in moved and row.uncovered > 0 else ():
            window = _window(since[buyer.id].last, old, its, extra)
            if window is None:
                break
            old_part, walked, after = window
            tried = walk(old_part, walked)
            if tried.errors:
                break
            seqs = _positions({t.invoice_id: t.seq for t in old_part},
                              [invoice_ids[i.invoice_ref] for i in tried.invoices], first_seq)
            if (tried.invoices and tried.invoices[-1].invoice_ref == old_part[-1].invoice_ref
                    and _walk_state(tried.invoices[-1]) == old_part[-1].state and seqs[-1] < after.seq):
                end = old[-1].state
                engine.walk_ends_as(tried, {k: Decimal(v) for k, v in end["used"].items()},
                                    Decimal(end["indemnifiable"]))
                result, replaced = tried, old_part
                break
        if result is None:
            result = walk(old, its)
        if result.errors or result.currency != row.currency:
            whole.append(buyer)
            continue
        walks.append(_Walk(
            buyer, result, invoice_count=row.detail["invoice_count"] - len(replaced) + len(result.invoices),
            whole=False, since=start[buyer.id], first_seq=first_seq,
            scope={t.invoice_ref for t in replaced} | {i.invoice_ref for i in result.invoices},
            replaced=[_replaced(t) for t in replaced], stops_read=buyer.id in rechecked,
        ))
    return walks, whole


def _store_covers(ctx: Context, walks: list[_Walk], invoice_ids: dict[str, int]) -> None:
    """Write what each buyer's walk changed in its invoice covers, a few statements for the chunk.

    The walk's rows are compared with the stored ones they replace (a whole walk: all of the buyer's; a walk from a
    day: those it re-walked), invoice by invoice, and only the rows that differ are written. An invoice keeps its
    position (`seq`) while it stays in order with those around it: a position orders the walk, it need not count
    it. So a payment of a buyer's oldest invoices, which re-walks its 20,000 from there, deletes the paid ones'
    rows and rewrites the few whose cover moved; numbered afresh, every row after them had moved (the walk's state
    past the limits does not change: measured, 1 of 19,157 rows)."""
    session = ctx.session
    tenant_id = ctx.tenant.id
    whole = [w for w in walks if w.whole]
    stored = repo.cover_rows(session, [w.buyer.id for w in whole], COVER_KEYS)
    inserts: list[dict[str, Any]] = []
    changed: list[tuple[int, dict[str, Any]]] = []  # (row id, new values with the buyer's id)
    gone: list[int] = []
    at_invoice = COVER_KEYS.index("invoice_id") + 1  # in a stored row: (row id, *COVER_KEYS)
    for w in walks:
        if not w.rewritten:
            continue
        old = stored.get(w.buyer.id, []) if w.whole else w.replaced
        by_invoice = {row[at_invoice]: row for row in old}
        ids = [invoice_ids[i.invoice_ref] for i in w.result.invoices]
        seqs = _positions({k: row[1] for k, row in by_invoice.items()}, ids, w.first_seq)
        for i, invoice_id, seq in zip(w.result.invoices, ids, seqs, strict=True):
            row = by_invoice.pop(invoice_id, None)
            values = {"tenant_id": tenant_id, "buyer_id": w.buyer.id, "seq": seq, "invoice_id": invoice_id,
                      **cover_values(i, w.result.currency)}
            if row is None:
                inserts.append(values)
            elif list(row[1:]) != [values[k] for k in COVER_KEYS]:
                changed.append((row[0], values))
        gone += [row[0] for row in by_invoice.values()]
    # A few changed rows are updated in place. Many (a change of terms moves every invoice of the tenant) are
    # deleted and written again by `insert_rows` (COPY): one UPDATE per row took 160 s for 1,000,000 covers.
    if len(changed) >= COPY_FROM_ROWS:
        gone += [row_id for row_id, _ in changed]
        inserts += [values for _, values in changed]
    else:
        update_rows(session, InvoiceCover, [{"id": row_id, **values} for row_id, values in changed])
    repo.delete_covers(session, gone)
    insert_rows(session, InvoiceCover, inserts)


def refresh_buyers(
    ctx: Context, buyer_ids: Iterable[int], inputs: CoverInputs | None = None,
    since: Mapping[int, Since] | None = None, *, results: bool = False,
) -> dict[int, engine.BuyerCover]:
    """Recompute and store the exposure of these buyers, and settle their alerts, in the caller's transaction.

    With `since` (what a ledger change moved, app.exposure.changes), each buyer whose stored walk can be resumed is
    re-walked from its earliest changed delivery date only; the others, and every buyer without `since`, whole.
    Returns each buyer's walk with `results` only: a batch over thousands of buyers keeps one chunk's walks at a
    time (held to the end, a backdated batch of 5,000 invoices kept 100,000 invoice covers in memory).
    """
    from app.alerts import service as alerts

    ids = sorted(set(buyer_ids))
    if not ids:
        return {}
    session = ctx.session
    session.flush()
    inputs = inputs or CoverInputs.load(session, ctx.today)
    out: dict[int, engine.BuyerCover] = {}
    countries: set[str] = set()
    deltas = totals.Deltas()
    missing_rates_moved = False  # only then can the tenant's fx_rate_missing alerts change
    for start in range(0, len(ids), CHUNK):
        walks = _refresh_chunk(ctx, ids[start : start + CHUNK], inputs, since, deltas, countries)
        missing_rates_moved = walks.missing_rates_moved or missing_rates_moved
        if results:
            out.update((b.id, r) for b, r in walks.results)
    totals.apply(session, ctx.tenant.id, deltas)
    alerts.reconcile_countries(ctx, countries, inputs.rates)
    if missing_rates_moved:
        alerts.reconcile_fx(ctx)
    bump_version(ctx)
    return out


@dataclass
class _Chunk:
    results: list[tuple[Buyer, engine.BuyerCover]]
    missing_rates_moved: bool  # a buyer's missing conversions changed: the tenant's fx_rate_missing alerts may


def _refresh_chunk(ctx: Context, ids: list[int], inputs: CoverInputs, since: Mapping[int, Since] | None,
                   deltas: totals.Deltas, countries: set[str]) -> _Chunk:
    """One chunk of `refresh_buyers`: its buyers locked, walked, stored and their alerts settled; what it read and
    walked is let go when it returns."""
    from app.alerts import service as alerts

    session = ctx.session
    buyers = ledger_repo.lock_buyers(session, ids)
    stored = repo.stored_keys(session, [b.id for b in buyers])
    invoice_ids: dict[str, int] = {}
    resumable = [b for b in buyers if since is not None and b.id in since
                 and _resumable(stored.get(b.id), b, inputs)]
    walks, whole = _partial_walks(ctx, resumable, inputs, stored, since or {}, invoice_ids)
    chosen = {b.id for b in resumable}
    whole += [b for b in buyers if b.id not in chosen]
    walks += _whole_walks(ctx, whole, inputs, invoice_ids)
    results = [(w.buyer, w.result) for w in walks]
    store_stops(ctx, [(w.buyer, w.result) for w in walks if w.stops_read], inputs)
    _store_covers(ctx, walks, invoice_ids)
    missing_rates_moved = False
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for w in walks:
        buyer, result = w.buyer, w.result
        values = row_values(buyer, result, w.invoice_count)
        before = stored.get(buyer.id)
        if before is None:
            missing_rates_moved = missing_rates_moved or bool(values["errors"])
            inserts.append({"buyer_id": buyer.id, "tenant_id": ctx.tenant.id, **values})
        else:
            missing_rates_moved = missing_rates_moved or before.errors != values["errors"]
            countries.add(before.country)  # a buyer that moved leaves its old country's total
            deltas.add((before.country, before.currency, before.status), -1, before._mapping)
            updates.append({"id": before.id, **values})
        deltas.add((buyer.country, values["currency"], values["status"]), 1, values)
        countries.add(buyer.country)
    # Set-based: one INSERT and one UPDATE (executemany) per chunk, not a statement per changed column set.
    insert_rows(session, BuyerExposure, inserts)
    update_rows(session, BuyerExposure, updates)
    alerts.reconcile_buyers(ctx, results, scope={w.buyer.id: w.scope for w in walks if not w.whole})
    return _Chunk(results, missing_rates_moved)


def stored_row(ctx: Context, buyer_id: int) -> BuyerExposure | None:
    return repo.rows_by_buyer(ctx.session, [buyer_id]).get(buyer_id)


def refresh_all(ctx: Context) -> int:
    ids = list(ctx.session.scalars(select(Buyer.id).order_by(Buyer.id)))
    refresh_buyers(ctx, ids)
    totals.rebuild(ctx.session, ctx.tenant.id)  # a whole recompute also repairs the totals
    return len(ids)


def snapshot(ctx: Context, day: date | None = None) -> int:
    """The exposure of every buyer on `day` (today by default), kept as history (replaces that day's snapshot if
    taken again)."""
    session = ctx.session
    day = day or ctx.today
    session.execute(delete(ExposureSnapshot).where(ExposureSnapshot.day == day))
    overdue = (BuyerExposure.overdue_1_30 + BuyerExposure.overdue_31_60 + BuyerExposure.overdue_61_90
               + BuyerExposure.overdue_over_90)
    columns = ["tenant_id", "buyer_id", "day", "currency", "outstanding", "overdue", "covered_primary",
               "covered_top_up", "uncovered", "indemnifiable", "utilisation", "status"]
    source = select(
        BuyerExposure.tenant_id, BuyerExposure.buyer_id, literal(day, ExposureSnapshot.day.type),
        BuyerExposure.currency, BuyerExposure.outstanding, overdue, BuyerExposure.covered_primary,
        BuyerExposure.covered_top_up, BuyerExposure.uncovered, BuyerExposure.indemnifiable,
        BuyerExposure.utilisation, BuyerExposure.status,
    ).where(BuyerExposure.tenant_id == ctx.tenant.id)
    result = session.execute(insert(ExposureSnapshot).from_select(columns, source))
    return cast(CursorResult[Any], result).rowcount or 0


def check(ctx: Context) -> list[str]:
    """Recompute every buyer from scratch and list where the stored rows differ (nothing, if all is well)."""
    session = ctx.session
    inputs = CoverInputs.load(session, ctx.today)
    ids = list(session.scalars(select(Buyer.id).order_by(Buyer.id)))
    problems: list[str] = []
    for start in range(0, len(ids), CHUNK):
        buyers = list(session.scalars(select(Buyer).where(in_list(Buyer.id, ids[start : start + CHUNK]))
                                      .order_by(Buyer.id)))
        stored = repo.rows_by_buyer(session, [b.id for b in buyers])
        covers = repo.cover_rows(session, [b.id for b in buyers], COVER_KEYS)
        stops: dict[int, set[tuple[str, str, str | None, tuple[str, ...]]]] = defaultdict(set)
        for s in cover_repo.stops_of_buyers(session, [b.id for b in buyers]):
            stops[s.buyer_id].add(_stop_key(_stored_stop(s, inputs)))
        invoice_ids: dict[str, int] = {}
        for buyer, result in evaluate_buyers(ctx, buyers, inputs, invoice_ids=invoice_ids):
            if stops[buyer.id] != {_stop_key(p) for p in result.stop_periods}:
                problems.append(f"{buyer.ref}: stored stop-of-cover periods differ from the recomputed ones")
            # Compared in walk order; a position (`seq`) only orders the rows (`_store_covers`), it need not count.
            wanted = [{"invoice_id": invoice_ids[i.invoice_ref], **cover_values(i, result.currency)}
                      for i in result.invoices]
            have = [dict(zip(COVER_KEYS, c[1:], strict=True)) for c in covers.get(buyer.id, [])]
            seqs = [h.pop("seq") for h in have]
            if len(set(seqs)) != len(seqs):
                problems.append(f"{buyer.ref}: two stored invoice covers at one position")
            if have != wanted:
                problems.append(f"{buyer.ref}: stored invoice covers differ from the recomputed ones: "
                                f"{_first_difference(have, wanted)}")
            row = stored.get(buyer.id)
            if row is None:
                problems.append(f"{buyer.ref}: no stored exposure")
                continue
            for k, v in row_values(buyer, result, len(result.invoices)).items():
                if k != "updated_at" and getattr(row, k) != v:
                    problems.append(f"{buyer.ref}: {k} stored {getattr(row, k)!r}, recomputed {v!r}")
    return problems + totals.differences(session)


def _first_difference(have: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> str:
    for n, (h, w) in enumerate(zip(have, wanted, strict=False)):
        if h != w:
            keys = sorted(k for k in w if h.get(k) != w[k])
            return f"at position {n} ({w['invoice_ref']}): " + ", ".join(
                f"{k} stored {h.get(k)!r}, recomputed {w[k]!r}" for k in keys)
    return f"{len(have)} stored, {len(wanted)} recomputed"


# --- credit check -------------------------------------------------------------------------------


PROBE_REF = "\uffffcredit-check"  # sorts after every real reference delivered the same day


def credit_check(ctx: Context, body: CreditCheckIn) -> CreditCheckOut:
    """What a new invoice would be covered by, without writing anything."""
    session = ctx.session
    buyer = ledger_repo.buyer_by_ref(session, body.buyer_ref)
    if buyer is None:
        raise Invalid(f"buyer_ref: no buyer '{body.buyer_ref}'.", field="/buyer_ref")
    delivery = body.delivery_date or ctx.today
    probe = engine.OpenItem(ref=PROBE_REF, currency=body.currency, open_balance=body.amount, issue_date=delivery,
                            due_date=delivery + timedelta(days=body.payment_terms_days or 0))
    inputs = CoverInputs.load(session, ctx.today)
    [(_, result)] = evaluate_buyers(ctx, [buyer], inputs, extra={buyer.id: [probe]})
    if result.missing_rates:
        # Unknown, never zero (rule 9): an answer computed without a rate it needs would be a guess.
        raise FxRateMissing(sorted(result.missing_rates), ctx.today)
    cover = next(i for i in result.invoices if i.invoice_ref == PROBE_REF)
    c = result.currency
    reasons = cast(list[Reason], [cover.reason] if cover.reason else [])
    covered = cover.covered_primary + cover.covered_top_up
    if cover.uncovered == 0:
        decision = "covered"
    elif covered > 0:
        decision = "partially_covered"
    else:
        decision = "not_covered"

    # Headroom after this invoice: each layer's limit on the delivery date less what it covers in all.
    head_p = head_t = Decimal(0)
    policies = {p.ref: p for p in inputs.policies}
    decisions = engine_decisions(cover_repo.decisions_of_buyers(session, [buyer.id]), inputs.refs_by_id)
    if cover.primary_policy_ref is not None:
        policy = policies[cover.primary_policy_ref]
        limit, _ = engine.primary_limit(decisions, policy, delivery)
        limit_in = inputs.rates.convert(limit, policy.currency, c) or Decimal(0)
        head_p = max(Decimal(0), limit_in - result.covered_by_policy.get(policy.ref, Decimal(0)))
        for top in inputs.policies:
            if top.primary_ref != policy.ref:
                continue
            if not top.in_period(delivery) or not top.applies_to_country(buyer.country, delivery):
                continue
            t_limit, _ = engine.top_up_limit(decisions, top, policy, delivery, c, inputs.rates)
            head_t += max(Decimal(0), t_limit - result.covered_by_policy.get(top.ref, Decimal(0)))
    return CreditCheckOut(
        buyer_ref=buyer.ref, decision=decision, currency=c,  # type: ignore[arg-type]
        amount=quantize(cover.open_balance, c), covered_primary=quantize(cover.covered_primary, c),
        covered_top_up=quantize(cover.covered_top_up, c), uncovered=quantize(cover.uncovered, c),
        headroom_primary=quantize(head_p, c), headroom_top_up=quantize(head_t, c), reasons=reasons,
        exposure_after=quantize(result.outstanding, c),
    )
