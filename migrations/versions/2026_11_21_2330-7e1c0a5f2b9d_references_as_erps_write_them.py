"""references as ERPs write them: 200-character refs; invoices and credit notes numbered apart

Revision ID: 7e1c0a5f2b9d
Revises: 7c1e5a9d2b40
Create Date: 2026-11-21 23:30:00

Ledger references (buyers, invoices, credit notes, payments, and their copies on exposure rows and
alerts) widen from 100 to 200 characters; alert subjects (which embed a ref) from 250 to 400. An
invoice and a credit note may share a number: uniqueness moves from (tenant, ref) to (tenant, kind, ref).
SQLite does not enforce VARCHAR lengths, so there only the invoices table is rebuilt (batch mode, for
its unique constraint); migrations/env.py turns foreign-key enforcement off while SQLite tables are rebuilt.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7e1c0a5f2b9d"
down_revision: str | None = "7c1e5a9d2b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable, old length, new length)
_WIDENED = [
    ("buyers", "ref", False, 100, 200),
    ("payments", "ref", False, 100, 200),
    ("buyer_exposures", "buyer_ref", False, 100, 200),
    ("alerts", "buyer_ref", True, 100, 200),
    ("alerts", "invoice_ref", True, 100, 200),
    ("alerts", "subject", False, 250, 400),
]
_INVOICE_COLUMNS = [("ref", False), ("applies_to", True)]


def _invoices(old: int, new: int, drop: tuple[str, list[str]], create: tuple[str, list[str]]) -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_constraint(drop[0], type_="unique")
        for column, nullable in _INVOICE_COLUMNS:
            batch_op.alter_column(
                column, existing_type=sa.String(length=old), type_=sa.String(length=new), existing_nullable=nullable
            )
        batch_op.create_unique_constraint(create[0], create[1])


def _widen(to_new: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, nullable, old, new in _WIDENED:
        op.alter_column(
            table,
            column,
            existing_type=sa.String(length=old if to_new else new),
            type_=sa.String(length=new if to_new else old),
            existing_nullable=nullable,
        )


def upgrade() -> None:
    _invoices(
        100,
        200,
        ("uq_invoices_tenant_id_ref", ["tenant_id", "ref"]),
        ("uq_invoices_tenant_id_kind_ref", ["tenant_id", "kind", "ref"]),
    )
    _widen(True)


def downgrade() -> None:
    # Fails, as it should, when an invoice and a credit note share a number or a ref is longer than 100.
    _widen(False)
    _invoices(
        200,
        100,
        ("uq_invoices_tenant_id_kind_ref", ["tenant_id", "kind", "ref"]),
        ("uq_invoices_tenant_id_ref", ["tenant_id", "ref"]),
    )
