"""Background revaluations: their progress (read scope), and the 202 a change answers when it queued one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.core.context import ContextDep
from app.core.errors import NotFound
from app.core.security import ReadAccess
from app.exposure import revaluation
from app.exposure.models import Revaluation
from app.exposure.schemas import RevaluationOut

router = APIRouter(prefix="/v1", tags=["exposure"])

ACCEPTED: dict[int | str, dict[str, Any]] = {202: {
    "model": RevaluationOut,
    "description": "Stored, and more buyers are affected than are revalued within a request "
    "(COVERWATCH_INLINE_REVALUATION_MAX_BUYERS): their figures are revalued in the background. The body is the "
    "revaluation; `Location` is its URL, to poll until `state` is `done`. Meanwhile the buyers' rows say `stale`.",
    "headers": {"Location": {"description": "The revaluation: /v1/revaluations/{id}", "schema": {"type": "string"}}},
}}


def href(job: Revaluation) -> str:
    return f"/v1/revaluations/{job.id}"


def revaluation_out(job: Revaluation) -> RevaluationOut:
    return RevaluationOut(
        id=job.id, href=href(job), state=job.state,  # type: ignore[arg-type]
        reason=job.reason, total=job.total, done=job.done, progress=revaluation.progress(job), error=job.error,
        created_at=job.created_at, started_at=job.started_at, heartbeat_at=job.heartbeat_at,
        finished_at=job.finished_at,
    )


def accepted(job: Revaluation) -> JSONResponse:
    """The 202 of a change whose revaluation goes on in the background."""
    return JSONResponse(jsonable_encoder(revaluation_out(job)), status_code=202, headers={"Location": href(job)})


@router.get("/revaluations/{revaluation_id}", response_model=RevaluationOut)
def get_revaluation(
    revaluation_id: Annotated[str, Path(max_length=36, description="The id a 202 answer gave")],
    ctx: ContextDep, _: ReadAccess,
) -> RevaluationOut:
    """Progress of a background revaluation.

    A policy, FX or settings change that moves more buyers than are revalued within a request answers 202 with
    this URL: the change is stored, and the buyers' figures are revalued here, chunk by chunk (`done` of
    `total`). Until then their exposure rows say `stale` and the portfolio counts them in `stale_buyers`."""
    job = revaluation.get(ctx, revaluation_id)
    if job is None:
        raise NotFound(f"No revaluation '{revaluation_id}'.")
    return revaluation_out(job)
