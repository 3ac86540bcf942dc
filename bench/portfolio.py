"""A seeded generator of realistic portfolios for the benchmark.

One insured (tenant) in EUR with a whole turnover primary policy and a complement Top Up, buyers in several
countries (most in France, Germany, Italy, Spain; a few in the UK, the US and Switzerland, invoiced in their
currency: GBP for 5% of the buyers, CHF for 1%),
a skewed ledger (one large buyer holds a share of all invoices, a few heavy buyers many, most buyers a handful),
terms from 30 to 150 days, late payers, payments of what the others owe, insurer decisions with reductions and
withdrawals, country limits and daily FX rates. The same seed gives the same portfolio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

TODAY = date(2026, 6, 30)
YEAR_START = date(2026, 1, 1)
COUNTRIES = [("FR", 0.39), ("DE", 0.20), ("IT", 0.15), ("ES", 0.12), ("BE", 0.05), ("GB", 0.05), ("US", 0.03),
             ("CH", 0.01)]
CURRENCY_OF = {"GB": "GBP", "US": "USD", "CH": "CHF"}
TERMS = [30, 45, 60, 60, 60, 90, 120, 150]

PRIMARY = {
    "insurer": "Allianz Trade", "kind": "whole_turnover", "currency": "EUR", "starts_on": "2026-01-01",
    "ends_on": "2026-12-31", "indemnity_rate": "0.90", "max_credit_period_days": 120, "claim_deadline_days": 60,
    "max_extension_days": 90,
}
TOP_UP = {
    "insurer": "Coface", "kind": "top_up", "currency": "EUR", "starts_on": "2026-01-01", "ends_on": "2026-12-31",
    "indemnity_rate": "0.90", "primary_policy_ref": "P", "mode": "complement", "ratio": "1.0",
}


@dataclass
class Portfolio:
    buyers: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    country_limits: dict[str, dict] = field(default_factory=dict)
    fx_rates: list[dict] = field(default_factory=list)
    invoices: list[dict] = field(default_factory=list)
    payments: list[dict] = field(default_factory=list)
    large_buyer: str = ""
    small_buyer: str = ""


def _amount(rng: random.Random) -> str:
    # Log-normal-ish: most invoices a few thousand, a few large ones.
    value = min(250_000.0, max(50.0, rng.lognormvariate(8.0, 1.1)))
    return f"{value:.2f}"


def generate(n_invoices: int, n_buyers: int, seed: int = 8, large_share: float = 0.10) -> Portfolio:
    """`n_invoices` invoices over `n_buyers` buyers; the first buyer gets `large_share` of the invoices."""
    rng = random.Random(seed)
    p = Portfolio()
    countries, weights = zip(*COUNTRIES, strict=True)
    late: set[str] = set()
    for b in range(n_buyers):
        country = "FR" if b < 2 else rng.choices(countries, weights)[0]
        ref = f"CLI-{b:06d}"
        p.buyers.append({"ref": ref, "name": f"Buyer {b} {country}", "country": country})
        if rng.random() < 0.08:
            late.add(ref)
        limit = rng.choice([10_000, 25_000, 50_000, 100_000, 250_000, 500_000])
        roll = rng.random()
        if b == 0:
            limit = 5_000_000
        if roll < 0.03 and b > 1:
            p.decisions.append({"buyer_ref": ref, "status": "refused", "effective_from": "2026-01-01"})
            continue
        p.decisions.append({"buyer_ref": ref, "amount": f"{limit}.00", "status": "granted",
                            "effective_from": "2026-01-01"})
        if 0.03 <= roll < 0.09 and b > 1:  # a reduction during the year
            day = YEAR_START + timedelta(days=rng.randrange(30, 170))
            p.decisions.append({"buyer_ref": ref, "amount": f"{limit // 2}.00", "status": "reduced",
                                "effective_from": day.isoformat()})
        elif 0.09 <= roll < 0.11 and b > 1:  # a withdrawal
            day = YEAR_START + timedelta(days=rng.randrange(60, 170))
            p.decisions.append({"buyer_ref": ref, "status": "withdrawn", "effective_from": day.isoformat()})
    p.large_buyer, p.small_buyer = p.buyers[0]["ref"], p.buyers[1]["ref"]
    p.country_limits = {"IT": {"amount": "2000000.00", "currency": "EUR", "policy_ref": "P"},
                        "ES": {"amount": "1500000.00", "currency": "EUR"},
                        "US": {"amount": "500000.00", "currency": "EUR", "policy_ref": "P"}}
    day = YEAR_START - timedelta(days=10)
    while day <= TODAY:
        if day.weekday() < 5:
            p.fx_rates.append({"date": day.isoformat(), "base": "EUR", "quote": "USD",
                               "rate": f"{1.08 + rng.uniform(-0.03, 0.03):.4f}"})
            p.fx_rates.append({"date": day.isoformat(), "base": "EUR", "quote": "GBP",
                               "rate": f"{0.85 + rng.uniform(-0.02, 0.02):.4f}"})
            p.fx_rates.append({"date": day.isoformat(), "base": "EUR", "quote": "CHF",
                               "rate": f"{0.94 + rng.uniform(-0.02, 0.02):.4f}"})
        day += timedelta(days=1)
    # Skew: the large buyer, then 2% heavy buyers sharing 30%, the rest spread (Pareto-like).
    heavy = [b["ref"] for b in p.buyers[2 : 2 + max(1, n_buyers // 50)]]
    rest = [b["ref"] for b in p.buyers[1:]]
    country_of = {b["ref"]: b["country"] for b in p.buyers}
    span = (TODAY - YEAR_START).days
    remittances: dict[tuple[str, str, str], list[tuple[date, dict]]] = {}
    for i in range(n_invoices):
        roll = rng.random()
        if roll < large_share:
            ref = p.large_buyer
        elif roll < large_share + 0.30:
            ref = rng.choice(heavy)
        else:
            ref = rng.choice(rest)
        issue = YEAR_START + timedelta(days=rng.randrange(span))
        terms = rng.choice(TERMS)
        due = issue + timedelta(days=terms)
        inv = {"invoice_ref": f"FA 2026/{i:07d}", "buyer_ref": ref, "currency": CURRENCY_OF.get(country_of[ref], "EUR"),
               "amount": _amount(rng), "issue_date": issue.isoformat(), "due_date": due.isoformat()}
        p.invoices.append(inv)
        # Buyers pay what is due (the large buyer keeps its invoices open: the skew that matters), except late
        # payers; one remittance per buyer and month, allocated by the ERP to the invoices it pays.
        if ref != p.large_buyer and ref not in late and due < TODAY - timedelta(days=5) and rng.random() < 0.9:
            paid = min(TODAY, due + timedelta(days=rng.randrange(-10, 20)))
            remittances.setdefault((ref, paid.strftime("%Y-%m"), inv["currency"]), []).append((paid, inv))
    for n, ((ref, _, currency), paid) in enumerate(sorted(remittances.items())):
        total = sum(Decimal(inv["amount"]) for _, inv in paid)
        p.payments.append({"payment_ref": f"VIR-{n:07d}", "buyer_ref": ref, "amount": f"{total:.2f}",
                           "currency": currency, "received_on": max(day for day, _ in paid).isoformat(),
                           "allocations": [{"invoice_ref": inv["invoice_ref"], "amount": inv["amount"]}
                                           for _, inv in paid]})
    # An ERP posts invoices as they are issued (month-end bursts of recent deliveries), not the year shuffled: the
    # portfolio is loaded in delivery order. (Shuffled, every batch would re-walk half of each buyer it touches.)
    p.invoices.sort(key=lambda i: (i["issue_date"], i["invoice_ref"]))
    return p


def extra_invoices(prefix: str, count: int, buyers: list[str], seed: int) -> list[dict]:
    """`count` new EUR invoices over `buyers` (those of the large buyer and the 'during a batch' load)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        issue = TODAY - timedelta(days=rng.randrange(0, 60))
        out.append({"invoice_ref": f"{prefix}-{i:07d}", "buyer_ref": buyers[i % len(buyers)], "currency": "EUR",
                    "amount": _amount(rng), "issue_date": issue.isoformat(),
                    "due_date": (issue + timedelta(days=60)).isoformat()})
    return out
