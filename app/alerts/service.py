"""Alert lifecycle (open -> acknowledged -> resolved), claims, and the tenant's alert settings.

Conditions come from rules.py. `reconcile_*` runs in the transaction of the change
that refreshed exposure: it opens what newly holds and resolves what cleared, and
every transition writes its webhook event to the outbox in that same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.alerts import rules
from app.alerts.models import Alert, Claim, ClaimInvoice
from app.alerts.schemas import AlertOut, ClaimedInvoiceOut, ClaimIn, ClaimOut, SettingsIn, SettingsOut
from app.core import public_ids
from app.core.clock import utcnow
from app.core.context import Context
from app.core.db import bound_tenant, in_list, insert_new_rows, json_pairs, postgresql
from app.core.errors import Conflict, Invalid, NotFound
from app.core.money import quantize
from app.cover import engine
from app.exposure.models import Revaluation
from app.exposure.totals import lock_countries
from app.ledger import repository as ledger_repo
from app.ledger.models import Buyer
from app.tenants.models import Tenant
from app.webhooks.service import emit, emit_many


def alert_settings(tenant: Tenant) -> rules.AlertSettings:
    return rules.AlertSettings(
        utilisation_threshold=tenant.utilisation_threshold,
        claim_lead_days=tuple(tenant.claim_lead_days),
        limit_expiry_notice_days=tenant.limit_expiry_notice_days,
    )


def alert_out(a: Alert) -> AlertOut:
    return AlertOut(
        # The database holds the enums' values (type, state, resolution).
        id=public_ids.of(a), type=a.type, state=a.state,  # type: ignore[arg-type]
        subject=a.subject, buyer_ref=a.buyer_ref, country=a.country, invoice_ref=a.invoice_ref,
        details=a.details, opened_at=a.opened_at, opened_on=a.opened_on, acknowledged_at=a.acknowledged_at,
        resolved_at=a.resolved_at, resolution=a.resolution,  # type: ignore[arg-type]
        acknowledged_by=a.acknowledged_by,
        acknowledged_note=a.acknowledged_note, resolved_by=a.resolved_by, resolved_note=a.resolved_note,
        note=a.resolved_note or a.acknowledged_note,
    )


class _Changes:
    """Alert openings and resolutions of one reconciliation, written together as plain rows: the new alerts in one
    INSERT (COPY when many), the resolutions in one UPDATE, their webhook events (only where an endpoint
    subscribes) in one more. No ORM object per new alert and no flush: at a portfolio's first revaluation, with an
    alert for every invoice past its claim deadline, the unit of work took 30% of the time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.events: list[tuple[str, Any]] = []
        self.opened: list[dict[str, Any]] = []
        self.resolved: dict[str, list[Alert]] = {}

    def open(self, wanted: rules.Wanted, buyer_id: int | None) -> None:
        row = {"tenant_id": self.ctx.tenant.id, "type": wanted.type, "subject": wanted.subject, "state": "open",
               "buyer_id": buyer_id, "buyer_ref": wanted.buyer_ref, "country": wanted.country,
               "invoice_ref": wanted.invoice_ref, "details": wanted.details, "opened_on": self.ctx.today,
               **_NOT_YET}
        self.opened.append(row)
        self.events.append(("alert.opened", row))

    def resolve(self, alert: Alert, resolution: str) -> None:
        self.resolved.setdefault(resolution, []).append(alert)
        self.events.append(("alert.resolved", alert))

    def changed(self, alert: Alert, type_: str) -> None:
        self.events.append((type_, alert))

    def write(self) -> None:
        if not self.events:
            return
        session, now = self.ctx.session, utcnow()
        for row in self.opened:
            row["opened_at"] = now
        insert_new_rows(session, Alert, self.opened)
        for resolution, alerts in self.resolved.items():
            session.execute(update(Alert).where(in_list(Alert.id, [a.id for a in alerts]))
                            .values(state="resolved", resolved_at=now, resolution=resolution)
                            .execution_options(synchronize_session=False))
            for alert in alerts:  # as the row now stands, without reading it back
                for key, value in (("state", "resolved"), ("resolved_at", now), ("resolution", resolution)):
                    set_committed_value(alert, key, value)
        emit_many(session, self.ctx.tenant.id, [(type_, partial(_payload, alert)) for type_, alert in self.events])
        self.events, self.opened, self.resolved = [], [], {}


# The columns of a new alert that only a credit manager's action or its resolution fills.
_NOT_YET = dict.fromkeys(("acknowledged_at", "resolved_at", "resolution", "acknowledged_by", "acknowledged_note",
                          "resolved_by", "resolved_note"))


def _payload(alert: Alert | dict[str, Any]) -> dict[str, Any]:
    # A new alert is a row: alert_out reads it as it reads a model.
    row = SimpleNamespace(__tablename__=Alert.__tablename__, **alert) if isinstance(alert, dict) else alert
    return alert_out(row).model_dump(mode="json")  # type: ignore[arg-type]


def _open_alerts(session: Session, *, buyer_ids: Sequence[int] = (), subjects: Sequence[str] = (),
                 types: Iterable[str]) -> list[Alert]:
    # `state <> 'resolved'` is the predicate of the partial indexes on open alerts: written so, they serve (by
    # subject: uq_alerts_one_open; by buyer: ix_alerts_open_buyer).
    stmt = select(Alert).where(Alert.state != "resolved", Alert.type.in_(list(types)))
    if buyer_ids:
        stmt = stmt.where(in_list(Alert.buyer_id, buyer_ids))
    if subjects:
        stmt = stmt.where(Alert.subject.in_(list(subjects)))
    return list(session.scalars(stmt.order_by(Alert.id)))


def reconcile_buyers(ctx: Context, results: Sequence[tuple[Buyer, engine.BuyerCover]],
                     scope: Mapping[int, set[str]] | None = None) -> None:
    """Open what newly holds, resolve what cleared, for these buyers.

    An invoice's alerts follow the invoice: when it moved to another buyer, its open alert moves with it
    (the subject is the invoice, unique in the tenant), in this same transaction. A buyer in `scope` was walked
    in part (its result holds only the invoices re-walked): its invoice alerts are settled for the invoices
    named there only, the others stand.
    """
    if not results:
        return
    scope = scope or {}
    settings = alert_settings(ctx.tenant)
    by_id = {b.id: (b, r) for b, r in results}
    # The open alerts as key rows (id, type, subject, buyer, invoice): most are still wanted and need nothing more.
    # Only those to move or resolve are loaded whole, below (a daily scan of 50,000 buyers loaded 351,000 alerts).
    open_by_key: dict[tuple[str, str], Any] = {
        (a.type, a.subject): a for a in _open_alerts_in_scope(ctx.session, list(by_id), scope)}
    wanted_by_buyer = {
        buyer_id: {w.key: w for w in rules.buyer_conditions(buyer.ref, buyer.country, result, ctx.today, settings)}
        for buyer_id, (buyer, result) in by_id.items()
    }
    # Invoice alerts still open on a buyer outside this refresh (the invoice moved away from it).
    elsewhere = [k for wanted in wanted_by_buyer.values() for k in wanted
                 if k not in open_by_key and k[0] in rules.INVOICE_TYPES]
    for alert in _open_alerts_by_keys(ctx.session, elsewhere):
        open_by_key[(alert.type, alert.subject)] = alert
    claimed: set[int] = set()
    moved: dict[int, Buyer] = {}  # alert id -> the buyer its invoice is on now
    changes = _Changes(ctx)
    for buyer_id, wanted in wanted_by_buyer.items():
        buyer, _ = by_id[buyer_id]
        for key, w in wanted.items():
            current = open_by_key.get(key)
            if current is None:
                changes.open(w, buyer_id)
                continue
            claimed.add(current.id)
            if current.buyer_id != buyer_id:
                moved[current.id] = buyer
    cleared: list[int] = []
    for alert in open_by_key.values():
        if alert.id in claimed or alert.type in rules.STICKY or alert.buyer_id not in by_id:
            continue
        if alert.type in rules.INVOICE_TYPES and alert.buyer_id in scope and \
                alert.invoice_ref not in scope[alert.buyer_id]:
            continue  # not re-walked: unchanged
        _, result = by_id[alert.buyer_id]
        if alert.type == rules.LIMIT_REDUCED_BELOW_EXPOSURE and result.uncovered > 0:
            continue  # raised by the decision; clears once everything is covered again
        cleared.append(alert.id)
    whole = _alerts_by_ids(ctx.session, [*moved, *cleared])
    for alert_id, buyer in moved.items():
        alert = whole[alert_id]
        alert.buyer_id, alert.buyer_ref, alert.country = buyer.id, buyer.ref, buyer.country
    if moved:  # written now: the next chunk's key rows are read from the table
        ctx.session.flush()
    for alert_id in cleared:
        changes.resolve(whole[alert_id], "cleared")
    changes.write()


# The open invoice alerts of (buyer, invoice) pairs: one probe of ix_alerts_open_buyer per pair and type. Written
# as `buyer_id IN (...) AND invoice_ref IN (...)`, SQLite probed every buyer with every reference (a batch's 1,500
# buyers by its 15,000 references: 43% of the batch). PostgreSQL gets each type as its own probe: with
# `type IN (...)` it kept the type as a filter and read all of a buyer's open alerts for each invoice (1 ms a probe
# on a buyer with 20,000 invoice alerts: 17 s for a payment batch of 1,000 on it).
_TYPES = ", ".join(f"'{t}'" for t in sorted(rules.INVOICE_TYPES))
_PG_INVOICE_ALERTS = text(f"""
SELECT a.id
FROM unnest(CAST(:buyers AS bigint[]), CAST(string_to_array(:refs, chr(10)) AS varchar[])) AS v(buyer_id, ref)
CROSS JOIN (VALUES {", ".join(f"({t})" for t in _TYPES.split(", "))}) AS t(type)
CROSS JOIN LATERAL (
    SELECT a.id FROM alerts a WHERE a.tenant_id = :tenant AND a.buyer_id = v.buyer_id AND a.type = t.type
        AND a.invoice_ref = v.ref AND a.state <> 'resolved' OFFSET 0) a""")
_SQLITE_INVOICE_ALERTS = text(f"""
SELECT a.id FROM json_each(:pairs) AS v CROSS JOIN alerts AS a
WHERE a.tenant_id = :tenant AND a.buyer_id = v.value ->> 0 AND a.invoice_ref = v.value ->> 1
    AND a.type IN ({_TYPES}) AND a.state <> 'resolved'""")


def _open_invoice_alerts(session: Session, pairs: list[tuple[int, str]]) -> list[Any]:
    if not pairs:
        return []
    if postgresql(session):
        ids = session.scalars(_PG_INVOICE_ALERTS, {"tenant": bound_tenant(session), "buyers": [b for b, _ in pairs],
                                                   "refs": "\n".join(r for _, r in pairs)})
    else:
        ids = session.scalars(_SQLITE_INVOICE_ALERTS, json_pairs(session, pairs))
    found = list(ids)
    return _key_rows(session, in_list(_ALERTS.c.id, found)) if found else []


_ALERTS = Alert.__table__


def _key_rows(session: Session, condition: Any) -> list[Any]:
    """The open alerts meeting `condition` as key rows (id, type, subject, buyer_id, invoice_ref), read as plain
    rows: no ORM object, no JSON details decoded. The tenant's filter is written here (a table's rows, not the
    model's, get no criteria from the session)."""
    t = _ALERTS.c
    return list(session.execute(select(t.id, t.type, t.subject, t.buyer_id, t.invoice_ref).where(
        t.tenant_id == bound_tenant(session), t.state != "resolved", condition)))


def _alerts_by_ids(session: Session, ids: list[int]) -> dict[int, Alert]:
    if not ids:
        return {}
    return {a.id: a for a in session.scalars(select(Alert).where(in_list(Alert.id, ids)))}


def _open_alerts_in_scope(session: Session, buyer_ids: list[int], scope: Mapping[int, set[str]]) -> list[Any]:
    """The open alerts of these buyers, as key rows; of a buyer walked in part, only the invoice alerts of the
    invoices re-walked (a large buyer's other invoice alerts are not even read). Index scans of
    ix_alerts_open_buyer."""
    whole = [b for b in buyer_ids if b not in scope]
    partial = [b for b in buyer_ids if b in scope]
    found: list[Any] = []
    if whole:
        found += _key_rows(session, in_list(_ALERTS.c.buyer_id, whole) & _ALERTS.c.type.in_(sorted(rules.BUYER_TYPES)))
    if partial:
        found += _key_rows(session, in_list(_ALERTS.c.buyer_id, partial)
                           & _ALERTS.c.type.in_(sorted(rules.BUYER_TYPES - rules.INVOICE_TYPES)))
    found += _open_invoice_alerts(session, [(b, r) for b in partial for r in sorted(scope[b])])
    return sorted(found, key=lambda a: a.id)


# The open alerts of (type, subject) keys, wherever they stand: one probe of uq_alerts_one_open per key.
_PG_ALERTS_BY_KEY = text("""
SELECT a.id FROM jsonb_array_elements(CAST(:pairs AS jsonb)) AS v
CROSS JOIN LATERAL (
    SELECT a.id FROM alerts a WHERE a.tenant_id = :tenant AND a.type = v ->> 0 AND a.subject = v ->> 1
        AND a.state <> 'resolved' OFFSET 0) a""")
_SQLITE_ALERTS_BY_KEY = text("""
SELECT a.id FROM json_each(:pairs) AS v CROSS JOIN alerts AS a
WHERE a.tenant_id = :tenant AND a.type = v.value ->> 0 AND a.subject = v.value ->> 1 AND a.state <> 'resolved'""")


def _open_alerts_by_keys(session: Session, keys: Sequence[tuple[str, str]]) -> list[Any]:
    """The open alerts of these (type, subject) keys, as key rows."""
    if not keys:
        return []
    stmt = _PG_ALERTS_BY_KEY if postgresql(session) else _SQLITE_ALERTS_BY_KEY
    found = list(session.scalars(stmt, json_pairs(session, keys)))
    return _key_rows(session, in_list(_ALERTS.c.id, found)) if found else []


def reconcile_fx(ctx: Context) -> None:
    """One `fx_rate_missing` alert per missing pair any stored figure needs; resolved when the rate arrives."""
    from app.exposure.repository import missing_rates

    missing = missing_rates(ctx.session)
    wanted = {w.key: w for w in rules.fx_conditions(missing, ctx.today)}
    current = {(a.type, a.subject): a for a in _open_alerts(ctx.session, types=[rules.FX_RATE_MISSING])}
    _settle(ctx, wanted, current)


def _settle(ctx: Context, wanted: dict[tuple[str, str], rules.Wanted], current: dict[tuple[str, str], Alert]) -> None:
    """Open what is wanted and not open, resolve what is open and no longer wanted (alerts on no buyer)."""
    changes = _Changes(ctx)
    for key, w in wanted.items():
        if key not in current:
            changes.open(w, None)
    for key, alert in current.items():
        if key not in wanted:
            changes.resolve(alert, "cleared")
    changes.write()


def reconcile_countries(ctx: Context, countries: Iterable[str], rates: engine.Rates | None = None) -> None:
    from app.cover.repository import country_limits
    from app.exposure.queries import countries as country_totals

    # Only a country with a limit (or still an open alert) can hold the condition: skip the sums elsewhere.
    touched = set(countries)
    # A country alert's subject is its country: looked up by subject, an index probe. By `country` SQLite read every
    # alert of the tenant (190 ms a single-invoice PUT at 1,000,000 invoices and 450,000 alerts).
    relevant = {row.country for row in country_limits(ctx.session)} | {
        a.country for a in _open_alerts(ctx.session, subjects=sorted(touched), types=[rules.COUNTRY_ABOVE_LIMIT])}
    wanted_countries = sorted(touched & relevant)
    if not wanted_countries:
        return
    # Decided on totals that include every committed change to these countries (see app/exposure/totals.py).
    lock_countries(ctx.session, ctx.tenant.id, wanted_countries)
    rows = country_totals(ctx, only=set(wanted_countries), rates=rates)
    wanted = {w.key: w for w in rules.country_conditions(rows)}
    current = {(a.type, a.subject): a for a in _open_alerts(ctx.session, subjects=wanted_countries,
                                                             types=[rules.COUNTRY_ABOVE_LIMIT])}
    _settle(ctx, wanted, current)


def after_decision(ctx: Context, buyer: Buyer, result: engine.BuyerCover, status: str,
                   previous_limit: Decimal | None) -> None:
    wanted = rules.limit_reduced_below_exposure(buyer.ref, buyer.country, result, status, previous_limit)
    if wanted is None:
        return
    existing = _open_alerts(ctx.session, buyer_ids=[buyer.id], types=[rules.LIMIT_REDUCED_BELOW_EXPOSURE])
    if not existing:
        changes = _Changes(ctx)
        changes.open(wanted, buyer.id)
        changes.write()


def get_alert(ctx: Context, alert_id: int) -> Alert:
    alert = ctx.session.scalars(select(Alert).where(Alert.id == alert_id)).first()
    if alert is None:
        raise NotFound("No such alert.")
    return alert


def acknowledge(ctx: Context, alert_id: int, *, by: str | None = None, note: str | None = None) -> Alert:
    alert = get_alert(ctx, alert_id)
    if alert.state == "resolved":
        raise Conflict("The alert is resolved.")
    if alert.state == "open":
        alert.state = "acknowledged"
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by, alert.acknowledged_note = by, note
        changes = _Changes(ctx)
        changes.changed(alert, "alert.acknowledged")
        changes.write()
    return alert


def resolve(ctx: Context, alert_id: int, *, by: str | None = None, note: str | None = None) -> Alert:
    alert = get_alert(ctx, alert_id)
    if alert.state != "resolved":
        alert.resolved_by, alert.resolved_note = by, note
        changes = _Changes(ctx)
        changes.resolve(alert, "manual")
        changes.write()
    return alert


def list_alerts(ctx: Context, *, type_: str | None, state: str | None, buyer_ref: str | None,
                country: str | None, before_id: int | None, limit: int) -> list[Alert]:
    stmt = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if type_:
        stmt = stmt.where(Alert.type == type_)
    if state:
        stmt = stmt.where(Alert.state == state)
    if buyer_ref:
        stmt = stmt.where(Alert.buyer_ref == buyer_ref)
    if country:
        stmt = stmt.where(Alert.country == country)
    if before_id is not None:
        stmt = stmt.where(Alert.id < before_id)
    return list(ctx.session.scalars(stmt))


# --- claims ---------------------------------------------------------------------------------------


def file_claim(ctx: Context, body: ClaimIn) -> ClaimOut:
    from app.exposure import service as exposure

    session = ctx.session
    buyer = ledger_repo.buyer_by_ref(session, body.buyer_ref, for_update=True)
    if buyer is None:
        raise Invalid(f"buyer_ref: no buyer '{body.buyer_ref}'.", field="/buyer_ref")
    if body.filed_on > ctx.today:
        raise Invalid("filed_on: cannot be in the future.", field="/filed_on")
    invoices = ledger_repo.invoices_by_refs(session, body.invoice_refs)
    already = {ci.invoice_id for ci in session.scalars(
        select(ClaimInvoice).where(in_list(ClaimInvoice.invoice_id, [i.id for i in invoices.values()])))}
    for n, ref in enumerate(body.invoice_refs):
        inv = invoices.get(ref)
        where = f"/invoice_refs/{n}"
        if inv is None or inv.kind != "invoice":
            raise Invalid(f"invoice_refs[{n}]: no invoice '{ref}'.", field=where)
        if inv.buyer_id != buyer.id:
            raise Invalid(f"invoice_refs[{n}]: invoice '{ref}' belongs to another buyer.", field=where)
        if inv.open_balance <= 0:
            raise Invalid(f"invoice_refs[{n}]: invoice '{ref}' is not unpaid.", field=where)
        if inv.id in already:
            raise Conflict(f"Invoice '{ref}' is already claimed.")
    claim = Claim(buyer_id=buyer.id, filed_on=body.filed_on, insurer_claim_ref=body.insurer_claim_ref)
    session.add(claim)
    session.flush()
    for ref in body.invoice_refs:
        session.add(ClaimInvoice(claim_id=claim.id, invoice_id=invoices[ref].id, filed_on=body.filed_on))
    session.flush()
    result = exposure.refresh_buyers(ctx, [buyer.id], results=True)[buyer.id]
    covers = {i.invoice_ref: i for i in result.invoices}  # a whole walk: every open invoice of the buyer
    currency = result.currency
    lines = []
    for ref in body.invoice_refs:
        cover = covers.get(ref)
        zero = Decimal(0)
        covered = cover.covered_primary + cover.covered_top_up if cover is not None else zero
        deadline = cover.claim_deadline if cover is not None else None
        lines.append(ClaimedInvoiceOut(
            invoice_ref=ref, open_balance=quantize(cover.open_balance if cover is not None else zero, currency),
            covered=quantize(covered, currency),
            expected_indemnity=quantize(cover.indemnifiable if cover is not None else zero, currency),
            claim_deadline=deadline, in_time=deadline is not None and body.filed_on <= deadline))
    out = ClaimOut(
        id=public_ids.of(claim), buyer_ref=buyer.ref, filed_on=claim.filed_on,
        insurer_claim_ref=claim.insurer_claim_ref,
        currency=currency, declared=quantize(sum((x.open_balance for x in lines), Decimal(0)), currency),
        expected_indemnity=quantize(sum((x.expected_indemnity for x in lines), Decimal(0)), currency),
        invoices=lines, created_at=claim.created_at,
    )
    claim.details = out.model_dump(mode="json", include={"currency", "declared", "expected_indemnity", "invoices"})
    emit(session, ctx.tenant.id, "claim.filed", out.model_dump(mode="json"))
    return out


def claim_out(ctx: Context, claim: Claim) -> ClaimOut:
    buyer = ctx.session.get(Buyer, claim.buyer_id)
    return ClaimOut(id=public_ids.of(claim), buyer_ref=buyer.ref if buyer else "?", filed_on=claim.filed_on,
                    insurer_claim_ref=claim.insurer_claim_ref, created_at=claim.created_at, **claim.details)


def list_claims(ctx: Context, *, buyer_ref: str | None, limit: int, before_id: int | None) -> list[Claim]:
    stmt = select(Claim).order_by(Claim.id.desc()).limit(limit)
    if buyer_ref:
        buyer = ledger_repo.buyer_by_ref(ctx.session, buyer_ref)
        if buyer is None:
            return []
        stmt = stmt.where(Claim.buyer_id == buyer.id)
    if before_id is not None:
        stmt = stmt.where(Claim.id < before_id)
    return list(ctx.session.scalars(stmt))


# --- settings -------------------------------------------------------------------------------------


def settings_out(tenant: Tenant) -> SettingsOut:
    return SettingsOut(utilisation_threshold=tenant.utilisation_threshold.normalize(),
                       claim_lead_days=list(tenant.claim_lead_days),
                       limit_expiry_notice_days=tenant.limit_expiry_notice_days, timezone=tenant.timezone,
                       daily_scan_hour=tenant.daily_scan_hour, locale=tenant.locale)


# Settings that decide which alerts hold, and "today" (the time zone): every buyer's to re-evaluate. The scan hour
# and the display locale move no figure and no alert.
_REVALUING = ("utilisation_threshold", "claim_lead_days", "limit_expiry_notice_days", "timezone")


def put_settings(ctx: Context, body: SettingsIn) -> tuple[SettingsOut, Revaluation | None]:
    """Store the settings; re-evaluate every buyer when a threshold, lead time, notice or the time zone changed
    (in the background, answered with the revaluation, when they are many)."""
    from app.exposure import revaluation
    from app.exposure import service as exposure

    tenant = ctx.session.get(Tenant, ctx.tenant.id)
    assert tenant is not None
    wanted = body.model_dump()
    changed = {k for k, v in wanted.items() if getattr(tenant, k) != v}
    revaluing = bool(changed & set(_REVALUING))
    ids: list[int] | None = []
    job = None
    # One lock order everywhere: the buyers (by id), then their rows, before the tenant row, as ingest takes them
    # (its buyers, then the tenant row's exposure version). Writing the tenant row first deadlocked with ingest.
    if revaluing:
        ids = revaluation.inline_ids(ctx, revaluation.EVERYONE)
        if ids is None:
            job = revaluation.queue(ctx, revaluation.EVERYONE, "settings: " + ", ".join(sorted(changed)))
        else:
            ledger_repo.lock_buyers(ctx.session, ids)
    for k, v in wanted.items():
        setattr(tenant, k, v)
    ctx.session.flush()
    if ids:
        exposure.refresh_buyers(ctx, ids)
    if changed:
        exposure.bump_version(ctx)
    return settings_out(tenant), job


def key_name(ctx: Context, key_id: str) -> str:
    """How an API key is named in an alert's record: its name, else its id."""
    from app.tenants.models import ApiKey

    name = ctx.session.scalar(select(ApiKey.name).where(ApiKey.id == key_id))
    return name or key_id
