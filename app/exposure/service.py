"""Stored exposure: recomputed for the buyers a change touches, in the same transaction.

Dashboards read the stored rows (one per buyer) and never sum the ledger at
request time. `recompute` rebuilds every row from scratch; `check` tells what
differs from what is stored (it must be nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import delete, insert, select, update

from app.core.clock import utcnow
from app.core.context import Context
from app.core.errors import FxRateMissing, Invalid
from app.core.money import quantize
from app.cover import engine
from app.cover import repository as cover_repo
from app.cover.inputs import CoverInputs, engine_decisions
from app.cover.models import StopOfCover
from app.exposure import repository as repo
from app.exposure import totals
from app.exposure.models import BuyerExposure
from app.exposure.schemas import CreditCheckIn, CreditCheckOut, Reason
from app.ledger import repository as ledger_repo
from app.ledger.models import Buyer
from app.tenants.models import Tenant

CHUNK = 500
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


def evaluate_buyers(
    ctx: Context, buyers: list[Buyer], inputs: CoverInputs,
    extra: dict[int, list[engine.OpenItem]] | None = None,
) -> list[tuple[Buyer, engine.BuyerCover]]:
    """The engine's result for each buyer, from its open invoices (plus `extra` hypothetical ones) and the
    stop-of-cover periods its invoice history gives."""
    session = ctx.session
    ids = [b.id for b in buyers]
    invoices = ledger_repo.open_items(session, ids)
    items = _items(invoices, repo.claimed_invoices(session, ids))
    history: dict[int, list[engine.HistoryItem]] = defaultdict(list)
    # A stop starts on an original due date + the maximum extension: only invoices due before today can have one.
    for i in ledger_repo.stop_history(session, ids, due_before=inputs.valued_on):
        history[i.buyer_id].append(engine.HistoryItem(i.ref, i.issue_date, i.original_due_date, i.settled_on))
    decisions: dict[int, list[engine.Decision]] = defaultdict(list)
    for row in cover_repo.decisions_of_buyers(session, ids):
        decisions[row.buyer_id].extend(engine_decisions([row], inputs.refs_by_id))
    out = []
    for b in buyers:
        stops = engine.stop_periods(country=b.country, history=history.get(b.id, []), policies=inputs.policies,
                                    valued_on=inputs.valued_on)
        out.append((b, engine.evaluate(
            country=b.country, items=[*items.get(b.id, []), *(extra or {}).get(b.id, [])], policies=inputs.policies,
            decisions=decisions.get(b.id, []), valued_on=inputs.valued_on, rates=inputs.rates,
            default_currency=ctx.tenant.currency, stops=stops,
        )))
    return out


def _stop_key(stop: engine.StopPeriod) -> tuple[str, str, str | None, tuple[str, ...]]:
    return (stop.policy_ref, stop.starts_on.isoformat(), stop.ends_on.isoformat() if stop.ends_on else None,
            tuple(stop.invoice_refs))


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
        have = {(inputs.refs_by_id.get(r.policy_id, ""), r.starts_on.isoformat(),
                 r.ends_on.isoformat() if r.ends_on else None, tuple(r.invoice_refs)): r for r in stored[buyer.id]}
        gone += [row.id for key, row in have.items() if key not in wanted]
        added += [{"tenant_id": ctx.tenant.id, "buyer_id": buyer.id, "policy_id": ids[stop.policy_ref],
                   "starts_on": stop.starts_on, "ends_on": stop.ends_on, "invoice_refs": list(stop.invoice_refs)}
                  for key, stop in wanted.items() if key not in have]
    # A period that changed is deleted before its new version is added; one statement each.
    if gone:
        session.execute(delete(StopOfCover).where(StopOfCover.id.in_(gone)))
    if added:
        session.execute(insert(StopOfCover), added)


def row_values(buyer: Buyer, r: engine.BuyerCover) -> dict[str, Any]:
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
            "invoices": [
                {
                    "invoice_ref": i.invoice_ref, "issue_date": i.issue_date.isoformat(),
                    "due_date": i.due_date.isoformat(),
                    "claim_deadline": i.claim_deadline.isoformat() if i.claim_deadline else None,
                    "claim_filed_on": i.claim_filed_on.isoformat() if i.claim_filed_on else None,
                    "indemnifiable": s(i.indemnifiable),
                    "open_balance": s(i.open_balance), "covered_primary": s(i.covered_primary),
                    "covered_top_up": s(i.covered_top_up), "uncovered": s(i.uncovered), "reason": i.reason,
                    "original_currency": i.original_currency,
                    "original_open_balance": str(quantize(i.original_open_balance, i.original_currency))
                    if i.original_open_balance is not None and i.original_currency else None,
                    "primary_policy_ref": i.primary_policy_ref,
                }
                for i in r.invoices
            ],
        },
    )
    return values


def refresh_buyers(
    ctx: Context, buyer_ids: Iterable[int], inputs: CoverInputs | None = None
) -> dict[int, engine.BuyerCover]:
    """Recompute and store the exposure of these buyers, and settle their alerts, in the caller's transaction."""
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
        buyers = ledger_repo.lock_buyers(session, ids[start : start + CHUNK])
        results = evaluate_buyers(ctx, buyers, inputs)
        store_stops(ctx, results, inputs)
        stored = repo.stored_keys(session, [b.id for b in buyers])
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for buyer, result in results:
            values = row_values(buyer, result)
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
            out[buyer.id] = result
        # Set-based: one INSERT and one UPDATE (executemany) per chunk, not a statement per changed column set.
        if inserts:
            session.execute(insert(BuyerExposure), inserts)
        if updates:
            session.execute(update(BuyerExposure), updates)
        alerts.reconcile_buyers(ctx, results)
    totals.apply(session, ctx.tenant.id, deltas)
    alerts.reconcile_countries(ctx, countries, inputs.rates)
    if missing_rates_moved:
        alerts.reconcile_fx(ctx)
    bump_version(ctx)
    return out


def stored_row(ctx: Context, buyer_id: int) -> BuyerExposure | None:
    return repo.rows_by_buyer(ctx.session, [buyer_id]).get(buyer_id)


def refresh_all(ctx: Context) -> int:
    ids = list(ctx.session.scalars(select(Buyer.id).order_by(Buyer.id)))
    refresh_buyers(ctx, ids)
    totals.rebuild(ctx.session, ctx.tenant.id)  # a whole recompute also repairs the totals
    return len(ids)


def check(ctx: Context) -> list[str]:
    """Recompute every buyer from scratch and list where the stored rows differ (nothing, if all is well)."""
    session = ctx.session
    inputs = CoverInputs.load(session, ctx.today)
    ids = list(session.scalars(select(Buyer.id).order_by(Buyer.id)))
    problems: list[str] = []
    for start in range(0, len(ids), CHUNK):
        buyers = list(session.scalars(select(Buyer).where(Buyer.id.in_(ids[start : start + CHUNK]))
                                      .order_by(Buyer.id)))
        stored = repo.rows_by_buyer(session, [b.id for b in buyers])
        stops: dict[int, set[tuple[str, str, str | None, tuple[str, ...]]]] = defaultdict(set)
        for s in cover_repo.stops_of_buyers(session, [b.id for b in buyers]):
            stops[s.buyer_id].add((inputs.refs_by_id.get(s.policy_id, ""), s.starts_on.isoformat(),
                                   s.ends_on.isoformat() if s.ends_on else None, tuple(s.invoice_refs)))
        for buyer, result in evaluate_buyers(ctx, buyers, inputs):
            if stops[buyer.id] != {_stop_key(p) for p in result.stop_periods}:
                problems.append(f"{buyer.ref}: stored stop-of-cover periods differ from the recomputed ones")
            row = stored.get(buyer.id)
            if row is None:
                problems.append(f"{buyer.ref}: no stored exposure")
                continue
            for k, v in row_values(buyer, result).items():
                if k != "updated_at" and getattr(row, k) != v:
                    problems.append(f"{buyer.ref}: {k} stored {getattr(row, k)!r}, recomputed {v!r}")
    return problems + totals.differences(session)


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
