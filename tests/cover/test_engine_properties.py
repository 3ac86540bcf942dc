"""Property tests of DOMAIN.md rule 7 on the pure engine."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from app.cover.engine import Decision, OpenItem, Policy, Rates, decision_in_force, evaluate, top_up_limit

START = date(2026, 1, 1)
day = st.integers(min_value=-30, max_value=200).map(lambda n: START + timedelta(days=n))
money = st.integers(min_value=1, max_value=20_000_000).map(lambda c: D(c) / 100)
limit_amount = st.integers(min_value=0, max_value=150_000).map(D)


@st.composite
def decisions(draw, policy_ref: str):
    out = []
    for seq in range(draw(st.integers(0, 4))):
        status = draw(st.sampled_from(["granted", "partly_granted", "reduced", "refused", "withdrawn"]))
        out.append(Decision(
            policy_ref, D(0) if status in ("refused", "withdrawn") else draw(limit_amount), status, draw(day), seq=seq,
            expires_on=draw(st.none() | day), source=draw(st.sampled_from(["insurer", "insurer", "discretionary"])),
            max_credit_period_days=draw(st.none() | st.integers(30, 180)),
        ))
    return out


@st.composite
def items(draw):
    out = []
    for n in range(draw(st.integers(0, 12))):
        issue = draw(day)
        due = issue + timedelta(days=draw(st.integers(0, 180)))
        out.append(OpenItem(f"I{n:02d}", "EUR", draw(money), issue, due, claim_filed_on=draw(st.none() | day)))
    return out


@st.composite
def scenario(draw):
    primary = Policy(
        ref="P", kind=draw(st.sampled_from(["whole_turnover", "excess_of_loss"])), currency="EUR",
        starts_on=START, ends_on=date(2026, 12, 31), indemnity_rate=D(draw(st.integers(70, 95))) / 100,
        max_credit_period_days=draw(st.integers(30, 180)), claim_deadline_days=draw(st.integers(30, 120)),
        max_extension_days=draw(st.none() | st.integers(10, 90)),
    )
    mode = draw(st.sampled_from(["complement", "substitute"]))
    top = Policy(
        ref="T", kind="top_up", currency="EUR", starts_on=START, ends_on=date(2026, 12, 31),
        indemnity_rate=D(draw(st.integers(70, 95))) / 100, primary_ref="P", mode=mode,
        ratio=D(draw(st.integers(50, 200))) / 100, per_buyer_cap=draw(st.none() | limit_amount),
        countries=draw(st.sampled_from([frozenset(), frozenset({"FR"}), frozenset({"DE"})])),
    )
    ds = draw(decisions("P")) + [replace(d, seq=d.seq + 100) for d in draw(decisions("T"))]
    return dict(country="FR", items=draw(items()), policies=[primary, top], decisions=ds,
                valued_on=draw(day), rates=Rates())


@settings(max_examples=400, deadline=None)
@given(scenario())
def test_layers_add_up_to_outstanding(s):
    r = evaluate(**s)
    for c in r.invoices:
        assert c.covered_primary >= 0 and c.covered_top_up >= 0 and c.uncovered >= 0
        assert c.covered_primary + c.covered_top_up + c.uncovered == c.open_balance
        assert (c.reason is None) == (c.uncovered == 0)
    assert r.covered_primary + r.covered_top_up + r.uncovered == r.outstanding
    assert r.outstanding == r.not_due + r.overdue_1_30 + r.overdue_31_60 + r.overdue_61_90 + r.overdue_over_90
    assert 0 <= r.indemnifiable <= r.covered_primary + r.covered_top_up


@settings(max_examples=400, deadline=None)
@given(scenario())
def test_no_layer_covers_more_than_its_largest_limit_in_force(s):
    r = evaluate(**s)
    primary, top = s["policies"]
    covered_dates = [c.issue_date for c in r.invoices if c.covered_primary > 0]
    if covered_dates:
        largest = max(decision_in_force(s["decisions"], "P", d).limit for d in covered_dates)
        assert r.covered_primary <= largest
    top_dates = [c.issue_date for c in r.invoices if c.covered_top_up > 0]
    if top_dates:
        largest_t = max(top_up_limit(s["decisions"], top, primary, d, "EUR", Rates())[0] for d in top_dates)
        assert r.covered_top_up <= largest_t


@settings(max_examples=400, deadline=None)
@given(scenario(), st.data())
def test_a_payment_never_increases_the_uncovered_amount(s, data):
    if not s["items"]:
        return
    before = evaluate(**s)
    items = list(s["items"])
    i = data.draw(st.integers(0, len(items) - 1))
    paid = data.draw(st.integers(1, int(items[i].open_balance * 100))) / D(100)
    items[i] = replace(items[i], open_balance=items[i].open_balance - paid)
    after = evaluate(**(s | {"items": items}))
    assert after.uncovered <= before.uncovered


@settings(max_examples=200, deadline=None)
@given(scenario(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(s, rnd: random.Random):
    shuffled = list(s["items"])
    rnd.shuffle(shuffled)
    decisions = list(s["decisions"])
    rnd.shuffle(decisions)
    assert evaluate(**s) == evaluate(**(s | {"items": shuffled, "decisions": decisions}))
