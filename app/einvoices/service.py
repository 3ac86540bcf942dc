"""E-invoice to ledger: buyer matching, EN 16931 terms to an invoice or credit note, through the ledger services.

One document is one unit of work: the buyer it creates and the invoice it posts are written in the
request's transaction, so a refused document leaves nothing behind. Services never commit.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.core.context import Context
from app.core.errors import Invalid, ProblemError
from app.core.fields import ref_problem
from app.einvoices import repository as repo
from app.einvoices.parsing import DocumentError, EInvoice, Identifier, read_any, zip_entries
from app.einvoices.schemas import BuyerMatchOut, EInvoiceBatchItem, EInvoiceBatchOut, EInvoiceOut
from app.ledger import service as ledger
from app.ledger.models import Buyer
from app.ledger.schemas import BuyerIn, InvoiceIn

_BUYER_FIELDS = ("ref", "registration_id", "insurer_buyer_id")
_FIELD_NAMES = {"ref": "buyer_ref", "registration_id": "registration_id", "insurer_buyer_id": "insurer_buyer_id"}


def document_problem(error: DocumentError) -> ProblemError:
    """problem+json for a document: `errors` name the element by XPath."""
    return ProblemError(
        f"{error.xpath}: {error.detail}",
        status=error.status,
        type="invalid-einvoice" if error.status == 422 else "payload-too-large",
        title="E-invoice refused" if error.status == 422 else "Payload too large",
        errors=[{"xpath": error.xpath, "detail": error.detail}],
    )


def _variants(value: str) -> list[str]:
    """The identifier as written, and without its spaces ("FR 12 345678901" is "FR12345678901")."""
    compact = "".join(value.split())
    return [value] if compact == value else [value, compact]


def _match(ctx: Context, identifiers: list[Identifier]) -> tuple[Buyer, Identifier, str] | None:
    """The first of the document's identifiers, in order, that an existing buyer carries (ref first)."""
    candidates = repo.buyers_with_any_identifier(ctx.session, (v for i in identifiers for v in _variants(i.value)))
    for identifier in identifiers:
        for value in _variants(identifier.value):
            for field in _BUYER_FIELDS:
                for buyer in candidates:
                    if getattr(buyer, field) == value:
                        return buyer, identifier, field
    return None


def _buyer(ctx: Context, doc: EInvoice) -> tuple[Buyer, BuyerMatchOut]:
    party = doc.buyer
    if not party.identifiers:
        raise DocumentError(
            party.xpath,
            "the buyer has no identifier: a party identifier (BT-46), electronic address (BT-49), legal "
            "registration (BT-47) or VAT number (BT-48) is needed to match or create the buyer",
        )
    found = _match(ctx, party.identifiers)
    if found is not None:
        buyer, identifier, field = found
        return buyer, BuyerMatchOut(
            buyer_ref=buyer.ref,
            outcome="matched",
            matched_by=identifier.kind,  # type: ignore[arg-type]
            identifier=identifier.value,
            matched_field=_FIELD_NAMES[field],  # type: ignore[arg-type]
        )
    # A new buyer: its ERP reference is its first identifier, its registration id the legal one, else the VAT one.
    first = party.identifiers[0]
    problem = ref_problem(first.value)
    if problem is not None:
        raise DocumentError(first.xpath, f"'{first.value}' cannot be a buyer reference: it {problem}")
    registration = next(
        (i for k in ("legal_registration", "vat_number") for i in party.identifiers if i.kind == k), None
    )
    if party.name is None:
        raise DocumentError(party.name_xpath, "the buyer's name (BT-44) is missing: needed to create the buyer")
    if party.country is None:
        raise DocumentError(
            party.country_xpath, "the buyer's country (BT-55) is missing: needed to create the buyer"
        )
    data = {"name": party.name, "country": party.country,
            "registration_id": registration.value if registration else None}
    where = {"name": party.name_xpath, "country": party.country_xpath,
             "registration_id": registration.xpath if registration else party.xpath}
    body = _validated(BuyerIn, data, where)
    buyer, _ = ledger.upsert_buyer(ctx, first.value, body)
    return buyer, BuyerMatchOut(buyer_ref=buyer.ref, outcome="created")


def _validated(model: type[Any], data: dict[str, Any], where: dict[str, str]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        raise DocumentError(where.get(field, "/"), f"{error['msg']} (got {data.get(field)!r})") from exc


def _ledger_body(ctx: Context, doc: EInvoice, buyer: Buyer, warnings: list[str]) -> tuple[InvoiceIn, dict[str, str]]:
    amount = doc.amount_due
    credit = doc.credit_note
    if amount < 0:  # a negative invoice is a credit note (and a negative credit note an invoice)
        credit, amount = not credit, -amount
        warnings.append(
            f"The amount due is negative ({doc.amount_due}): recorded as a "
            f"{'credit note' if credit else 'invoice'} of {amount}."
        )
    if amount == 0:
        raise DocumentError(doc.amount_due_xpath, "the amount due for payment (BT-115) is zero: nothing is receivable")
    due = doc.due_date
    if due is None and credit:
        due = doc.issue_date  # a credit note without a due date is due when issued
    elif due is None and doc.due_date_xpath is not None:
        raise DocumentError(
            doc.due_date_xpath, "the payment terms (BT-20) give no due date that can be read (such as '30 days')"
        )
    elif due is None:
        raise DocumentError(
            doc.number_xpath.rsplit("/", 1)[0],
            "the invoice has neither a payment due date (BT-9) nor payment terms (BT-20): its due date is unknown",
        )
    applies_to = None
    if credit and doc.preceding_invoice is not None:
        target = repo.invoice_of_buyer(ctx.session, doc.preceding_invoice, buyer.id)
        if target is not None and target.currency == doc.currency:
            applies_to = doc.preceding_invoice
        else:
            warnings.append(
                f"The preceding invoice '{doc.preceding_invoice}' (BT-25) is not an invoice of this buyer in "
                f"{doc.currency}: the credit note is applied to the oldest open invoice."
            )
    where = {
        "kind": doc.type_code_xpath,
        "currency": doc.currency_xpath,
        "amount": doc.amount_due_xpath,
        "issue_date": doc.issue_date_xpath,
        "due_date": doc.due_date_xpath or doc.issue_date_xpath,
        "applies_to": doc.preceding_invoice_xpath or doc.number_xpath,
        "buyer_ref": doc.buyer.xpath,
    }
    data = {
        "buyer_ref": buyer.ref,
        "kind": "credit_note" if credit else "invoice",
        "currency": doc.currency,
        "amount": str(amount),
        "issue_date": doc.issue_date.isoformat(),
        "due_date": due.isoformat(),
        "applies_to": applies_to,
    }
    return _validated(InvoiceIn, data, where), where


def ingest(ctx: Context, doc: EInvoice, container: str) -> EInvoiceOut:
    """Post one e-invoice to the ledger. Raises DocumentError (nothing written) when it cannot be taken."""
    problem = ref_problem(doc.number)
    if problem is not None:
        raise DocumentError(doc.number_xpath, f"the invoice number '{doc.number}' {problem}")
    warnings: list[str] = []
    buyer, match = _buyer(ctx, doc)
    body, where = _ledger_body(ctx, doc, buyer, warnings)
    try:
        invoice, outcome = ledger.put_invoice(ctx, doc.number, body)
    except Invalid as exc:
        pointer = exc.errors[0]["pointer"] if exc.errors else ""
        raise DocumentError(where.get(pointer.lstrip("/"), doc.number_xpath), exc.detail) from exc
    return EInvoiceOut(
        syntax=doc.syntax,  # type: ignore[arg-type]
        container=container,  # type: ignore[arg-type]
        type_code=doc.type_code,
        outcome=outcome,  # type: ignore[arg-type]
        buyer=match,
        invoice=ledger.invoice_detail(ctx, invoice),
        total_with_vat=doc.total_with_vat,
        prepaid=doc.prepaid,
        warnings=warnings,
    )


def ingest_zip(ctx: Context, data: bytes) -> EInvoiceBatchOut:
    """Every document of a ZIP archive, each in its own savepoint: a rejected one leaves nothing behind,
    the others stay. Raises DocumentError when the archive itself cannot be taken."""
    settings = ctx.settings
    entries = zip_entries(data, max_entries=settings.max_batch_items, max_total_bytes=10 * settings.max_body_bytes)
    items: list[EInvoiceBatchItem] = []
    for index, entry in enumerate(entries):
        item = EInvoiceBatchItem(index=index, name=entry.name, outcome="rejected")
        try:
            if entry.error is not None:
                raise entry.error
            assert entry.data is not None
            with ctx.session.begin_nested():
                doc, container = read_any(entry.data)
                item.result = ingest(ctx, doc, container)
            item.outcome = item.result.outcome
        except DocumentError as error:
            item.problem = document_problem(error).body()
        except ProblemError as problem:
            item.problem = problem.body()
        items.append(item)
    count = {k: sum(1 for i in items if i.outcome == k) for k in ("created", "updated", "unchanged", "rejected")}
    return EInvoiceBatchOut(items=items, **count)
