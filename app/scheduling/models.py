"""Which periodic job ran for which tenant and day: the daily jobs' idempotency."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import utcnow
from app.core.db import Base, BigId, TenantScoped
from app.core.types import UtcDateTime


class JobRun(TenantScoped, Base):
    tenant_index = False  # an index of __table_args__ leads with tenant_id

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("tenant_id", "job", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(60))
    day: Mapped[date] = mapped_column(Date)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
