"""revaluations: the daily scan's walk runs as a revaluation, which takes the day's snapshot when done

Revision ID: 6e1f3a8b2d47
Revises: 9d4b6e2a7c51
Create Date: 2026-12-03 15:10:00

`snapshot_on`: the day whose exposure snapshot the runner that finishes the job takes (the daily scan's job);
empty for the revaluations of a change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6e1f3a8b2d47"
down_revision: str | None = "9d4b6e2a7c51"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("revaluations", sa.Column("snapshot_on", sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column("revaluations", "snapshot_on")
