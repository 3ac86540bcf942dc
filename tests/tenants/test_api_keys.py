from tests.helpers import buyer, ok

PROBLEM = "application/problem+json"


def test_missing_unknown_and_revoked_keys_are_401(anon, api):
    r = anon.get("/v1/buyers")
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert anon.get("/v1/buyers", headers={"Authorization": "Bearer cw_nope"}).status_code == 401

    created = ok(api.post("/v1/api-keys", json={"name": "dashboard", "scope": "read"}), 201)
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert anon.get("/v1/buyers", headers=headers).status_code == 200
    ok(api.delete(f"/v1/api-keys/{created['id']}"))
    assert anon.get("/v1/buyers", headers=headers).status_code == 401


def test_scopes(anon, api):
    read = ok(api.post("/v1/api-keys", json={"name": "dash", "scope": "read"}), 201)["key"]
    ingest = ok(api.post("/v1/api-keys", json={"name": "erp", "scope": "ingest"}), 201)["key"]
    as_read = {"Authorization": f"Bearer {read}"}
    as_ingest = {"Authorization": f"Bearer {ingest}"}
    body = {"name": "Dupont", "country": "FR"}

    r = anon.put("/v1/buyers/B1", json=body, headers=as_read)
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    assert "ingest" in r.json()["detail"]
    assert anon.put("/v1/buyers/B1", json=body, headers=as_ingest).status_code == 201
    assert anon.get("/v1/buyers/B1", headers=as_read).status_code == 200
    assert anon.get("/v1/buyers/B1", headers=as_ingest).status_code == 200
    # API keys are the admin's business only.
    assert anon.get("/v1/api-keys", headers=as_ingest).status_code == 403
    assert anon.post("/v1/api-keys", json={"name": "x", "scope": "admin"}, headers=as_ingest).status_code == 403


def test_keys_are_shown_once_and_stored_hashed(api, database):
    created = ok(api.post("/v1/api-keys", json={"name": "erp", "scope": "ingest"}, headers={"Idempotency-Key": "k1"}),
                 201)
    key = created["key"]
    listed = ok(api.get("/v1/api-keys"))["items"]
    assert all("key" not in k for k in listed)
    assert any(k["id"] == created["id"] and key.startswith(k["prefix"]) for k in listed)
    replay = api.post("/v1/api-keys", json={"name": "erp", "scope": "ingest"}, headers={"Idempotency-Key": "k1"})
    assert replay.status_code == 201 and replay.json()["id"] == created["id"]
    assert "key" not in replay.json() or replay.json().get("key") is None
    from sqlalchemy import text

    with database.engine.connect() as conn:
        stored = conn.execute(text("SELECT key_hash FROM api_keys WHERE id = :id"), {"id": created["id"]}).scalar()
        dumped = conn.execute(text("SELECT body FROM idempotency_records")).scalars().all()
    assert stored != key and len(stored) == 64
    assert all(key not in body for body in dumped)


def test_bad_scope_is_a_problem(api):
    r = api.post("/v1/api-keys", json={"name": "x", "scope": "superuser"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["pointer"] == "/scope"


def test_revoking_another_tenants_key_is_404(make_tenant):
    a, b = make_tenant(), make_tenant()
    key_a = ok(a.client.get("/v1/api-keys"))["items"][0]["id"]
    assert b.client.delete(f"/v1/api-keys/{key_a}").status_code == 404
    buyer(a.client, "B1")
    assert a.client.get("/v1/buyers/B1").status_code == 200
