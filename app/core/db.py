"""Engine, sessions, the unit of work, and tenant scoping enforced in one place.

Tenancy: every model that belongs to a tenant inherits `TenantScoped`. Once a
session is bound to a tenant (`bind_tenant`), every ORM SELECT, UPDATE and
DELETE it runs gets `tenant_id = :tenant` added by `with_loader_criteria`, and
every new row it flushes is stamped with that tenant (a row of another tenant
is refused). Queries never repeat the filter by hand. One ORM form gets no
criteria: the bulk UPDATE by primary key (`execute(update(Model), [rows])`);
rows are updated by id with `update_rows`, which filters on the tenant.
"""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import anyio
import orjson
from fastapi import Depends, Request
from psycopg.types.json import set_json_loads
from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.visitors import InternalTraversal

from app.core.types import Fixed

TENANT_KEY = "tenant_id"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantScoped:
    """Mixin: the row belongs to one tenant; sessions bound to a tenant see only its rows.

    `tenant_id` gets an index of its own unless the model sets `tenant_index = False` because another of its indexes
    leads with the tenant and serves the same lookups (and the tenant's cascade): one index less to keep up on every
    write (tests/core/test_tenancy.py holds every model to one or the other)."""

    tenant_index: ClassVar[bool] = True

    @declared_attr
    def tenant_id(cls) -> Mapped[str]:
        return mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"), index=cls.tenant_index)


class CrossTenantWrite(RuntimeError):
    pass


def assign_ids(session: Session, objects: Sequence[Any]) -> None:
    """Give new rows of one table their ids before the flush, from the table's sequence in one query
    (PostgreSQL): their INSERT is then one executemany without RETURNING, several times cheaper for a batch
    than inserting and reading the ids back. Elsewhere (SQLite: rowids, inserted in-process) nothing to do."""
    pending = [o for o in objects if o.id is None]
    if not pending or session.get_bind().dialect.name != "postgresql":
        return
    for obj, id_ in zip(pending, _next_ids(session, type(pending[0]), len(pending)), strict=True):
        obj.id = id_


def _next_ids(session: Session, model: Any, n: int) -> Iterable[int]:
    return session.scalars(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
                           {"table": model.__table__.name, "n": n})


COPY_FROM_ROWS = 200  # from this many rows, PostgreSQL gets them by COPY


def insert_rows(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts of one model's columns, the same keys in each) in the session's transaction.

    Tenancy is checked here, as a flush checks it: a row of a tenant-scoped model says the session's tenant.
    On PostgreSQL, many rows go by COPY (several times cheaper than an executemany of INSERTs: no statement per
    row); otherwise one executemany of the table's Core INSERT, every row with the same columns. (The ORM's bulk
    INSERT left a row's None values out and started a new statement wherever the set of columns changed: 1,820
    round trips for 14,000 invoice covers. With them all rendered, its per-row bookkeeping still made 5,000
    invoices on SQLite about 110 ms against 90.)"""
    if not rows:
        return
    _check_tenant(session, model, rows)
    if len(rows) < COPY_FROM_ROWS or not postgresql(session):
        session.execute(insert(model.__table__), rows)
        return
    table = model.__table__
    dialect = session.get_bind().dialect
    given = list(rows[0])
    # The columns' Python-side defaults (a `recorded_at` timestamp...), which an INSERT applies and COPY does not:
    # worked out once for the call.
    defaults = {c.key: c.default.arg(None) if c.default.is_callable else c.default.arg for c in table.c
                if c.key not in given and c.default is not None and (c.default.is_scalar or c.default.is_callable)}
    names = given + list(defaults)
    # The columns whose type converts a value on its way in (JSON, timestamps; not money, dates or text).
    binds = [(i, bind) for i, n in enumerate(names) if (bind := _copy_processor(table.c[n].type, dialect))]
    columns = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    driver = session.connection().connection.driver_connection  # this transaction's connection
    assert driver is not None
    # In binary: no value spelt out and parsed again (an amount, a date), half the client's CPU of COPY in text.
    with (driver.cursor() as cursor,
          cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN (FORMAT BINARY)") as copy):
        copy.set_types([_copy_type(table.c[n], dialect) for n in names])
        pick = operator.itemgetter(*given) if len(given) > 1 else lambda row: (row[given[0]],)
        fixed = list(defaults.values())
        for row in rows:
            values = [*pick(row), *fixed]
            for i, bind in binds:
                if values[i] is not None:
                    values[i] = bind(values[i])
            copy.write_row(values)


def insert_new_rows(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """`insert_rows` for new rows whose ids the caller needs: each row gets its "id", given before the rows go. On
    PostgreSQL the ids come from the table's sequence in one query (then COPY when many). On SQLite they follow the
    table's largest id: the transaction holds the write lock from its BEGIN IMMEDIATE (`_sqlite_begin`), so no
    other writer takes one meanwhile; then one executemany of one statement. (A multi-row INSERT ... RETURNING
    id had a statement text per number of rows, each kept prepared in the connection's statement cache: 50 MB of
    a web worker after a dozen batches.)"""
    if not rows:
        return
    if postgresql(session):
        ids: Iterable[int] = _next_ids(session, model, len(rows))
    else:
        table = model.__table__
        # On the connection: no tenant criteria (ids are the table's, every tenant's).
        last = session.connection().execute(select(func.max(table.c.id))).scalar() or 0
        ids = range(last + 1, last + 1 + len(rows))
    for row, id_ in zip(rows, ids, strict=True):
        row["id"] = id_
    insert_rows(session, model, rows)


UPDATE_FROM_ROWS = 50  # from this many rows, PostgreSQL gets an update as one statement (`update_rows`)


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # exact: numeric's input reads the text
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def update_rows(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Update rows by id (dicts of one model's columns, "id" and the same keys in each) in the session's transaction,
    in the session's tenant only.

    On PostgreSQL, many rows go in one statement: `UPDATE ... FROM jsonb_populate_recordset(NULL::table, :rows)`,
    the rows as one JSON array read into the table's own row type (each value by its column's input function:
    amounts as exact text). An executemany of one UPDATE per row (the ORM's bulk UPDATE) cost 0.2 ms a row in a
    pipeline: 1.1 s of a 5,000-invoice batch's 5,000 exposure rows. Otherwise one executemany of a Core UPDATE by
    id and tenant (the ORM's bulk UPDATE by primary key gets no tenant criteria: a test names another tenant's row)."""
    if not rows:
        return
    table = model.__table__
    given = [k for k in rows[0] if k != "id"]
    scoped = issubclass(model, TenantScoped) and session.info.get(TENANT_KEY) is not None
    if len(rows) < UPDATE_FROM_ROWS or not postgresql(session):
        stmt = update(table).where(table.c.id == bindparam("_row_id")).values({k: bindparam(k) for k in given})
        if scoped:
            stmt = stmt.where(table.c.tenant_id == bound_tenant(session))
        session.execute(stmt, [{"_row_id": row["id"], **{k: row[k] for k in given}} for row in rows])
        return
    # The columns' Python-side `onupdate` values (an `updated_at`), which the ORM's UPDATE applies: once for the call.
    stamps = {c.key: c.onupdate.arg(None) if c.onupdate.is_callable else c.onupdate.arg for c in table.c
              if c.key not in given and c.onupdate is not None and (c.onupdate.is_scalar or c.onupdate.is_callable)}
    quote = session.get_bind().dialect.identifier_preparer.quote
    sets = ", ".join(f"{quote(table.c[k].name)} = v.{quote(table.c[k].name)}" for k in given)
    sets += "".join(f", {quote(table.c[k].name)} = :{k}" for k in stamps)
    session.execute(
        text(f"UPDATE {table.name} AS t SET {sets} FROM jsonb_populate_recordset(NULL::{table.name}, "
             f"CAST(:rows AS jsonb)) AS v WHERE t.id = v.id" + (" AND t.tenant_id = :tenant" if scoped else "")),
        {"rows": orjson.dumps(rows, default=_json_default).decode(), **stamps,
         **({"tenant": bound_tenant(session)} if scoped else {})},
    )


def _check_tenant(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Tenancy checked as a flush checks it: a row of a tenant-scoped model says the session's tenant."""
    tenant_id = session.info.get(TENANT_KEY)
    if (tenant_id is not None and issubclass(model, TenantScoped)
            and any(r.get("tenant_id") != tenant_id for r in rows)):
        raise CrossTenantWrite(f"{model.__name__} rows of another tenant in a session bound to {tenant_id}")


def _copy_type(column: Any, dialect: Any) -> str:
    """The PostgreSQL type a column's values are sent as in a binary COPY (a foreign key declared without a type has
    its target's)."""
    column_type = column.type
    if isinstance(column_type, NullType) and column.foreign_keys:
        column_type = next(iter(column.foreign_keys)).column.type
    name = column_type.compile(dialect=dialect).lower().split(" collate ")[0].split("(")[0].strip()
    return {"timestamp with time zone": "timestamptz"}.get(name, name)


def _copy_processor(column_type: Any, dialect: Any) -> Any:
    """How a value of this column type goes to the driver: None where the driver takes the Python value as it is
    (a Fixed amount is already a Decimal on PostgreSQL)."""
    if isinstance(column_type, Fixed):
        return None
    return column_type._cached_bind_processor(dialect)


def analyze(session: Session, *models: Any) -> None:
    """Refresh the planner's statistics of these tables, as after any bulk load. SQLite too: without them, at
    1,000,000 invoices it searched a batch's buyers' invoices by (tenant, kind), every invoice of the tenant, instead
    of by buyer (a batch of 5,000 invoices: 70 s, 8.6 s with them). Its ANALYZE reads the whole indexes (a second or
    two at that size): with `analysis_limit` sampling 1,000 rows, the plan stayed the slow one."""
    for model in models:
        session.execute(text(f"ANALYZE {model.__table__.name}"))


def bind_tenant(session: Session, tenant_id: str) -> None:
    session.info[TENANT_KEY] = tenant_id


def bound_tenant(session: Session) -> str:
    """The tenant a session is bound to: what a raw SQL statement (no ORM entity for the filter above to apply
    to) filters on. A session bound to no tenant cannot run one."""
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        raise CrossTenantWrite("a tenant-scoped SQL statement in a session bound to no tenant")
    return str(tenant_id)


def postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


class _Listed(TypeDecorator[Any]):
    """A list of ids or references bound as one text parameter: lines on PostgreSQL (`string_to_array`), a JSON
    array on SQLite (`json_each`)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        if dialect.name == "postgresql":
            return "\n".join(map(str, value))
        return orjson.dumps(list(value)).decode()


class InList(ColumnElement[bool]):
    """`column IN (values)` with the values bound as one parameter whatever their number (`in_list`).

    SQLAlchemy's IN binds a parameter per value: for a batch's 5,000 ids it rendered 5,000 placeholders, each with
    its cast, the driver parsed the text again, and PostgreSQL planned a new statement every time (a fifth of a
    batch's time). Here the statement's text is constant: `= ANY(string_to_array(:p, chr(10))::bigint[])` on
    PostgreSQL (the planner folds the parameter into a constant array, as it does an IN list), `IN (SELECT value
    FROM json_each(:p))` on SQLite. Both probe the column's index."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it stands (not "= 1" on SQLite)
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("values", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any, values: Iterable[Any]) -> None:
        self.column = column
        self.values = bindparam(None, list(values), type_=_Listed(), unique=True)


def in_list(column: Any, values: Iterable[Any]) -> InList:
    """`column IN (values)` for ids or references, one parameter whatever their number (see `InList`)."""
    return InList(column, values)


@compiles(InList)
def _in_list(element: InList, compiler: Any, **kw: Any) -> str:
    values = compiler.process(element.values, **kw)
    return f"{compiler.process(element.column, **kw)} IN (SELECT value FROM json_each({values}))"


@compiles(InList, "postgresql")
def _in_list_pg(element: InList, compiler: Any, **kw: Any) -> str:
    kind = "bigint" if isinstance(element.column.type, Integer) else "text"
    values = compiler.process(element.values, **kw)
    return f"{compiler.process(element.column, **kw)} = ANY(CAST(string_to_array({values}, chr(10)) AS {kind}[]))"


# Per-buyer lookups "each buyer's rows from its own day on". On PostgreSQL: one statement of constant text, the
# buyers and their days as two arrays (`BUYER_DAYS`, parameters from `buyer_days`), each buyer's rows found by a
# LATERAL index scan; an IN list of scalar subqueries or a UNION of 500 parts is planned, and parsed by the driver,
# anew for every batch. Elsewhere (`per_buyer_from_day`): one index range scan per buyer in a UNION ALL; an OR of
# the same conditions makes SQLite scan every row of the tenant.
BUYER_DAYS = "unnest(CAST(:buyers AS bigint[]), CAST(:days AS date[])) AS v(buyer_id, day)"


def buyer_days(session: Session, since: dict[int, Any]) -> dict[str, Any]:
    return {"tenant": bound_tenant(session), "buyers": list(since), "days": list(since.values())}


def json_pairs(session: Session, pairs: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The parameters of a statement reading tuples from one JSON array (`:pairs`: SQLite's `json_each`,
    PostgreSQL's `jsonb_array_elements`; dates written as ISO dates), for the session's tenant (`:tenant`)."""
    return {"tenant": bound_tenant(session), "pairs": orjson.dumps(list(pairs)).decode()}


PARTS = 200  # SQLite allows 500 parts in a compound SELECT


def per_buyer_from_day(stmt: Any, buyer: Any, day: Any, since: dict[int, Any]) -> Iterator[Any]:
    items = list(since.items())
    for start in range(0, len(items), PARTS):
        chunk = items[start : start + PARTS]
        # As many parts as a power of two (or PARTS), the rest asking for a buyer that is not (ids start at 1): a
        # few statement texts, each prepared once by a connection, not one per number of buyers.
        chunk += [(0, chunk[0][1])] * (min(PARTS, 1 << (len(chunk) - 1).bit_length()) - len(chunk))
        parts = [stmt.where(buyer == b, day >= d) for b, d in chunk]
        yield union_all(*parts) if len(parts) > 1 else parts[0]


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get(TENANT_KEY)
    if tenant_id is None or state.is_column_load or state.is_relationship_load:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)
        )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, flush_context: Any, instances: Any) -> None:
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        return
    for obj in session.new:
        if isinstance(obj, TenantScoped):
            if obj.tenant_id is None:
                obj.tenant_id = tenant_id
            elif obj.tenant_id != tenant_id:
                raise CrossTenantWrite(f"{type(obj).__name__} of another tenant in a session bound to {tenant_id}")
    for obj in session.dirty:
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise CrossTenantWrite(f"{type(obj).__name__} of another tenant in a session bound to {tenant_id}")


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # Let SQLAlchemy, not the driver, manage transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


READ_ONLY = "coverwatch_read_only"


def _sqlite_begin(conn: Any) -> None:
    # A transaction that may write takes the write lock up front: a deferred transaction that reads then writes
    # fails at once with "database is locked" when another writer committed in between. A read-only one (the
    # sessions of GET requests, see `Database.read_session`) begins deferred: in WAL mode it reads its snapshot
    # while a writer works, and never waits for the write lock.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if "poolclass" not in kwargs:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    # No server-side prepared statements: after 5 runs psycopg prepares a query and PostgreSQL may switch
    # to a generic plan, which turns the ingest path's `ref IN (... 1000 refs ...)` lookups into a linear
    # scan of the tenant's invoices (measured: 0.4 s -> 3.5 s per 5,000-invoice batch). Also what a
    # transaction-pooling PgBouncer in front of the database requires.
    kwargs.setdefault("connect_args", {})["prepare_threshold"] = None
    # JSON values written by orjson (psycopg takes its bytes): a cover's walk state is JSON, and json.dumps took
    # 1.6 us of the 3 us a cover cost to send at 1,000,000 covers. Dict keys that are not text are written as text,
    # as json.dumps writes them.
    kwargs.setdefault("json_serializer", _json_bytes)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _psycopg_json_loads)
    return engine


def _json_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _json_value(data: bytes | str) -> Any:
    """A JSON value read by orjson (stdlib json took 7% of a daily scan, reading the covers' walk states back);
    by json where orjson refuses what json reads (an integer beyond 64 bits, NaN)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _psycopg_json_loads(dbapi_connection: Any, connection_record: Any) -> None:
    set_json_loads(_json_value, dbapi_connection)


class Database:
    """One engine and its session factory; an app and the CLI each hold one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Same pool, marked read-only: on SQLite its transactions begin deferred (readers never wait on writers).
        self.read_engine = self.engine.execution_options(**{READ_ONLY: True})
        self.read_sessionmaker = sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, tenant_id: str | None = None) -> Session:
        session = self.sessionmaker()
        if tenant_id is not None:
            bind_tenant(session, tenant_id)
        return session

    def read_session(self, tenant_id: str | None = None) -> Session:
        """A session for reading only (what a GET does): on SQLite it never takes the write lock."""
        session = self.read_sessionmaker()
        if tenant_id is not None:
            bind_tenant(session, tenant_id)
        return session

    def dispose(self) -> None:
        self.engine.dispose()


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work: committed before the response is sent, rolled back on any error.

    GET and HEAD requests read only: their session never takes SQLite's write lock, so dashboards answer
    while a batch is being written. A deadlock or another transient failure rolls it back and the whole
    request runs again, with a new session (app.core.retry).

    Opening a session does no I/O, so it is opened on the event loop; only its end (commit, or rollback, and the
    connection back to the pool) goes to a worker thread. Each hop to a thread and back costs a request about
    0.25 ms of CPU (a 304 measured 3.8 ms of CPU with seven hops, 1.9 ms run inline): the request's pure
    dependencies are `async` for the same reason."""
    db = request.app.state.db
    session = db.read_session() if request.method in READ_METHODS else db.session()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request's session is still closed
            await _end_in_thread(session, False)
        raise
    await _end_in_thread(session, True)


async def _end_in_thread(session: Session, commit: bool) -> None:
    """`_end` in a thread of its own limiter, not one of the shared pool's: a request holding a
    connection and its locks (a country's advisory lock, SQLite's write lock) must not wait for a thread that the
    requests waiting on those locks hold (FastAPI's exit of a sync dependency does the same)."""
    await anyio.to_thread.run_sync(_end, session, commit, limiter=anyio.CapacityLimiter(1))


def _end(session: Session, commit: bool) -> None:
    """Commit (when asked) and close: closing rolls back whatever was not committed."""
    try:
        if commit:
            session.commit()
    finally:
        session.close()


# scope="function": the commit above runs before the response goes out, so a 2xx means stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
