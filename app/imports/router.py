"""CSV import endpoint. HTTP only: the work is in service.py."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request

from app.core.context import ContextDep
from app.core.errors import Forbidden, Invalid
from app.core.idempotency import RawBody
from app.core.security import IngestAccess, Scope
from app.exposure import revaluation
from app.imports import service
from app.imports.schemas import ImportKind, ImportOut

router = APIRouter(prefix="/v1", tags=["imports"])


@router.post(
    "/imports/{kind}", response_model=ImportOut,
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def import_csv(kind: ImportKind, request: Request, ctx: ContextDep, access: IngestAccess, raw: RawBody) -> ImportOut:
    """Import a CSV (`text/csv`, UTF-8, `,` or `;`): buyers, invoices, payments (one row per allocation) or limit
    decisions (the `admin` scope). Each row is validated as the JSON API does and written through the same
    path, in batches; the answer counts what was created, updated, unchanged and rejected, and gives each
    rejected row with its line number and the reason. Importing the same file again changes nothing."""
    if kind == "limits" and not access.allows(Scope.admin):
        raise Forbidden(f"This API key has the '{access.scope}' scope; 'admin' is required to import limits.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("The CSV must be UTF-8 text.", field="/csv") from exc
    settings, db = request.app.state.settings, request.app.state.db
    return service.import_csv(
        ctx, kind, io.StringIO(text, newline=""), commit=ctx.session.commit,
        revalue=lambda: revaluation.run_pending(db, settings, tenant_ids=[ctx.tenant.id]),
    ).out()
