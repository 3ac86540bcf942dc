"""The tenant filter comes from the session (app/core/db.py), not from the queries or from a test's set-up.

Plain ORM statements with no tenant condition, run on sessions of the app's own `Database`: bound to a tenant they
see, change and write that tenant's rows only; unbound (the system scope of the CLI and the scheduled jobs, which
bind a tenant per unit of work with `system_context`) the very same statement sees every tenant's rows, which is
what proves the filter above was added by the mechanism.
"""

import pytest
from sqlalchemy import delete, func, select, update

from app.core.db import CrossTenantWrite
from app.ledger.models import Buyer, Invoice
from app.tenants.models import ApiKey
from tests.helpers import buyer, invoice


@pytest.fixture
def two_tenants(make_tenant):
    a, b = make_tenant("Alpha SAS"), make_tenant("Bravo SAS")
    for t, prefix in ((a, "ALPHA"), (b, "BRAVO")):
        buyer(t.client, f"{prefix}-B1")
        invoice(t.client, f"{prefix}-INV1", "100.00", "2026-03-01", "2026-03-31", buyer_ref=f"{prefix}-B1")
    return a, b


def _refs(session, tenants) -> set[str]:
    stmt = select(Buyer.ref).where(Buyer.tenant_id.in_(tenants))  # only this test's tenants, whoever else ran
    return set(session.scalars(stmt))


def test_a_bound_session_sees_only_its_tenant_although_the_query_has_no_tenant_filter(database, two_tenants):
    a, b = two_tenants
    both = [a.id, b.id]
    with database.session() as unbound:
        assert _refs(unbound, both) == {"ALPHA-B1", "BRAVO-B1"}
        a_buyer_id = unbound.scalars(select(Buyer.id).where(Buyer.ref == "ALPHA-B1", Buyer.tenant_id == a.id)).one()
    for session in (database.session(b.id), database.read_session(b.id)):
        with session:
            assert _refs(session, both) == {"BRAVO-B1"}
            # A join, an aggregate and a lookup by A's primary key: B's rows or nothing.
            joined = session.execute(select(Invoice.ref, Buyer.ref).join(Buyer, Invoice.buyer_id == Buyer.id)
                                     .where(Buyer.tenant_id.in_(both))).all()
            assert joined == [("BRAVO-INV1", "BRAVO-B1")]
            assert session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.tenant_id.in_(both))) == 1
            assert session.get(Buyer, a_buyer_id) is None


def test_a_bound_session_changes_and_writes_only_its_tenant(database, two_tenants):
    a, b = two_tenants
    both = [a.id, b.id]
    with database.session(b.id) as session, session.begin():
        changed = session.execute(update(Buyer).where(Buyer.tenant_id.in_(both)).values(sector="renamed"))
        assert changed.rowcount == 1
        session.add(Buyer(ref="BRAVO-NEW", name="stamped", country="FR"))  # no tenant_id given: B's
    with database.session(b.id) as session, session.begin():
        session.add(Buyer(tenant_id=a.id, ref="ALPHA-SLIPPED", name="refused", country="FR"))
        with pytest.raises(CrossTenantWrite):
            session.flush()
        session.rollback()
    with database.session(b.id) as session, session.begin():
        assert session.execute(delete(Invoice).where(Invoice.ref == "ALPHA-INV1")).rowcount == 0
    with database.session() as unbound:
        rows = unbound.execute(select(Buyer.tenant_id, Buyer.ref, Buyer.sector)
                               .where(Buyer.tenant_id.in_(both)).order_by(Buyer.ref)).all()
        assert rows == [(a.id, "ALPHA-B1", None), (b.id, "BRAVO-B1", "renamed"), (b.id, "BRAVO-NEW", None)]
        assert unbound.scalar(select(func.count()).select_from(Invoice)
                              .where(Invoice.ref == "ALPHA-INV1", Invoice.tenant_id == a.id)) == 1


def test_every_tenant_table_is_tenant_scoped():
    """A table with a tenant_id column that does not subclass TenantScoped would escape the filter."""
    from app.core.db import Base, TenantScoped

    for mapper in Base.registry.mappers:
        if "tenant_id" in mapper.columns and mapper.class_.__tablename__ != "tenants":
            assert issubclass(mapper.class_, TenantScoped), mapper.class_.__name__


# An index SQLite's queries name (INDEXED BY): the unique key it repeats has no name there.
NAMED_FOR_SQLITE = {"ix_fx_rates_lookup"}


def test_every_tenant_table_has_one_index_leading_with_the_tenant_and_none_redundant():
    """Each tenant's rows are found (and cascaded on the tenant's deletion) through an index that leads with
    `tenant_id`. No index is the leading part of another index or unique key of its table (`tenant_id` alone beside
    an index that leads with it: `TenantScoped.tenant_index`): it would serve no lookup the other does not, and
    every write would keep it up too. Partial indexes (a tenant's stale rows, its rows in error) hold some rows
    only: they count for neither."""
    from sqlalchemy import UniqueConstraint

    import app.models  # noqa: F401  (every model registered)
    from app.core.db import Base, TenantScoped

    checked = 0
    for table in Base.metadata.sorted_tables:
        indexes = [(i.name, [c.name for c in i.columns]) for i in table.indexes
                   if i.dialect_options["postgresql"]["where"] is None and not i.unique]
        keys = indexes + [(u.name, [c.name for c in u.columns]) for u in table.constraints
                          if isinstance(u, UniqueConstraint)]
        for name, columns in indexes:
            if name in NAMED_FOR_SQLITE:
                continue
            covering = [other for other, cols in keys if other != name and cols[: len(columns)] == columns]
            assert not covering, f"{table.name}: {name} {columns} is the leading part of {covering}"
        model = next((m.class_ for m in Base.registry.mappers if m.local_table is table), None)
        if model is not None and issubclass(model, TenantScoped):
            assert any(cols[0] == "tenant_id" for _, cols in keys), f"{table.name}: no index leads with tenant_id"
            checked += 1
    assert checked >= 20
