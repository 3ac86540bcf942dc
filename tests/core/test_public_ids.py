"""Public ids reveal nothing across tenants: alert, claim, decision and delivery ids are a keyed permutation of the
database ids (app/core/public_ids.py), so another tenant's activity never shows as a jump in a tenant's ids."""

import csv
import io
import itertools
import json
import random

from sqlalchemy import select

from app.core import public_ids
from app.tenants.models import Tenant
from app.webhooks.models import WebhookEvent
from tests.helpers import PRIMARY, buyer, invoice, limit, ok

SAFE = 2**53  # exact as a JavaScript number


def _decision(t, ref, amount):
    return limit(t.client, amount, "2026-01-01", buyer_ref=ref, policy="P")["id"]


def test_ids_do_not_move_with_another_tenants_work(make_tenant):
    """B records a decision after each burst of A's work: under a shared counter B's ids would step by A's count
    plus one. Here consecutive ids of B are far apart, in no order, and each still finds its row."""
    a, b = make_tenant("Alpha SAS"), make_tenant("Bravo SAS")
    for t in (a, b):
        ok(t.client.put("/v1/policies/P", json=PRIMARY))
        buyer(t.client, "B1")
    ids_b, ids_a = [], []
    for burst in range(6):
        for _ in range(burst):
            ids_a.append(_decision(a, "B1", "1000.00"))
        ids_b.append(_decision(b, "B1", f"{1000 + burst}.00"))
    assert len(set(ids_a + ids_b)) == len(ids_a) + len(ids_b)
    for ids in (ids_a, ids_b):
        assert all(0 < i < SAFE for i in ids)
        assert all(abs(x - y) > 2**20 for x, y in itertools.pairwise(ids)), ids
    assert ids_b != sorted(ids_b) or ids_b != sorted(ids_b, reverse=True)
    limits = ok(b.client.get("/v1/buyers/B1/limits"))
    assert [d["id"] for d in limits["decisions"]] == ids_b
    assert limits["in_force"][0]["decision_id"] == ids_b[-1]


def test_the_same_id_everywhere_it_is_shown(make_tenant, database):
    """An alert's id is the same in the API, in its webhook payload and in the export; a claim's in its answer,
    its list and its payload; a delivery's in the list and in its retry; a decision's in the answer and the export."""
    t = make_tenant()
    api = t.client
    ok(api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}), 201)
    ok(api.put("/v1/policies/P", json=PRIMARY))
    buyer(api, "B1")
    decision = _decision(t, "B1", "1000.00")
    invoice(api, "I1", "5000.00", "2026-01-10", "2026-02-10")
    claim = ok(api.post("/v1/claims", json={"buyer_ref": "B1", "invoice_refs": ["I1"], "filed_on": "2026-03-20"}),
               201)
    alerts = ok(api.get("/v1/alerts"))["items"]
    assert alerts and ok(api.get(f"/v1/alerts/{alerts[0]['id']}"))["id"] == alerts[0]["id"]
    assert [c["id"] for c in ok(api.get("/v1/claims"))["items"]] == [claim["id"]]

    with database.session(t.id) as session:
        payloads = [json.loads(e.body) for e in session.scalars(select(WebhookEvent))]
    by_type = {}
    for p in payloads:
        by_type.setdefault(p["type"], []).append(p["data"])
    assert {d["id"] for d in by_type["alert.opened"]} <= {a["id"] for a in alerts}
    assert [d["id"] for d in by_type["claim.filed"]] == [claim["id"]]

    exported = list(csv.DictReader(io.StringIO(api.get("/v1/exports/alerts").text)))
    assert {int(r["id"]) for r in exported} == {a["id"] for a in alerts}
    exported = list(csv.DictReader(io.StringIO(api.get("/v1/exports/limits").text)))
    assert [int(r["id"]) for r in exported] == [decision]

    delivery = ok(api.get("/v1/webhook-deliveries"))["items"][0]
    assert ok(api.post(f"/v1/webhook-deliveries/{delivery['id']}/retry"))["id"] == delivery["id"]


def test_the_permutation_is_a_bijection_per_tenant_and_table(database, make_tenant):
    t1, t2 = make_tenant(), make_tenant()
    with database.session() as session:
        one, two = session.get(Tenant, t1.id), session.get(Tenant, t2.id)
    rng = random.Random(11)
    values = [1, 2, 3, 2**26, 2**52 - 1, *(rng.randrange(1, 2**52) for _ in range(2000))]
    for kind in ("alerts", "claims", "limit_decisions", "webhook_deliveries"):
        encoded = [public_ids.encode(one, kind, v) for v in values]
        assert len(set(encoded)) == len(set(values)) and all(0 < e < 2**52 for e in encoded)
        assert [public_ids.decode(one, kind, e) for e in encoded] == values
        assert sum(public_ids.encode(two, kind, v) == e for v, e in zip(values, encoded, strict=True)) == 0
    assert public_ids.encode(one, "alerts", 5) != public_ids.encode(one, "claims", 5)
    assert public_ids.decode(one, "alerts", 2**52) == 0 and public_ids.decode(one, "alerts", 0) == 0
