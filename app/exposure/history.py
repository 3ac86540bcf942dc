"""Exposure over time, from the daily snapshots: the portfolio's totals day by day (the console's trend chart).

Kept apart from the live reads in router.py: it reads `exposure_snapshots` only.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.context import Context, ContextDep
from app.core.money import quantize
from app.core.security import ReadAccess
from app.cover import engine
from app.cover import repository as cover_repo
from app.exposure.models import ExposureSnapshot
from app.exposure.router import NOT_MODIFIED, Polled

router = APIRouter(prefix="/v1", tags=["exposure"])
SUMMED = ("outstanding", "overdue", "covered_primary", "covered_top_up", "uncovered", "indemnifiable")


class SnapshotDayOut(BaseModel):
    day: date
    currency: str
    buyers: int
    outstanding: Decimal
    overdue: Decimal
    covered_primary: Decimal
    covered_top_up: Decimal
    uncovered: Decimal
    indemnifiable: Decimal
    errors: list[str]


def _sums_by_day(session: Session, since: date) -> list[tuple[date, str, int, dict[str, Decimal]]]:
    stmt = (
        select(ExposureSnapshot.day, ExposureSnapshot.currency, func.count(),
               *[func.coalesce(func.sum(getattr(ExposureSnapshot, f)), 0) for f in SUMMED])
        .where(ExposureSnapshot.day >= since)
        .group_by(ExposureSnapshot.day, ExposureSnapshot.currency)
        .order_by(ExposureSnapshot.day)
    )
    return [(r[0], r[1], r[2], {f: Decimal(v) for f, v in zip(SUMMED, r[3:], strict=True)})
            for r in session.execute(stmt)]


def history(ctx: Context, days: int) -> list[SnapshotDayOut]:
    """Totals per snapshot day in the tenant's currency, converted at today's rates (a trend, not a revaluation);
    a missing rate leaves the day's figures without that currency and names it in `errors`."""
    base = ctx.tenant.currency
    rates = engine.Rates(cover_repo.rates_on(ctx.session, ctx.today))
    out: dict[date, SnapshotDayOut] = {}
    for day, currency, count, sums in _sums_by_day(ctx.session, ctx.today - timedelta(days=days - 1)):
        row = out.setdefault(day, SnapshotDayOut(day=day, currency=base, buyers=0, errors=[],
                                                 **dict.fromkeys(SUMMED, Decimal(0))))
        row.buyers += count
        for f, amount in sums.items():
            converted = rates.convert(amount, currency, base) if amount else Decimal(0)
            if converted is None:
                message = f"missing FX rate {currency}/{base} on or before {ctx.today.isoformat()}"
                if message not in row.errors:
                    row.errors.append(message)
                continue
            setattr(row, f, getattr(row, f) + converted)
    for row in out.values():
        for f in SUMMED:
            setattr(row, f, quantize(getattr(row, f), base))
    return list(out.values())


@router.get("/exposure/history", response_model=list[SnapshotDayOut], responses=NOT_MODIFIED)
def exposure_history(
    ctx: ContextDep, _: ReadAccess, __: Polled,
    days: Annotated[int, Query(ge=1, le=731, description="How many days back from today")] = 90,
) -> list[SnapshotDayOut]:
    """The portfolio's exposure day by day, from the daily scan's snapshots, oldest first."""
    return history(ctx, days)
