"""The reports: each one a stream of rows (CSV, Excel) and, for JSON, the same rows with their totals.

Row functions take a Context whose session may be a fresh one opened while the response streams
(see router.py): they read through the repository only and never write.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from app.core import public_ids
from app.core.context import Context
from app.core.errors import Invalid, NotFound
from app.core.money import quantize
from app.cover import engine
from app.cover import repository as cover_repo
from app.cover.inputs import CoverInputs, engine_policies
from app.cover.models import Policy
from app.reports import repository as repo
from app.reports.schemas import (
    AgingOut,
    AgingRow,
    AgingTotal,
    CountTotal,
    InsuredReceivableRow,
    InsuredReceivablesOut,
    InsuredTotal,
    OverdueDeclarationRow,
    OverdueDeclarationsOut,
    PaymentBehaviourOut,
    PaymentBehaviourRow,
    TopUpNeedRow,
    TopUpNeedsOut,
    TopUpNeedTotal,
    TurnoverOut,
    TurnoverRow,
    TurnoverTotals,
)

ZERO = Decimal(0)
BUCKETS = ("not_due", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_over_90")
Row = dict[str, Any]


def columns(model: type) -> list[str]:
    return list(model.model_fields)  # type: ignore[attr-defined]


def _ratio(part: Decimal | int, whole: Decimal | int, places: str = "0.0001") -> Decimal:
    if not whole:
        return ZERO
    return (Decimal(part) / Decimal(whole)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def window(ctx: Context, days: int) -> tuple[date, date]:
    """The last `days` days, today included."""
    return ctx.today - timedelta(days=days - 1), ctx.today


def _sorted_totals(totals: dict[str, Row]) -> list[Row]:
    """Totals per currency, in currency order, each amount rounded to its currency."""
    out = []
    for _, t in sorted(totals.items()):
        out.append({k: quantize(v, t["currency"]) if isinstance(v, Decimal) else v for k, v in t.items()})
    return out


def _add_totals(totals: dict[str, Row], key: str, row: Row, fields: tuple[str, ...], **counts: int) -> None:
    slot = totals.setdefault(key, {"currency": key, **dict.fromkeys(fields, ZERO), **dict.fromkeys(counts, 0)})
    for f in fields:
        slot[f] += row[f] or ZERO
    for f, n in counts.items():
        slot[f] += n


# --- aging ------------------------------------------------------------------------------------------


def aging_rows(ctx: Context, as_of: date, country: str | None) -> Iterator[Row]:
    """Open balances as recorded now, per buyer and currency, aged on `as_of` by due date."""
    current: Row | None = None
    for ref, name, buyer_country, currency, balance, due in repo.open_invoices_by_buyer(ctx.session, country=country):
        if current is None or (current["buyer_ref"], current["currency"]) != (ref, currency):
            if current is not None:
                yield _quantized(current, ("outstanding", *BUCKETS))
            current = {"buyer_ref": ref, "buyer_name": name, "country": buyer_country, "currency": currency,
                       "invoices": 0, "outstanding": ZERO, **dict.fromkeys(BUCKETS, ZERO)}
        current["invoices"] += 1
        current["outstanding"] += balance
        current[engine.bucket(due, as_of)] += balance
    if current is not None:
        yield _quantized(current, ("outstanding", *BUCKETS))


def _quantized(row: Row, fields: tuple[str, ...]) -> Row:
    for f in fields:
        if row[f] is not None:
            row[f] = quantize(row[f], row["currency"])
    return row


def aging(ctx: Context, as_of: date, country: str | None) -> AgingOut:
    rows = list(aging_rows(ctx, as_of, country))
    totals: dict[str, Row] = {}
    for r in rows:
        _add_totals(totals, r["currency"], r, ("outstanding", *BUCKETS), buyers=1, invoices=r["invoices"])
    return AgingOut(as_of=as_of, country=country, rows=[AgingRow(**r) for r in rows],
                    totals=[AgingTotal(**t) for t in _sorted_totals(totals)])


# --- Top Up needs -----------------------------------------------------------------------------------


def round_up(amount: Decimal) -> Decimal:
    """Up to a round figure: steps of 5,000 below 100,000, 10,000 up to 1,000,000, 50,000 above."""
    if amount <= 0:
        return ZERO
    step = Decimal(5_000) if amount < 100_000 else Decimal(10_000) if amount <= 1_000_000 else Decimal(50_000)
    return (amount / step).to_integral_value(rounding=ROUND_CEILING) * step


def top_up_needs(ctx: Context, days: int) -> TopUpNeedsOut:
    start, end = window(ctx, days)
    rows: list[Row] = []
    for ref, name, country, currency, primary, top_up, n, peak, above, uncovered, days_above in repo.snapshot_peaks(
        ctx.session, start, end
    ):
        if above is None or above <= 0:
            continue
        rows.append(_quantized({
            "buyer_ref": ref, "buyer_name": name, "country": country, "currency": currency, "days": n,
            "peak_outstanding": peak, "primary_limit": primary, "top_up_limit": top_up,
            "peak_above_primary": above, "peak_uncovered": uncovered, "days_above_primary": int(days_above),
            "share_days_above_primary": _ratio(int(days_above), n), "suggested_top_up": round_up(above),
        }, ("peak_outstanding", "primary_limit", "top_up_limit", "peak_above_primary", "peak_uncovered",
            "suggested_top_up")))
    rows.sort(key=lambda r: (-r["suggested_top_up"], -r["peak_above_primary"], r["buyer_ref"]))
    totals: dict[str, Row] = {}
    for r in rows:
        _add_totals(totals, r["currency"], r, ("peak_outstanding", "peak_above_primary", "peak_uncovered",
                                               "suggested_top_up"), buyers=1)
    return TopUpNeedsOut(from_day=start, to_day=end, snapshot_days=repo.snapshot_days(ctx.session, start, end),
                         rows=[TopUpNeedRow(**r) for r in rows],
                         totals=[TopUpNeedTotal(**t) for t in _sorted_totals(totals)])


# --- turnover to declare ----------------------------------------------------------------------------


def get_policy(ctx: Context, ref: str) -> Policy:
    policy = cover_repo.policy_by_ref(ctx.session, ref)
    if policy is None:
        raise NotFound(f"No policy '{ref}'.")
    return policy


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def turnover_period(policy: Policy, start: date | None, end: date | None) -> tuple[date, date]:
    """The period asked, within the policy's: deliveries outside the policy period are not insured."""
    start = max(start or policy.starts_on, policy.starts_on)
    end = min(end or policy.ends_on, policy.ends_on)
    if end < start:
        raise Invalid("to: the period asked does not overlap the policy period "
                      f"({policy.starts_on} to {policy.ends_on}).", field="/to")
    return start, end


def _in_scope(policy: engine.Policy, country: str, day: date, primary: engine.Policy | None) -> bool:
    """Inside the territory of the terms in force on the delivery date (endorsements are not retroactive); a Top
    Up's territory is its primary's, within its own scope."""
    if policy.kind != "top_up":
        return policy.in_territory(country, day)
    if primary is not None and not primary.in_territory(country, day):
        return False
    return policy.applies_to_country(country, day)


def _engine_policies(ctx: Context) -> dict[str, engine.Policy]:
    return {p.ref: p for p in engine_policies(repo.policies(ctx.session), cover_repo.terms_of(ctx.session))}


def turnover(ctx: Context, policy: Policy, start: date, end: date) -> TurnoverOut:
    """Invoices delivered in the period to buyers inside the policy territory, less credit notes, per month and
    country, converted into the policy currency at the latest rate on or before each month's end."""
    session = ctx.session
    c = policy.currency
    terms = _engine_policies(ctx)
    versioned = terms[policy.ref]
    primary = terms.get(versioned.primary_ref or "")
    rates: dict[date, engine.Rates] = {}
    errors: list[str] = []
    acc: dict[tuple[str, str], Row] = {}
    for day, country, currency, kind, count, amount in repo.turnover_by_day(session, start, end):
        if not _in_scope(versioned, country, day, primary):
            continue
        month = day.strftime("%Y-%m")
        rate_day = min(_month_end(day), end)
        if rate_day not in rates:
            rates[rate_day] = engine.Rates(cover_repo.rates_on(session, rate_day))
        converted = rates[rate_day].convert(amount, currency, c)
        slot = acc.setdefault((month, country), {"month": month, "country": country, "currency": c, "invoices": 0,
                                                 "invoiced": ZERO, "credit_notes": 0, "credited": ZERO})
        amount_key, count_key = ("invoiced", "invoices") if kind == "invoice" else ("credited", "credit_notes")
        slot[count_key] += count
        if converted is None:
            message = f"missing FX rate {currency}/{c} on or before {rate_day.isoformat()}"
            if message not in errors:
                errors.append(message)
            slot[amount_key] = None
        elif slot[amount_key] is not None:
            slot[amount_key] += converted
    rows = []
    for _, slot in sorted(acc.items()):
        known = slot["invoiced"] is not None and slot["credited"] is not None
        slot["turnover"] = slot["invoiced"] - slot["credited"] if known else None
        rows.append(_quantized(slot, ("invoiced", "credited", "turnover")))

    def total(field: str) -> Decimal | None:
        values = [r[field] for r in rows]
        return None if any(v is None for v in values) else quantize(sum(values, ZERO), c)

    net = total("turnover")
    premium = estimated = None
    if policy.premium_rate is not None and net is not None:
        premium = quantize(net * policy.premium_rate, c)
        estimated = max(premium, policy.minimum_premium) if policy.minimum_premium is not None else premium
        estimated = quantize(estimated, c)
    return TurnoverOut(
        policy_ref=policy.ref, currency=c, from_day=start, to_day=end,
        premium_rate=policy.premium_rate.normalize() if policy.premium_rate is not None else None,
        minimum_premium=quantize(policy.minimum_premium, c) if policy.minimum_premium is not None else None,
        rows=[TurnoverRow(**r) for r in rows],
        totals=TurnoverTotals(invoices=sum(r["invoices"] for r in rows), invoiced=total("invoiced"),
                              credit_notes=sum(r["credit_notes"] for r in rows), credited=total("credited"),
                              turnover=net, premium_at_rate=premium, estimated_premium=estimated),
        errors=errors,
    )


def turnover_rows(ctx: Context, policy_ref: str, start: date, end: date) -> Iterator[Row]:
    report = turnover(ctx, get_policy(ctx, policy_ref), start, end)
    for r in report.rows:
        yield r.model_dump()


# --- overdue declarations ---------------------------------------------------------------------------


def declaration_threshold(policy: Policy, claim_deadline_days: int) -> int:
    """Days after the due date an unpaid invoice must be declared: the policy's, else the claim deadline - 30."""
    if policy.overdue_declaration_days is not None:
        return policy.overdue_declaration_days
    return max(0, claim_deadline_days - 30)


def overdue_declaration_rows(ctx: Context, as_of: date) -> Iterator[Row]:
    """Unpaid invoices past their declaration threshold on `as_of`, with no claim filed, by buyer."""
    session = ctx.session
    policies = {p.ref: p for p in repo.policies(session)}
    rows = repo.overdue_invoices(session, as_of)
    for partition in rows.partitions(repo.STREAM):
        covers = repo.invoice_covers(session, invoice_ids=[invoice.id for invoice, *_ in partition])
        for invoice, ref, name, country in partition:
            cover = covers.get(invoice.buyer_id, {}).get(invoice.ref)
            if cover is None or not cover.get("primary_policy_ref") or not cover.get("claim_deadline"):
                continue  # no primary policy governs it: nothing to declare
            if cover.get("claim_filed_on"):
                continue  # declared already
            policy = policies.get(cover["primary_policy_ref"])
            if policy is None:
                continue
            deadline = date.fromisoformat(cover["claim_deadline"])
            threshold = declaration_threshold(policy, (deadline - invoice.original_due_date).days)
            declare_by = invoice.original_due_date + timedelta(days=threshold)
            if as_of < declare_by:
                continue
            yield {
                "buyer_ref": ref, "buyer_name": name, "country": country, "invoice_ref": invoice.ref,
                "currency": invoice.currency, "open_balance": quantize(invoice.open_balance, invoice.currency),
                "issue_date": invoice.issue_date, "due_date": invoice.due_date,
                "original_due_date": invoice.original_due_date,
                "days_overdue": (as_of - invoice.original_due_date).days, "policy_ref": policy.ref,
                "declare_by": declare_by, "claim_deadline": deadline,
                "days_to_claim_deadline": (deadline - as_of).days,
            }


def overdue_declarations(ctx: Context, as_of: date) -> OverdueDeclarationsOut:
    rows = list(overdue_declaration_rows(ctx, as_of))
    totals: dict[str, Row] = {}
    for r in rows:
        _add_totals(totals, r["currency"], r, ("open_balance",), invoices=1)
    return OverdueDeclarationsOut(as_of=as_of, rows=[OverdueDeclarationRow(**r) for r in rows],
                                  totals=[CountTotal(**t) for t in _sorted_totals(totals)])


# --- insured receivables ----------------------------------------------------------------------------


@dataclass
class _Layers:
    """Indemnity rates by policy, and the Top Up policies standing on each primary."""

    policies: dict[str, engine.Policy]
    top_ups: dict[str, list[engine.Policy]]

    @classmethod
    def load(cls, ctx: Context) -> _Layers:
        policies = _engine_policies(ctx)
        top_ups: dict[str, list[engine.Policy]] = defaultdict(list)
        for p in policies.values():
            if p.kind == "top_up" and p.primary_ref in policies:
                top_ups[p.primary_ref].append(p)
        return cls(policies, top_ups)

    def rate(self, ref: str, day: date) -> Decimal | None:
        """The indemnity rate of the terms in force on the delivery date."""
        policy = self.policies.get(ref)
        return policy.terms(day).indemnity_rate.normalize() if policy is not None else None

    def top_up(self, primary_ref: str | None, country: str, day: date) -> tuple[str | None, Decimal | None]:
        found = [p for p in self.top_ups.get(primary_ref or "", []) if p.applies_to_country(country, day)]
        if not found:
            return None, None
        if len(found) == 1:
            return found[0].ref, found[0].terms(day).indemnity_rate.normalize()
        return "+".join(sorted(p.ref for p in found)), None


def _covers_on(ctx: Context, buyers: list[Any], as_of: date, inputs: CoverInputs | None) -> dict[int, list[Row]]:
    """Per-invoice cover of these buyers valued on `as_of`: the stored one when it was valued that day, else the
    engine's, computed now (nothing is written)."""
    stored = repo.invoice_covers(ctx.session, [b.id for b in buyers])
    out: dict[int, list[Row]] = {}
    stale = []
    for b in buyers:
        covers = list(stored.get(b.id, {}).values())
        if covers and covers[0]["valued_on"] != as_of:
            stale.append(b)
        else:
            out[b.id] = covers
    if stale and inputs is not None:
        from app.exposure.service import cover_values, evaluate_buyers

        for buyer, result in evaluate_buyers(ctx, stale, inputs):
            out[buyer.id] = [repo.cover_dict(cover_values(i, result.currency)) | {"valued_on": as_of}
                             for i in result.invoices]
    return out


def insured_receivable_rows(ctx: Context, as_of: date, errors: list[str] | None = None) -> Iterator[Row]:
    layers = _Layers.load(ctx)
    inputs = CoverInputs.load(ctx.session, as_of) if as_of != ctx.today else None
    chunk: list[Any] = []

    def flush() -> Iterator[Row]:
        covers = _covers_on(ctx, chunk, as_of, inputs)
        for b in chunk:
            for i in covers.get(b.id, []):
                if i.get("reason") == engine.MISSING_FX_RATE and errors is not None:
                    message = f"{b.ref} {i['invoice_ref']}: missing FX rate"
                    errors.append(message)
                delivered = date.fromisoformat(i["issue_date"])
                top_ref, top_rate = layers.top_up(i.get("primary_policy_ref"), b.country, delivered)
                primary_ref = i.get("primary_policy_ref")
                yield {
                    "buyer_ref": b.ref, "buyer_name": b.name, "country": b.country,
                    "registration_id": b.registration_id, "insurer_buyer_id": b.insurer_buyer_id,
                    "invoice_ref": i["invoice_ref"], "issue_date": date.fromisoformat(i["issue_date"]),
                    "due_date": date.fromisoformat(i["due_date"]), "currency": i["currency"],
                    "open_balance": Decimal(i["open_balance"]), "primary_policy_ref": primary_ref,
                    "covered_primary": Decimal(i["covered_primary"]),
                    "primary_indemnity_rate": layers.rate(primary_ref, delivered) if primary_ref else None,
                    "top_up_policy_ref": top_ref, "covered_top_up": Decimal(i["covered_top_up"]),
                    "top_up_indemnity_rate": top_rate, "uncovered": Decimal(i["uncovered"]),
                    "uncovered_reason": i.get("reason"), "indemnifiable": Decimal(i["indemnifiable"]),
                    "claim_deadline": date.fromisoformat(i["claim_deadline"]) if i.get("claim_deadline") else None,
                }

    for buyer in repo.buyers_in_order(ctx.session):
        chunk.append(buyer)
        if len(chunk) >= 500:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


def insured_receivables(ctx: Context, as_of: date) -> InsuredReceivablesOut:
    errors: list[str] = []
    rows = list(insured_receivable_rows(ctx, as_of, errors))
    totals: dict[str, Row] = {}
    for r in rows:
        _add_totals(totals, r["currency"], r,
                    ("open_balance", "covered_primary", "covered_top_up", "uncovered", "indemnifiable"), invoices=1)
    return InsuredReceivablesOut(as_of=as_of, rows=[InsuredReceivableRow(**r) for r in rows],
                                 totals=[InsuredTotal(**t) for t in _sorted_totals(totals)], errors=errors)


# --- payment behaviour ------------------------------------------------------------------------------


def payment_behaviour_rows(ctx: Context, start: date, end: date) -> Iterator[Row]:
    """Per buyer and currency, the invoices paid in full in [start, end]: how late, on average and by amount."""
    current: Row | None = None

    def done(acc: Row) -> Row:
        n, amount = acc["invoices_paid"], acc["amount_paid"]
        return {
            **{k: acc[k] for k in ("buyer_ref", "buyer_name", "country", "currency", "invoices_paid",
                                   "max_days_beyond_terms", "paid_late")},
            "amount_paid": quantize(amount, acc["currency"]),
            "average_days_beyond_terms": _ratio(acc["days"], n, "0.1"),
            "weighted_days_beyond_terms": _ratio(acc["weighted"], amount, "0.1"),
            "share_paid_late": _ratio(acc["paid_late"], n),
        }

    for ref, name, country, currency, amount, due, paid_on in repo.paid_invoices(ctx.session, start, end):
        if current is None or (current["buyer_ref"], current["currency"]) != (ref, currency):
            if current is not None:
                yield done(current)
            current = {"buyer_ref": ref, "buyer_name": name, "country": country, "currency": currency,
                       "invoices_paid": 0, "amount_paid": ZERO, "days": 0, "weighted": ZERO,
                       "max_days_beyond_terms": 0, "paid_late": 0}
        late = max(0, (paid_on - due).days)
        current["invoices_paid"] += 1
        current["amount_paid"] += amount
        current["days"] += late
        current["weighted"] += amount * late
        current["max_days_beyond_terms"] = max(current["max_days_beyond_terms"], late)
        current["paid_late"] += 1 if late > 0 else 0
    if current is not None:
        yield done(current)


def payment_behaviour(ctx: Context, days: int) -> PaymentBehaviourOut:
    start, end = window(ctx, days)
    return PaymentBehaviourOut(from_day=start, to_day=end,
                               rows=[PaymentBehaviourRow(**r) for r in payment_behaviour_rows(ctx, start, end)])


# --- exports ----------------------------------------------------------------------------------------

BUYER_COLUMNS = [
    "buyer_ref", "buyer_name", "country", "currency", "valued_on", *engine.AMOUNT_FIELDS, "utilisation", "status",
    "errors",
]


def buyer_export_rows(ctx: Context) -> Iterator[Row]:
    for row in repo.exposure_rows(ctx.session):
        out = {c: getattr(row, c) for c in BUYER_COLUMNS}
        for f in engine.AMOUNT_FIELDS:
            out[f] = quantize(out[f], row.currency)
        out["utilisation"] = row.utilisation.normalize() if row.utilisation is not None else None
        yield out


INVOICE_COLUMNS = [
    "invoice_ref", "buyer_ref", "country", "kind", "currency", "amount", "issue_date", "due_date",
    "original_due_date", "applies_to", "open_balance", "revision", "cover_currency", "covered_primary",
    "covered_top_up", "uncovered", "uncovered_reason", "indemnifiable", "primary_policy_ref", "claim_deadline",
]


def invoice_export_rows(ctx: Context) -> Iterator[Row]:
    """Every invoice and credit note; open invoices with their cover as stored."""
    rows = repo.invoices_with_buyer(ctx.session)
    for partition in rows.partitions(repo.STREAM):
        covers = repo.invoice_covers(ctx.session, invoice_ids=[invoice.id for invoice in partition])
        for invoice in partition:
            c = invoice.currency
            out: Row = {
                "invoice_ref": invoice.ref, "buyer_ref": invoice.buyer_ref, "country": invoice.country,
                "kind": invoice.kind, "currency": c, "amount": quantize(invoice.amount, c),
                "issue_date": invoice.issue_date, "due_date": invoice.due_date,
                "original_due_date": invoice.original_due_date, "applies_to": invoice.applies_to,
                "open_balance": quantize(invoice.open_balance, c), "revision": invoice.revision,
            }
            cover = covers.get(invoice.buyer_id, {}).get(invoice.ref) if invoice.kind == "invoice" else None
            if cover is not None:
                out.update(
                    cover_currency=cover["currency"], covered_primary=cover["covered_primary"],
                    covered_top_up=cover["covered_top_up"], uncovered=cover["uncovered"],
                    uncovered_reason=cover.get("reason"), indemnifiable=cover["indemnifiable"],
                    primary_policy_ref=cover.get("primary_policy_ref"), claim_deadline=cover.get("claim_deadline"),
                )
            yield out


ALERT_COLUMNS = [
    "id", "type", "state", "subject", "buyer_ref", "country", "invoice_ref", "opened_on", "opened_at",
    "acknowledged_at", "resolved_at", "resolution", "details",
]


def alert_export_rows(ctx: Context) -> Iterator[Row]:
    for a in repo.alerts_in_order(ctx.session):
        out = {c: getattr(a, c) for c in ALERT_COLUMNS}
        out["id"] = public_ids.of(a)
        out["details"] = json.dumps(a.details, sort_keys=True, default=str)
        yield out


LIMIT_COLUMNS = [
    "id", "buyer_ref", "policy_ref", "status", "currency", "amount", "effective_from", "expires_on", "source",
    "decision_ref", "requested_amount", "max_credit_period_days", "created_at",
]


def limit_export_rows(ctx: Context) -> Iterator[Row]:
    for d, policy_ref, currency, buyer_ref in repo.decisions_in_order(ctx.session):
        yield {
            "id": public_ids.of(d), "buyer_ref": buyer_ref, "policy_ref": policy_ref, "status": d.status,
            "currency": currency,
            "amount": quantize(d.amount, currency), "effective_from": d.effective_from, "expires_on": d.expires_on,
            "source": d.source, "decision_ref": d.decision_ref,
            "requested_amount": quantize(d.requested_amount, currency) if d.requested_amount is not None else None,
            "max_credit_period_days": d.max_credit_period_days, "created_at": d.created_at,
        }

