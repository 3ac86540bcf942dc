"""Demo data for `coverwatch serve --demo`: one insured company, a primary policy and a Top Up, buyers in
five countries, invoices, payments, limits (one reduced, one withdrawn) and FX rates, dated around today."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from app.core.clock import today
from app.core.config import Settings
from app.core.context import Context, system_context
from app.core.db import Database
from app.core.security import Scope
from app.cover import service as cover
from app.cover.schemas import FxRateIn, LimitIn, PolicyIn
from app.ledger import service as ledger
from app.ledger.schemas import BuyerIn, InvoiceIn, PaymentIn
from app.tenants.models import Tenant
from app.tenants.service import create_tenant, issue_key

DEMO_NAME = "Demo Industries SAS"

BUYERS = [
    ("DUPONT", "Dupont Distribution", "FR", "120000.00"),
    ("MUELLER", "Müller Handels GmbH", "DE", "80000.00"),
    ("GARCIA", "García Suministros SL", "ES", "60000.00"),
    ("ROSSI", "Rossi Forniture SpA", "IT", "50000.00"),
    ("ACME-US", "Acme Corp", "US", "40000.00"),
]


def ensure_demo(db: Database, settings: Settings) -> str:
    """Create the demo tenant once; every call returns a fresh admin key for it."""
    with db.session() as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.name == DEMO_NAME)).first()
        if tenant is not None:
            ctx = system_context(session, tenant, settings)
            _, key = issue_key(ctx.session, "demo admin", Scope.admin)
            return key
        tenant, key = create_tenant(session, DEMO_NAME, "EUR")
        _seed(system_context(session, tenant, settings), today(settings))
        return key


def _seed(ctx: Context, now: date) -> None:
    year_start = date(now.year, 1, 1)
    year_end = date(now.year, 12, 31)
    cover.put_policy(ctx, "AT-2026", PolicyIn(
        insurer="Allianz Trade", kind="whole_turnover", currency="EUR", starts_on=year_start, ends_on=year_end,
        indemnity_rate=Decimal("0.90"), max_credit_period_days=120, claim_deadline_days=60, max_extension_days=90,
        excluded_countries=["RU"]))
    cover.put_policy(ctx, "TOPUP-2026", PolicyIn(
        insurer="Coface", kind="top_up", currency="EUR", starts_on=year_start, ends_on=year_end,
        indemnity_rate=Decimal("0.90"), primary_policy_ref="AT-2026",
        mode="complement", ratio=Decimal("1.0"), countries=["FR", "DE", "IT"]))
    cover.put_rates(ctx, [FxRateIn(date=now - timedelta(days=1), base="EUR", quote="USD", rate=Decimal("1.0850"))])
    for ref, name, country, granted in BUYERS:
        ledger.upsert_buyer(ctx, ref, BuyerIn(name=name, country=country))
        cover.add_limit(ctx, "AT-2026", LimitIn(buyer_ref=ref, amount=Decimal(granted), status="granted",
                                                effective_from=year_start))
    cover.add_limit(ctx, "AT-2026", LimitIn(buyer_ref="GARCIA", amount=Decimal("20000.00"), status="reduced",
                                            effective_from=now - timedelta(days=20)))
    cover.add_limit(ctx, "AT-2026", LimitIn(buyer_ref="ACME-US", status="withdrawn",
                                            effective_from=now - timedelta(days=10)))
    n = 0
    for ref, _, _, granted in BUYERS:
        for i, share in enumerate(("0.45", "0.40", "0.35", "0.30")):
            n += 1
            issued = now - timedelta(days=70 - 18 * i)
            currency = "USD" if ref == "ACME-US" else "EUR"
            amount = (Decimal(granted) * Decimal(share)).quantize(Decimal("0.01"))
            ledger.put_invoice(ctx, f"INV-{n:04d}", InvoiceIn(
                buyer_ref=ref, currency=currency, amount=amount, issue_date=issued,
                due_date=issued + timedelta(days=60)))
    ledger.put_payment(ctx, "PAY-0001", PaymentIn(buyer_ref="DUPONT", amount=Decimal("30000.00"), currency="EUR",
                                                  received_on=now - timedelta(days=5)))

