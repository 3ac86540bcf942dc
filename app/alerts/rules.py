"""Which alert conditions hold: pure functions over a buyer's cover result (or a country's totals).

The lifecycle (alerts/service.py) compares what should be open with what is open,
raising the new conditions and resolving the cleared ones, in the transaction of
the change that caused them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from app.cover import engine

EXPOSURE_ABOVE_PRIMARY = "exposure_above_primary"
EXPOSURE_ABOVE_COVER = "exposure_above_cover"
UTILISATION_HIGH = "utilisation_high"
NO_COVER = "no_cover"
COUNTRY_ABOVE_LIMIT = "country_above_limit"
CLAIM_DEADLINE_NEAR = "claim_deadline_near"
CLAIM_DEADLINE_MISSED = "claim_deadline_missed"
STOP_OF_COVER = "stop_of_cover"
LIMIT_EXPIRING = "limit_expiring"
LIMIT_REDUCED_BELOW_EXPOSURE = "limit_reduced_below_exposure"
FX_RATE_MISSING = "fx_rate_missing"

ALERT_TYPES = (
    EXPOSURE_ABOVE_PRIMARY, EXPOSURE_ABOVE_COVER, UTILISATION_HIGH, NO_COVER, COUNTRY_ABOVE_LIMIT,
    CLAIM_DEADLINE_NEAR, CLAIM_DEADLINE_MISSED, STOP_OF_COVER, LIMIT_EXPIRING, LIMIT_REDUCED_BELOW_EXPOSURE,
    FX_RATE_MISSING,
)
# Alerts about one invoice: their subject is the invoice, which may move to another buyer.
INVOICE_TYPES = frozenset({CLAIM_DEADLINE_NEAR, CLAIM_DEADLINE_MISSED})
# Conditions evaluated from a buyer's cover on every refresh.
BUYER_TYPES = frozenset({
    EXPOSURE_ABOVE_PRIMARY, EXPOSURE_ABOVE_COVER, UTILISATION_HIGH, NO_COVER, CLAIM_DEADLINE_NEAR,
    CLAIM_DEADLINE_MISSED, STOP_OF_COVER, LIMIT_EXPIRING, LIMIT_REDUCED_BELOW_EXPOSURE,
})
# A missed claim deadline is never cleared by itself: the cover is lost.
STICKY = frozenset({CLAIM_DEADLINE_MISSED})


@dataclass(frozen=True)
class AlertSettings:
    utilisation_threshold: Decimal = Decimal("0.90")
    claim_lead_days: tuple[int, ...] = (14, 7, 1)
    limit_expiry_notice_days: int = 30


@dataclass(frozen=True)
class Wanted:
    """A condition that holds now, on one subject."""

    type: str
    subject: str
    buyer_ref: str | None = None
    country: str | None = None
    invoice_ref: str | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.subject)


def _s(amount: Decimal, currency: str) -> str:
    return str(engine.quantize(amount, currency))


def tightest_lead(deadline: date, today: date, leads: Iterable[int]) -> int | None:
    """The smallest lead time whose window [deadline - lead, deadline] today is in, if any."""
    inside = [lead for lead in leads if deadline - timedelta(days=lead) <= today <= deadline]
    return min(inside) if inside else None


def buyer_conditions(buyer_ref: str, country: str, r: engine.BuyerCover, today: date,
                     settings: AlertSettings) -> list[Wanted]:
    c = r.currency
    amounts = {"currency": c, "outstanding": _s(r.outstanding, c), "covered_primary": _s(r.covered_primary, c),
               "covered_top_up": _s(r.covered_top_up, c), "uncovered": _s(r.uncovered, c),
               "primary_limit": _s(r.primary_limit, c), "top_up_limit": _s(r.top_up_limit, c),
               "utilisation": str(r.utilisation) if r.utilisation is not None else None}
    base = {"buyer_ref": buyer_ref, "country": country}
    out: list[Wanted] = []
    if r.covered_top_up > 0:
        out.append(Wanted(EXPOSURE_ABOVE_PRIMARY, buyer_ref, details=amounts, **base))
    if r.status == "above_cover":
        out.append(Wanted(EXPOSURE_ABOVE_COVER, buyer_ref, details=amounts, **base))
    if r.status == "no_cover":
        out.append(Wanted(NO_COVER, buyer_ref, details=amounts, **base))
    if r.utilisation is not None and r.utilisation >= settings.utilisation_threshold:
        out.append(Wanted(UTILISATION_HIGH, buyer_ref,
                          details=amounts | {"threshold": str(settings.utilisation_threshold)}, **base))
    if r.stop_of_cover_from is not None:
        out.append(Wanted(STOP_OF_COVER, buyer_ref,
                          details={"stop_of_cover_from": r.stop_of_cover_from.isoformat()}, **base))
    for limit in r.limits:
        if limit.expires_on is not None and today <= limit.expires_on <= today + timedelta(
                days=settings.limit_expiry_notice_days):
            out.append(Wanted(LIMIT_EXPIRING, f"{buyer_ref}/{limit.policy_ref}", details={
                "policy_ref": limit.policy_ref, "layer": limit.layer, "amount": _s(limit.amount, c), "currency": c,
                "expires_on": limit.expires_on.isoformat()}, **base))
    for inv in r.invoices:
        if inv.claim_deadline is None:
            continue
        about = {"invoice_ref": inv.invoice_ref, "claim_deadline": inv.claim_deadline.isoformat(),
                 "open_balance": _s(inv.open_balance, c), "currency": c}
        if inv.reason == engine.CLAIM_DEADLINE_PASSED:
            out.append(Wanted(CLAIM_DEADLINE_MISSED, inv.invoice_ref, invoice_ref=inv.invoice_ref,
                              details=about, **base))
            continue
        if inv.claim_filed_on is not None or inv.covered_primary + inv.covered_top_up == 0:
            continue
        lead = tightest_lead(inv.claim_deadline, today, settings.claim_lead_days)
        if lead is not None:
            out.append(Wanted(CLAIM_DEADLINE_NEAR, f"{inv.invoice_ref}/{lead}d", invoice_ref=inv.invoice_ref,
                              details=about | {"lead_days": lead,
                                               "days_left": (inv.claim_deadline - today).days,
                                               "indemnifiable": _s(inv.indemnifiable, c)}, **base))
    return out


def limit_reduced_below_exposure(buyer_ref: str, country: str, r: engine.BuyerCover, status: str,
                                 previous_limit: Decimal | None) -> Wanted | None:
    """Raised by a new decision that leaves exposure uncovered."""
    lowered = status in ("reduced", "refused", "withdrawn") or (
        previous_limit is not None and r.primary_limit < previous_limit)
    if not lowered or r.uncovered <= 0:
        return None
    c = r.currency
    return Wanted(LIMIT_REDUCED_BELOW_EXPOSURE, buyer_ref, buyer_ref=buyer_ref, country=country, details={
        "currency": c, "decision_status": status, "primary_limit": _s(r.primary_limit, c),
        "uncovered": _s(r.uncovered, c), "outstanding": _s(r.outstanding, c)})


def fx_conditions(missing: dict[str, int], today: date) -> list[Wanted]:
    """One alert per missing rate pair ("USD/EUR"), with how many buyers' figures it leaves unknown."""
    return [Wanted(FX_RATE_MISSING, pair, details={"pair": pair, "buyers": count, "on_or_before": today.isoformat()})
            for pair, count in sorted(missing.items())]


def country_conditions(rows: Sequence[Any]) -> list[Wanted]:
    """`rows`: per-country totals (CountryExposureOut)."""
    return [
        Wanted(COUNTRY_ABOVE_LIMIT, row.country, country=row.country, details={
            "currency": row.currency, "outstanding": str(row.outstanding), "country_limit": str(row.country_limit),
            "headroom": str(row.headroom)})
        for row in rows if row.above_limit
    ]
