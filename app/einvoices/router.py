"""E-invoice endpoint: one UBL, CII or Factur-X document per request. HTTP only: the work is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.core.context import ContextDep
from app.core.errors import ProblemError
from app.core.idempotency import IdempotencyDep, RawBody
from app.core.security import IngestAccess
from app.einvoices import service
from app.einvoices.parsing import DocumentError, read_pdf, read_xml
from app.einvoices.schemas import EInvoiceBatchOut, EInvoiceOut

router = APIRouter(prefix="/v1", tags=["e-invoices"])

XML_TYPES = {"application/xml", "text/xml"}
PDF_TYPE = "application/pdf"
ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/octet-stream"}

_BODY = {
    "required": True,
    "description": "One e-invoice as it comes out of the invoicing platform: a UBL 2.1 Invoice or CreditNote "
    "(Peppol BIS Billing 3.0) or a UN/CEFACT CrossIndustryInvoice (EN 16931 CII, Factur-X/ZUGFeRD) as XML, "
    "told apart by its root element; or a Factur-X PDF with its embedded XML.",
    "content": {
        "application/xml": {"schema": {"type": "string"}},
        "text/xml": {"schema": {"type": "string"}},
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _unsupported(content_type: str, wanted: str) -> ProblemError:
    return ProblemError(
        f"Content-Type '{content_type or '(none)'}' is not accepted here: send {wanted}.",
        status=415,
        type="unsupported-media-type",
        title="Unsupported media type",
        errors=[{"pointer": "/headers/Content-Type", "detail": wanted}],
    )


@router.post(
    "/einvoices",
    response_model=EInvoiceOut,
    status_code=201,
    summary="Post an e-invoice (UBL, CII or Factur-X PDF)",
    responses={
        200: {"model": EInvoiceOut, "description": "The same document again (unchanged) or a correction (updated)"},
        415: {"description": "Not application/xml, text/xml or application/pdf"},
        422: {"description": "The document cannot be taken: `errors` name the element by XPath; nothing is written"},
    },
    openapi_extra={"requestBody": _BODY},
)
def post_einvoice(
    request: Request, body: RawBody, ctx: ContextDep, _: IngestAccess, idem: IdempotencyDep
) -> Response:
    """The invoice (or credit note) goes into the ledger under its own number (BT-1), for the buyer matched by
    its identifiers (or created from the document), with the amount due for payment (BT-115). Posting the same
    document twice records it once."""
    content_type = _media_type(request)
    if content_type not in XML_TYPES and content_type != PDF_TYPE:
        raise _unsupported(content_type, "application/xml (UBL or CII) or application/pdf (Factur-X)")
    if (replayed := idem.replay()) is not None:
        return replayed
    try:
        if content_type == PDF_TYPE:
            result = service.ingest(ctx, read_pdf(body), "factur-x-pdf")
        else:
            result = service.ingest(ctx, read_xml(body), "xml")
    except DocumentError as error:
        raise service.document_problem(error) from error
    return idem.respond(201 if result.outcome == "created" else 200, result)


@router.post(
    "/einvoices/batch",
    response_model=EInvoiceBatchOut,
    summary="Post a ZIP archive of e-invoices",
    responses={
        413: {"description": "More documents than COVERWATCH_MAX_BATCH_ITEMS, or more than 10 times the body "
              "limit once inflated"},
        415: {"description": "Not application/zip"},
        422: {"description": "Not a readable ZIP archive"},
    },
    openapi_extra={"requestBody": {
        "required": True,
        "description": "A ZIP archive of e-invoices: XML (UBL or CII) and Factur-X PDFs, in any mix "
        "(application/octet-stream is taken as a ZIP too).",
        "content": {
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }},
)
def post_einvoice_batch(
    request: Request, body: RawBody, ctx: ContextDep, _: IngestAccess, idem: IdempotencyDep
) -> Response:
    """Each document of the archive is taken as `POST /v1/einvoices` would take it, on its own: a rejected one
    (its problem in `items`) leaves nothing behind, the others are stored."""
    content_type = _media_type(request)
    if content_type not in ZIP_TYPES:
        raise _unsupported(content_type, "application/zip")
    if (replayed := idem.replay()) is not None:
        return replayed
    try:
        result = service.ingest_zip(ctx, body)
    except DocumentError as error:
        raise service.document_problem(error) from error
    return idem.respond(200, result)
