"""Public ids that reveal nothing across tenants.

Alerts, claims, limit decisions and webhook deliveries keep their database ids (one sequence per table, shared by
every tenant: the engine orders same-day decisions by it, lists page by it). What leaves the API is a keyed
permutation of that id: a four-round Feistel network over 52 bits (below 2**53, exact as a JavaScript number),
its round function an HMAC-SHA256 under the tenant's own secret `public_id_key` and the table's name. A tenant's
ids look random to it and do not move when another tenant works: without its key, its ids say nothing of the
sequence behind them. Decoding an id of another tenant, or one never issued, gives an id no row of this tenant has:
a 404 like any other.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import object_session

from app.tenants.models import Tenant

BITS = 52
HALF = BITS // 2
MASK = (1 << HALF) - 1
ROUNDS = 4

_keys: dict[str, bytes] = {}  # tenant id -> its key (a key never changes: safe to keep for the process)


@event.listens_for(Tenant, "load")
def _remember(tenant: Tenant, context: Any) -> None:
    _keys[tenant.id] = bytes.fromhex(tenant.public_id_key)


def _key(tenant: Tenant) -> bytes:
    key = _keys.get(tenant.id)
    if key is None:
        key = _keys[tenant.id] = bytes.fromhex(tenant.public_id_key)
    return key


def _f(key: bytes, kind: str, round_: int, half: int) -> int:
    digest = hmac.new(key, f"{kind}:{round_}:{half}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") & MASK


def _permute(key: bytes, kind: str, value: int) -> int:
    left, right = value >> HALF, value & MASK
    for r in range(ROUNDS):
        left, right = right, left ^ _f(key, kind, r, right)
    return (left << HALF) | right


def _unpermute(key: bytes, kind: str, value: int) -> int:
    left, right = value >> HALF, value & MASK
    for r in reversed(range(ROUNDS)):
        left, right = right ^ _f(key, kind, r, left), left
    return (left << HALF) | right


def _encode(key: bytes, kind: str, internal: int) -> int:
    if not 0 < internal < 1 << BITS:
        raise ValueError(f"{kind} id {internal} is beyond the public id range")
    value = _permute(key, kind, internal)
    while value == 0:  # cycle-walk: 0 is not an id
        value = _permute(key, kind, value)
    return value


def encode(tenant: Tenant, kind: str, internal: int) -> int:
    """The public id of row `internal` of table `kind` (1 <= id < 2**52, the same range both ways)."""
    return _encode(_key(tenant), kind, internal)


def decode(tenant: Tenant, kind: str, public: int) -> int:
    """The row id behind a public id; 0 (no row) for a value outside the range."""
    if not 0 < public < 1 << BITS:
        return 0
    key = _key(tenant)
    value = _unpermute(key, kind, public)
    while value == 0:
        value = _unpermute(key, kind, value)
    return value


class _Row(Protocol):
    @property
    def __tablename__(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...


def of(row: _Row) -> int:
    """The public id of a tenant's row (its tenant's key is found through the row's session)."""
    key = _keys.get(row.tenant_id)
    if key is None:
        session = object_session(row)
        tenant = session.get(Tenant, row.tenant_id) if session is not None else None
        if tenant is None:
            raise LookupError(f"no tenant {row.tenant_id} for a {row.__tablename__} row")
        key = _key(tenant)
    return _encode(key, row.__tablename__, row.id)
