"""The demo portfolio of `coverwatch serve --demo`: a living book of receivables, dated from the clock's today.

One insured company (Demo Industries SAS, EUR) with about 300 buyers in twelve countries and some 10,000
invoices over 18 months (30 to 120-day terms, a few longer; most paid around their due date, some late payers,
a few defaulting buyers), a whole turnover primary policy whose period contains today, a complement Top Up on
five countries and a substitute Top Up, limit decisions with reductions, refusals, a withdrawal and expiring
limits, country limits, FX rates, claims, daily snapshots for the last 90 days and alerts of every kind the
rules raise. Everything is written through the service layer (the same code as the API), in one transaction,
from a fixed random seed: the same day gives the same book.

The admin key is kept next to the SQLite database (`<file>.demo-key`, mode 0600) so that running the demo
again reuses the tenant and prints the same key; `--rotate-key` revokes it and mints another.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from app.core.clock import today, utcnow
from app.core.config import Settings
from app.core.context import Context, system_context
from app.core.db import Database
from app.core.security import Scope, hash_key
from app.cover import service as cover
from app.cover.schemas import CountryLimitIn, CountryOverride, DecisionStatus, FxRateIn, LimitIn, PolicyIn
from app.exposure.models import ExposureSnapshot
from app.ledger import service as ledger
from app.ledger.schemas import BuyerIn, InvoiceIn
from app.tenants.models import ApiKey, Tenant
from app.tenants.service import create_tenant, issue_key

DEMO_NAME = "Demo Industries SAS"
DEMO_KEY_NAME = "demo admin"
SEED = 20260101
PRIMARY = "AT-WT-01"
TOP_UP = "TOPUP-EU"
SUBSTITUTE = "CAP-PLUS"

# country: (currency of its invoices, buyers, a few name stems)
COUNTRIES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "FR": ("EUR", 70, ("Distribution", "Matériaux", "Agri", "Logistique", "Bâtiment", "Industrie")),
    "DE": ("EUR", 45, ("Handels GmbH", "Werke AG", "Technik GmbH", "Bau KG", "Logistik GmbH")),
    "IT": ("EUR", 30, ("Forniture SpA", "Costruzioni Srl", "Alimentari SpA", "Meccanica Srl")),
    "ES": ("EUR", 30, ("Suministros SL", "Construcciones SA", "Distribuciones SL")),
    "BE": ("EUR", 18, ("Trading NV", "Bouw BV", "Distribution SA")),
    "NL": ("EUR", 20, ("Groothandel BV", "Techniek BV", "Logistiek BV")),
    "GB": ("GBP", 22, ("Supplies Ltd", "Trading plc", "Engineering Ltd")),
    "US": ("USD", 15, ("Corp", "Industries Inc", "Supply LLC")),
    "PL": ("PLN", 12, ("Handel Sp. z o.o.", "Budownictwo S.A.")),
    "PT": ("EUR", 10, ("Distribuição Lda", "Construções SA")),
    "CH": ("CHF", 8, ("Handel AG", "Technik AG")),
    "SE": ("SEK", 10, ("Handel AB", "Bygg AB")),
}
FAMILY = ("Martin", "Bernard", "Dubois", "Weber", "Schmidt", "Rossi", "Bianchi", "García", "López", "Peeters",
          "Janssen", "Smith", "Taylor", "Johnson", "Nowak", "Silva", "Meier", "Lindqvist", "Moreau", "Fontaine",
          "Keller", "Ricci", "Navarro", "Dumont", "De Vries", "Evans", "Miller", "Kowalski", "Costa", "Berg")
# EUR per unit of the foreign currency is 1 / these (EUR base: 1 EUR = rate x quote).
RATES = {"USD": Decimal("1.0850"), "GBP": Decimal("0.8560"), "CHF": Decimal("0.9420"), "PLN": Decimal("4.3100"),
         "SEK": Decimal("11.2400")}
TERMS = (30, 30, 45, 45, 60, 60, 60, 90, 90, 120)


@dataclass
class DemoBuyer:
    ref: str
    name: str
    country: str
    currency: str
    size: Decimal  # average invoice, EUR
    every: int  # days between two deliveries
    habit: str  # punctual | slow | late | defaulting
    limit: Decimal = Decimal(0)
    invoices: list[tuple[str, date, date, Decimal]] = field(default_factory=list)  # ref, delivered, due, amount
    payments: list[tuple[date, Decimal]] = field(default_factory=list)


def ensure_demo(db: Database, settings: Settings, *, rotate_key: bool = False) -> str:
    """Create the demo tenant once and return its admin key: the one kept in the key file while it is valid,
    else (or with rotate_key) a new one, which replaces it in the file."""
    key_file = demo_key_file(settings.database_url)
    with db.session() as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.name == DEMO_NAME)).first()
        if tenant is None:
            tenant, key = create_tenant(session, DEMO_NAME, "EUR")
            seed(system_context(session, tenant, settings), today(settings))
            _write_key(key_file, key)
            return key
        ctx = system_context(session, tenant, settings)
        kept = _read_key(key_file)
        row = None
        if kept is not None:
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(kept))).first()
        if row is not None and row.revoked_at is None and row.tenant_id == tenant.id and not rotate_key:
            return kept  # type: ignore[return-value]
        if row is not None and row.revoked_at is None and row.tenant_id == tenant.id:
            row.revoked_at = utcnow()
        _, key = issue_key(ctx.session, DEMO_KEY_NAME, Scope.admin)
        _write_key(key_file, key)
        return key


def demo_key_file(database_url: str) -> Path:
    """Next to the SQLite file; for a server database, in the working directory."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database + ".demo-key")
    return Path(".coverwatch-demo-key")


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)


# --- the book ---------------------------------------------------------------------------------------


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _in(currency: str, eur: Decimal) -> Decimal:
    return _money(eur * RATES[currency]) if currency != "EUR" else _money(eur)


def _buyers(rng: random.Random) -> list[DemoBuyer]:
    buyers: list[DemoBuyer] = []
    for country, (currency, count, stems) in COUNTRIES.items():
        for i in range(count):
            name = f"{rng.choice(FAMILY)} {stems[i % len(stems)]}"
            ref = f"{country}-{i + 1:03d}"
            size = _money(min(250_000.0, rng.lognormvariate(9.0, 0.8)))  # median ~8,100 EUR an invoice
            habit = rng.choices(("punctual", "slow", "late", "defaulting"), weights=(65, 22, 10, 3))[0]
            buyers.append(DemoBuyer(ref, name, country, currency, size, rng.randint(9, 28), habit))
    return buyers


def _delay(rng: random.Random, habit: str) -> int | None:
    """Days paid after the due date; None: not paid."""
    if habit == "punctual":
        return rng.randint(-10, 6)
    if habit == "slow":
        return rng.randint(0, 30)
    if habit == "late":
        return rng.randint(15, 62)
    return rng.randint(30, 120) if rng.random() > 0.4 else None


def seed(ctx: Context, now: date) -> None:
    """Write the whole demo book for `now` through the service layer."""
    rng = random.Random(SEED)
    start = date(now.year, now.month, 1) - timedelta(days=548)
    start = date(start.year, start.month, 1)
    ends = date(start.year + 2, start.month, 1) - timedelta(days=1)
    cover.put_policy(ctx, PRIMARY, PolicyIn(
        insurer="Allianz Trade", kind="whole_turnover", currency="EUR", starts_on=start, ends_on=ends,
        indemnity_rate=Decimal("0.90"), max_credit_period_days=120, claim_deadline_days=60, max_extension_days=90,
        excluded_countries=["RU", "BY"], country_overrides={"US": CountryOverride(max_credit_period_days=90)}))
    cover.put_policy(ctx, TOP_UP, PolicyIn(
        insurer="Coface", kind="top_up", currency="EUR", starts_on=start, ends_on=ends, indemnity_rate=Decimal("0.90"),
        primary_policy_ref=PRIMARY, mode="complement",
        ratio=Decimal("1.0"), per_buyer_cap=Decimal("250000.00"), countries=["FR", "DE", "IT", "BE", "NL"]))
    cover.put_policy(ctx, SUBSTITUTE, PolicyIn(
        insurer="CCR (Cap+)", kind="top_up", currency="EUR", starts_on=start, ends_on=ends,
        indemnity_rate=Decimal("0.85"),
        primary_policy_ref=PRIMARY, mode="substitute",
        countries=["FR"]))
    _rates(ctx, now)
    buyers = _buyers(rng)
    for b in buyers:
        ledger.upsert_buyer(ctx, b.ref, BuyerIn(name=b.name, country=b.country))
    _first_limits(ctx, rng, buyers, start)
    _invoices(ctx, rng, buyers, start, now)
    _later_decisions(ctx, rng, buyers, now)
    _country_limits(ctx)
    _claims(ctx, buyers, now)
    _missed_deadline(ctx, start, now)
    _snapshots(ctx, buyers, now)


def _missed_deadline(ctx: Context, start: date, now: date) -> None:
    """A buyer with a clean history whose one invoice outlived its claim deadline with no claim filed: its cover
    is lost, and the missed-deadline alert says so. (The late payers' unpaid invoices mostly fall inside the stops
    of cover their own history caused, which uncovers them before any deadline.)"""
    ledger.upsert_buyer(ctx, "FR-OUBLI", BuyerIn(name="Oubli & Fils", country="FR"))
    cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref="FR-OUBLI", amount=Decimal("50000.00"), status="granted",
                                          effective_from=start))
    issued = now - timedelta(days=150)
    ledger.put_invoice(ctx, "INV-OUBLI-1", InvoiceIn(buyer_ref="FR-OUBLI", currency="EUR", amount=Decimal("18400.00"),
                                                     issue_date=issued, due_date=issued + timedelta(days=30)))


def _rates(ctx: Context, now: date) -> None:
    rows = []
    for back in range(0, 120, 7):
        for quote, rate in RATES.items():
            drift = Decimal(1) + Decimal((back % 21) - 10) / Decimal(1000)
            rows.append(FxRateIn(date=now - timedelta(days=back), base="EUR", quote=quote,
                                 rate=(rate * drift).quantize(Decimal("0.0001"))))
    cover.put_rates(ctx, rows)


def _first_limits(ctx: Context, rng: random.Random, buyers: list[DemoBuyer], start: date) -> None:
    """The insurer's first decisions, at the policy's start: most granted around the usual exposure, some
    partly granted, a few refused, a few never asked for."""
    for b in buyers:
        usual = b.size * Decimal(75) / Decimal(b.every)  # about 75 days of deliveries open
        roll = rng.random()
        if roll < 0.04:
            continue  # no decision at all: no cover
        if roll < 0.09:
            cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=b.ref, status="refused", effective_from=start,
                                                  requested_amount=_money(usual), decision_ref=f"D-{b.ref}-1"))
            if b.country == "FR":
                cover.add_limit(ctx, SUBSTITUTE, LimitIn(
                    buyer_ref=b.ref, status="granted", amount=_money(round(usual * Decimal("0.6"), -3) or 5000),
                    effective_from=start, decision_ref=f"C-{b.ref}-1"))
            continue
        factor = Decimal(str(rng.choice((0.6, 0.8, 1.0, 1.2, 1.2, 1.5, 1.5, 2.0, 2.5))))
        amount = max(Decimal(5000), Decimal(round(usual * factor, -3)))
        status: DecisionStatus = "partly_granted" if factor < Decimal("0.8") else "granted"
        b.limit = _money(amount)
        cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=b.ref, status=status, amount=b.limit, effective_from=start,
                                              requested_amount=_money(usual), decision_ref=f"D-{b.ref}-1"))


def _invoices(ctx: Context, rng: random.Random, buyers: list[DemoBuyer], start: date, now: date) -> None:
    """Deliveries every few days for 18 months, and what each buyer paid: one remittance for everything paid
    more than 90 days ago, then one a month. Payments are posted first, unallocated: when the invoices arrive
    the ledger applies them oldest due date first (the insurers' rule), so no alert is ever raised for an
    invoice that was paid long ago."""
    invoices: list[dict[str, object]] = []
    payments: list[dict[str, object]] = []
    n = 0
    old = now - timedelta(days=90)
    for b in buyers:
        paid_on: dict[tuple[int, int] | None, tuple[date, Decimal]] = {}
        day = start + timedelta(days=rng.randint(0, b.every))
        while day <= now:
            n += 1
            terms = rng.choice(TERMS) if rng.random() > 0.004 else 150
            due = day + timedelta(days=terms)
            amount = _in(b.currency, _money(float(b.size) * rng.uniform(0.4, 1.6)))
            ref = f"INV-{day:%y%m}-{n:05d}"
            b.invoices.append((ref, day, due, amount))
            invoices.append({"invoice_ref": ref, "buyer_ref": b.ref, "currency": b.currency, "amount": str(amount),
                             "issue_date": day.isoformat(), "due_date": due.isoformat()})
            delay = _delay(rng, b.habit)
            if delay is not None:
                paid = max(day + timedelta(days=1), due + timedelta(days=delay))
                if paid <= now:
                    b.payments.append((paid, amount))
                    slot = None if paid <= old else (paid.year, paid.month)
                    last, total = paid_on.get(slot, (paid, Decimal(0)))
                    paid_on[slot] = (max(last, paid), total + amount)
            day += timedelta(days=max(1, int(rng.gauss(b.every, b.every / 3))))
        for slot, (last, total) in paid_on.items():
            suffix = "HIST" if slot is None else f"{slot[0]}{slot[1]:02d}"
            payments.append({"payment_ref": f"PAY-{b.ref}-{suffix}", "buyer_ref": b.ref, "currency": b.currency,
                             "amount": str(total), "received_on": last.isoformat()})
    for i in range(0, len(payments), 5000):
        ledger.ingest_payments(ctx, payments[i:i + 5000])
    batch: list[dict[str, object]] = []
    for b in buyers:  # a buyer's invoices in one batch
        mine = [x for x in invoices if x["buyer_ref"] == b.ref]
        if len(batch) + len(mine) > 5000:
            ledger.ingest_invoices(ctx, batch)
            batch = []
        batch.extend(mine)
    ledger.ingest_invoices(ctx, batch)


def _open_at(b: DemoBuyer, on: date) -> list[tuple[str, date, date, Decimal]]:
    """The buyer's invoices open on a day, with their open balance: payments received by then applied to the
    invoices delivered by then, oldest due date first (as the ledger does)."""
    paid = sum((a for d, a in b.payments if d <= on), Decimal(0))
    out = []
    for ref, issued, due, amount in sorted((i for i in b.invoices if i[1] <= on), key=lambda i: (i[2], i[1], i[0])):
        take = min(paid, amount)
        paid -= take
        if amount - take > 0:
            out.append((ref, issued, due, amount - take))
    return out


def _eur(b: DemoBuyer, amount: Decimal) -> Decimal:
    return amount if b.currency == "EUR" else amount / RATES[b.currency]


def _open_eur(b: DemoBuyer, on: date) -> Decimal:
    return sum((_eur(b, a) for _, _, _, a in _open_at(b, on)), Decimal(0))


def _later_decisions(ctx: Context, rng: random.Random, buyers: list[DemoBuyer], now: date) -> None:
    """What the insurer decided lately: reductions (one below exposure), a withdrawal, a refusal of a renewal,
    increases, and limits that expire within the month."""
    granted = [b for b in buyers if b.limit > 0 and b.currency == "EUR"]
    rng.shuffle(granted)
    exposed = sorted(granted, key=lambda b: _open_eur(b, now), reverse=True)
    below = exposed[0]
    cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=below.ref, status="reduced", effective_from=now - timedelta(days=6),
                                          amount=_money(max(Decimal(5000), round(_open_eur(below, now) / 3, -3))),
                                          decision_ref=f"D-{below.ref}-2"))
    for b in granted[:8]:
        cover.add_limit(ctx, PRIMARY, LimitIn(
            buyer_ref=b.ref, status="reduced", effective_from=now - timedelta(days=rng.randint(20, 120)),
            amount=_money(max(Decimal(2000), round(b.limit / 2, -3))), decision_ref=f"D-{b.ref}-2"))
    withdrawn = next(b for b in exposed[1:] if b.country == "FR" and b not in granted[:8])
    cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=withdrawn.ref, status="withdrawn",
                                          effective_from=now - timedelta(days=12), decision_ref=f"D-{withdrawn.ref}-2"))
    cover.add_limit(ctx, SUBSTITUTE, LimitIn(
        buyer_ref=withdrawn.ref, status="granted", amount=_money(round(withdrawn.limit / 2, -3) or 5000),
        effective_from=now - timedelta(days=12), decision_ref=f"C-{withdrawn.ref}-1"))
    for b in granted[8:14]:
        cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=b.ref, status="granted", amount=_money(b.limit * 2),
                                              effective_from=now - timedelta(days=rng.randint(10, 200)),
                                              decision_ref=f"D-{b.ref}-3"))
    for b in granted[14:20]:
        cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=b.ref, status="granted", amount=b.limit,
                                              effective_from=now - timedelta(days=rng.randint(30, 90)),
                                              expires_on=now + timedelta(days=rng.randint(5, 25)),
                                              decision_ref=f"D-{b.ref}-4"))
    last = granted[20]
    cover.add_limit(ctx, PRIMARY, LimitIn(buyer_ref=last.ref, status="refused", effective_from=now - timedelta(days=30),
                                          decision_ref=f"D-{last.ref}-5"))


def _country_limits(ctx: Context) -> None:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    from app.exposure.queries import countries

    for row in countries(ctx):
        totals[row.country] = row.outstanding
    for country, share in (("IT", "0.85"), ("ES", "1.40"), ("GB", "1.25"), ("US", "1.10"), ("FR", "1.50")):
        amount = max(Decimal(10000), (totals[country] * Decimal(share)).quantize(Decimal("1000")))
        cover.put_country_limit(ctx, country, CountryLimitIn(amount=amount, currency="EUR",
                                                             policy_ref=PRIMARY))


def _claims(ctx: Context, buyers: list[DemoBuyer], now: date) -> None:
    """Claims filed in time for the oldest unpaid invoices of a few defaulting buyers."""
    from app.alerts import service as alerts
    from app.alerts.schemas import ClaimIn

    filed = 0
    for b in buyers:
        unpaid = [(ref, due) for ref, _, due, _ in _open_at(b, now) if due < now - timedelta(days=45)]
        if b.habit != "defaulting" or not unpaid or filed >= 4:
            continue
        ref, due = unpaid[0]
        alerts.file_claim(ctx, ClaimIn(buyer_ref=b.ref, invoice_refs=[ref], filed_on=min(now, due + timedelta(days=40)),
                                       insurer_claim_ref=f"SIN-{b.ref}"))
        filed += 1


def _snapshots(ctx: Context, buyers: list[DemoBuyer], now: date) -> None:
    """Today's snapshot from the stored exposure (as the daily scan takes it), and the 89 days before it
    rebuilt from the demo's own ledger: each day's open invoices against the buyer's limits then."""
    from app.exposure.service import snapshot

    snapshot(ctx)
    ids = {b.ref: b.id for b in ledger_buyers(ctx)}
    top_up_countries = {"FR", "DE", "IT", "BE", "NL"}
    rows = []
    for back in range(1, 90):
        on = now - timedelta(days=back)
        for b in buyers:
            open_items = _open_at(b, on)
            open_eur = _money(sum((_eur(b, a) for _, _, _, a in open_items), Decimal(0)))
            overdue = _money(sum((_eur(b, a) for _, _, due, a in open_items if due < on), Decimal(0)))
            primary = min(open_eur, b.limit)
            top_up = min(open_eur - primary, b.limit) if b.country in top_up_countries else Decimal(0)
            uncovered = open_eur - primary - top_up
            limits = b.limit * (2 if b.country in top_up_countries else 1)
            status = ("no_cover" if b.limit == 0 and open_eur > 0 else "above_cover" if uncovered > 0
                      else "above_primary" if top_up > 0 else "ok")
            rows.append({
                "tenant_id": ctx.tenant.id, "buyer_id": ids[b.ref], "day": on, "currency": "EUR",
                "outstanding": open_eur, "overdue": overdue, "covered_primary": primary, "covered_top_up": top_up,
                "uncovered": uncovered, "indemnifiable": _money((primary + top_up) * Decimal("0.90")),
                "utilisation": (open_eur / limits).quantize(Decimal("0.0001")) if limits else None,
                "status": status,
            })
    ctx.session.execute(insert(ExposureSnapshot), rows)


def ledger_buyers(ctx: Context) -> list:  # type: ignore[type-arg]
    from app.ledger.models import Buyer

    return list(ctx.session.scalars(select(Buyer)))
