"""Reading e-invoices: safe XML, the three forms (UBL 2.1, UN/CEFACT CII, Factur-X PDF), EN 16931 terms.

Nothing here knows about the database or HTTP: `read_xml` and `read_pdf` turn bytes into an `EInvoice`
(the business terms Coverwatch needs, each with the XPath it came from) or raise `DocumentError`
naming the element that is missing or wrong.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from lxml import etree

from app.core.money import is_currency

MAX_XML_BYTES = 5 * 1024 * 1024

UBL_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"

UBL_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
CII_NS = {
    "rsm": CII,
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}

# UNTDID 1001 document type codes that EN 16931 treats as credit notes.
CREDIT_NOTE_CODES = {"81", "83", "381", "396", "532"}


class DocumentError(Exception):
    """The document cannot be taken: `xpath` names the element (or "/" for the whole document)."""

    def __init__(self, xpath: str, detail: str, *, status: int = 422) -> None:
        super().__init__(f"{xpath}: {detail}")
        self.xpath = xpath
        self.detail = detail
        self.status = status


@dataclass
class Identifier:
    """One of the buyer's identifiers, in the order the issue says they are matched."""

    kind: str  # party_identifier | electronic_address | legal_registration | vat_number
    value: str
    scheme: str | None
    xpath: str


@dataclass
class BuyerParty:
    xpath: str
    name: str | None
    name_xpath: str
    country: str | None
    country_xpath: str
    identifiers: list[Identifier] = field(default_factory=list)


@dataclass
class EInvoice:
    syntax: str  # ubl | cii
    number: str
    number_xpath: str
    type_code: str
    type_code_xpath: str
    credit_note: bool  # a CreditNote document or a credit note type code (before the sign of the amount)
    issue_date: date
    issue_date_xpath: str
    due_date: date | None
    due_date_xpath: str | None  # where the due date came from (the due date, or the payment terms)
    currency: str
    currency_xpath: str
    amount_due: Decimal  # BT-115
    amount_due_xpath: str
    total_with_vat: Decimal | None  # BT-112
    prepaid: Decimal | None  # BT-113
    preceding_invoice: str | None  # BT-25
    preceding_invoice_xpath: str | None
    buyer: BuyerParty


# --- safe XML -----------------------------------------------------------------------------------


def hardened_parser() -> etree.XMLParser:
    """No DTD loaded or validated, no entity expanded, nothing fetched from the network, no huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
        collect_ids=False,
    )


@contextmanager
def hardened_default_parser() -> Iterator[None]:
    """lxml's default parser for this thread, while a library parses for us (factur-x reading a PDF)."""
    etree.set_default_parser(hardened_parser())
    try:
        yield
    finally:
        etree.set_default_parser(None)


_DOCTYPE_MARKERS = tuple("<!DOCTYPE".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be"))


def parse_xml(data: bytes) -> etree._Element:
    if len(data) > MAX_XML_BYTES:
        raise DocumentError("/", f"the XML is larger than {MAX_XML_BYTES // (1024 * 1024)} MiB", status=413)
    if not data.strip():
        raise DocumentError("/", "the body is empty: send the e-invoice XML")
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        raise DocumentError("/", "a document type declaration (DTD) is not accepted in an e-invoice")
    try:
        tree = etree.fromstring(data, hardened_parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise DocumentError("/", f"not well-formed XML ({exc.msg})") from exc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise DocumentError("/", "a document type declaration (DTD) is not accepted in an e-invoice")
    return tree.getroot()


# --- reading helpers ----------------------------------------------------------------------------


class _Reader:
    def __init__(self, root: etree._Element, ns: dict[str, str], root_name: str) -> None:
        self.root = root
        self.ns = ns
        self.root_name = root_name

    def xpath(self, rel: str) -> str:
        return f"/{self.root_name}/{rel}"

    def node(self, rel: str) -> etree._Element | None:
        found = self.root.xpath(rel, namespaces=self.ns)
        return found[0] if found else None

    def text(self, rel: str) -> str | None:
        """The element's text as written (a number such as "018304 / 28865" is kept exactly), trimmed."""
        node = self.node(rel)
        if node is None or node.text is None:
            return None
        return node.text.strip() or None

    def required(self, rel: str, what: str) -> str:
        value = self.text(rel)
        if value is None:
            raise DocumentError(self.xpath(rel), f"{what} is missing")
        return value

    def amount(self, rel: str, what: str, currency: str, *, required: bool = True) -> Decimal | None:
        value = self.required(rel, what) if required else self.text(rel)
        if value is None:
            return None
        node = self.node(rel)
        stated = node.get("currencyID") if node is not None else None
        if stated is not None and stated.strip() != currency:
            raise DocumentError(
                self.xpath(rel), f"{what} is in {stated.strip()}, the invoice in {currency} (BT-5)"
            )
        try:
            amount = Decimal(value)
        except InvalidOperation as exc:
            raise DocumentError(self.xpath(rel), f"{what} '{value}' is not a decimal amount") from exc
        if not amount.is_finite():
            raise DocumentError(self.xpath(rel), f"{what} '{value}' is not a decimal amount")
        return amount


def _currency(reader: _Reader, rel: str) -> str:
    currency = reader.required(rel, "the invoice currency (BT-5)")
    if not is_currency(currency):
        raise DocumentError(reader.xpath(rel), f"'{currency}' is not an ISO 4217 currency code (BT-5)")
    return currency


def _iso_date(value: str, xpath: str, what: str) -> date:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise DocumentError(xpath, f"{what} '{value}' is not a date as YYYY-MM-DD")


def _cii_date(reader: _Reader, rel: str, what: str, *, required: bool = True) -> date | None:
    """A udt:DateTimeString in format 102 (YYYYMMDD), the one EN 16931 allows for dates."""
    node = reader.node(rel)
    xpath = reader.xpath(rel)
    if node is None or not (node.text or "").strip():
        if required:
            raise DocumentError(xpath, f"{what} is missing")
        return None
    value = node.text.strip()
    fmt = node.get("format", "102")
    if fmt != "102" or not re.fullmatch(r"\d{8}", value):
        raise DocumentError(xpath, f"{what} '{value}' is not a date in format 102 (YYYYMMDD)")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise DocumentError(xpath, f"{what} '{value}' is not a calendar date") from exc


_TERMS = re.compile(
    r"(?:(?:net|netto|nett|n)\s*(\d{1,3})\b)|(?:(\d{1,3})\s*(?:days?|jours?|j\b|tage?n?|d[ií]as|giorni|dagen|dni))",
    re.IGNORECASE,
)


def due_from_terms(terms: str, issue: date) -> date | None:
    """A due date from payment terms written as text ("30 days net", "Net 45", "paiement à 60 jours"), or None."""
    match = _TERMS.search(terms)
    if match is None:
        return None
    days = int(match.group(1) or match.group(2))
    return issue + timedelta(days=days)


def _identifier(reader: _Reader, kind: str, rel: str) -> Identifier | None:
    node = reader.node(rel)
    if node is None or not (node.text or "").strip():
        return None
    return Identifier(kind, " ".join(node.text.split()), node.get("schemeID"), reader.xpath(rel))


# --- UBL 2.1 (Peppol BIS Billing 3.0) -----------------------------------------------------------


def _read_ubl(root: etree._Element, credit_note_document: bool) -> EInvoice:
    name = "CreditNote" if credit_note_document else "Invoice"
    r = _Reader(root, UBL_NS, name)
    number = r.required("cbc:ID", "the invoice number (BT-1)")
    type_rel = "cbc:CreditNoteTypeCode" if credit_note_document else "cbc:InvoiceTypeCode"
    type_code = r.text(type_rel) or ("381" if credit_note_document else "380")
    issue_rel = "cbc:IssueDate"
    issue = _iso_date(r.required(issue_rel, "the issue date (BT-2)"), r.xpath(issue_rel), "the issue date (BT-2)")
    currency_rel = "cbc:DocumentCurrencyCode"
    currency = _currency(r, currency_rel)

    due, due_xpath = None, None
    for rel in ("cbc:DueDate", "cac:PaymentMeans/cbc:PaymentDueDate"):
        text = r.text(rel)
        if text is not None:
            due, due_xpath = _iso_date(text, r.xpath(rel), "the payment due date (BT-9)"), r.xpath(rel)
            break
    if due is None:
        terms_rel = "cac:PaymentTerms/cbc:Note"
        terms = " ".join(
            " ".join((n.text or "").split()) for n in root.xpath(terms_rel, namespaces=UBL_NS)
        ).strip()
        if terms:
            due, due_xpath = due_from_terms(terms, issue), r.xpath(terms_rel)

    totals = "cac:LegalMonetaryTotal"
    amount_rel = f"{totals}/cbc:PayableAmount"
    amount_due = r.amount(amount_rel, "the amount due for payment (BT-115)", currency)
    preceding_rel = "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"
    preceding = r.text(preceding_rel)

    party = "cac:AccountingCustomerParty/cac:Party"
    if r.node(party) is None:
        raise DocumentError(r.xpath(party), "the buyer (BG-7) is missing")
    legal_name_rel = f"{party}/cac:PartyLegalEntity/cbc:RegistrationName"
    trading_name_rel = f"{party}/cac:PartyName/cbc:Name"
    name_rel = legal_name_rel if r.text(legal_name_rel) else trading_name_rel
    country_rel = f"{party}/cac:PostalAddress/cac:Country/cbc:IdentificationCode"
    identifiers = [
        _identifier(r, "party_identifier", f"{party}/cac:PartyIdentification/cbc:ID"),
        _identifier(r, "electronic_address", f"{party}/cbc:EndpointID"),
        _identifier(r, "legal_registration", f"{party}/cac:PartyLegalEntity/cbc:CompanyID"),
        _identifier(r, "vat_number", f"{party}/cac:PartyTaxScheme/cbc:CompanyID"),
    ]
    buyer = BuyerParty(
        xpath=r.xpath(party),
        name=r.text(name_rel),
        name_xpath=r.xpath(name_rel),
        country=r.text(country_rel),
        country_xpath=r.xpath(country_rel),
        identifiers=[i for i in identifiers if i is not None],
    )
    assert amount_due is not None
    return EInvoice(
        syntax="ubl",
        number=number,
        number_xpath=r.xpath("cbc:ID"),
        type_code=type_code,
        type_code_xpath=r.xpath(type_rel),
        credit_note=credit_note_document or type_code in CREDIT_NOTE_CODES,
        issue_date=issue,
        issue_date_xpath=r.xpath(issue_rel),
        due_date=due,
        due_date_xpath=due_xpath,
        currency=currency,
        currency_xpath=r.xpath(currency_rel),
        amount_due=amount_due,
        amount_due_xpath=r.xpath(amount_rel),
        total_with_vat=r.amount(f"{totals}/cbc:TaxInclusiveAmount", "the total with VAT (BT-112)", currency,
                                required=False),
        prepaid=r.amount(f"{totals}/cbc:PrepaidAmount", "the paid amount (BT-113)", currency, required=False),
        preceding_invoice=preceding,
        preceding_invoice_xpath=r.xpath(preceding_rel) if preceding else None,
        buyer=buyer,
    )


# --- UN/CEFACT Cross Industry Invoice (EN 16931 CII syntax, Factur-X / ZUGFeRD) ----------------


def _read_cii(root: etree._Element) -> EInvoice:
    r = _Reader(root, CII_NS, "rsm:CrossIndustryInvoice")
    doc = "rsm:ExchangedDocument"
    number = r.required(f"{doc}/ram:ID", "the invoice number (BT-1)")
    type_rel = f"{doc}/ram:TypeCode"
    type_code = r.required(type_rel, "the invoice type code (BT-3)")
    issue_rel = f"{doc}/ram:IssueDateTime/udt:DateTimeString"
    issue = _cii_date(r, issue_rel, "the issue date (BT-2)")
    assert issue is not None
    trade = "rsm:SupplyChainTradeTransaction"
    settlement = f"{trade}/ram:ApplicableHeaderTradeSettlement"
    currency_rel = f"{settlement}/ram:InvoiceCurrencyCode"
    currency = _currency(r, currency_rel)

    terms = f"{settlement}/ram:SpecifiedTradePaymentTerms"
    due_rel = f"{terms}/ram:DueDateDateTime/udt:DateTimeString"
    due = _cii_date(r, due_rel, "the payment due date (BT-9)", required=False)
    due_xpath = r.xpath(due_rel) if due else None
    if due is None:
        terms_rel = f"{terms}/ram:Description"
        text = " ".join(" ".join((n.text or "").split()) for n in root.xpath(terms_rel, namespaces=CII_NS)).strip()
        if text:
            due, due_xpath = due_from_terms(text, issue), r.xpath(terms_rel)

    totals = f"{settlement}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    amount_rel = f"{totals}/ram:DuePayableAmount"
    amount_due = r.amount(amount_rel, "the amount due for payment (BT-115)", currency)
    # BT-112 may be given twice (in the invoice currency and in the VAT accounting currency).
    grand_rel = f"{totals}/ram:GrandTotalAmount[not(@currencyID) or @currencyID='{currency}'][1]"
    preceding_rel = f"{settlement}/ram:InvoiceReferencedDocument/ram:IssuerAssignedID"
    preceding = r.text(preceding_rel)

    party = f"{trade}/ram:ApplicableHeaderTradeAgreement/ram:BuyerTradeParty"
    if r.node(party) is None:
        raise DocumentError(r.xpath(party), "the buyer (BG-7) is missing")
    name_rel = f"{party}/ram:Name"
    country_rel = f"{party}/ram:PostalTradeAddress/ram:CountryID"
    identifiers = [
        _identifier(r, "party_identifier", f"{party}/ram:ID"),
        _identifier(r, "party_identifier", f"{party}/ram:GlobalID"),
        _identifier(r, "electronic_address", f"{party}/ram:URIUniversalCommunication/ram:URIID"),
        _identifier(r, "legal_registration", f"{party}/ram:SpecifiedLegalOrganization/ram:ID"),
        _identifier(r, "vat_number", f"{party}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']"),
    ]
    buyer = BuyerParty(
        xpath=r.xpath(party),
        name=r.text(name_rel),
        name_xpath=r.xpath(name_rel),
        country=r.text(country_rel),
        country_xpath=r.xpath(country_rel),
        identifiers=[i for i in identifiers if i is not None],
    )
    assert amount_due is not None
    return EInvoice(
        syntax="cii",
        number=number,
        number_xpath=r.xpath(f"{doc}/ram:ID"),
        type_code=type_code,
        type_code_xpath=r.xpath(type_rel),
        credit_note=type_code in CREDIT_NOTE_CODES,
        issue_date=issue,
        issue_date_xpath=r.xpath(issue_rel),
        due_date=due,
        due_date_xpath=due_xpath,
        currency=currency,
        currency_xpath=r.xpath(currency_rel),
        amount_due=amount_due,
        amount_due_xpath=r.xpath(amount_rel),
        total_with_vat=r.amount(grand_rel, "the total with VAT (BT-112)", currency, required=False),
        prepaid=r.amount(f"{totals}/ram:TotalPrepaidAmount", "the paid amount (BT-113)", currency, required=False),
        preceding_invoice=preceding,
        preceding_invoice_xpath=r.xpath(preceding_rel) if preceding else None,
        buyer=buyer,
    )


# --- entry points -------------------------------------------------------------------------------


def read_xml(data: bytes) -> EInvoice:
    """A UBL Invoice or CreditNote, or a CII invoice, told apart by the root element."""
    root = parse_xml(data)
    qname = etree.QName(root)
    if qname.namespace == UBL_INVOICE and qname.localname == "Invoice":
        return _read_ubl(root, credit_note_document=False)
    if qname.namespace == UBL_CREDIT_NOTE and qname.localname == "CreditNote":
        return _read_ubl(root, credit_note_document=True)
    if qname.namespace == CII and qname.localname == "CrossIndustryInvoice":
        return _read_cii(root)
    raise DocumentError(
        f"/{qname.localname}",
        f"the root element {{{qname.namespace or ''}}}{qname.localname} is not a UBL 2.1 Invoice or CreditNote "
        "nor a UN/CEFACT CrossIndustryInvoice",
    )


def xml_from_pdf(data: bytes) -> bytes:
    """The invoice XML embedded in a Factur-X (or ZUGFeRD 2) PDF, extracted by the factur-x library."""
    from facturx import get_facturx_xml_from_pdf
    from pypdf.errors import PyPdfError

    if not data.startswith(b"%PDF-"):
        raise DocumentError("/", "not a PDF (it does not start with %PDF-)")
    try:
        with hardened_default_parser():
            _, xml = get_facturx_xml_from_pdf(data, check_xsd=False)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, AssertionError) as exc:
        raise DocumentError("/", f"the PDF cannot be read ({exc.__class__.__name__})") from exc
    if not xml:
        raise DocumentError(
            "/", "this PDF has no embedded e-invoice (a Factur-X or ZUGFeRD PDF carries factur-x.xml or "
            "zugferd-invoice.xml); send the XML itself, or the Factur-X PDF"
        )
    return bytes(xml)


def read_pdf(data: bytes) -> EInvoice:
    return read_xml(xml_from_pdf(data))


# --- ZIP batches --------------------------------------------------------------------------------


@dataclass
class Entry:
    name: str
    data: bytes | None
    error: DocumentError | None = None


def zip_entries(data: bytes, *, max_entries: int, max_total_bytes: int) -> list[Entry]:
    """The files of a ZIP archive, read with limits on what they inflate to (no zip bomb gets through):
    each at most MAX_XML_BYTES (an XML) or the body limit (a PDF), all together at most `max_total_bytes`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise DocumentError("/", f"not a readable ZIP archive ({exc})") from exc
    if len(infos) > max_entries:
        raise DocumentError("/", f"a batch holds at most {max_entries} documents; this one has {len(infos)}",
                            status=413)
    entries: list[Entry] = []
    total = 0
    for info in infos:
        limit = max_total_bytes - total
        try:
            with archive.open(info) as handle:
                content = handle.read(min(limit, max_total_bytes) + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError, EOFError, OSError) as exc:
            entries.append(Entry(info.filename, None, DocumentError("/", f"this file cannot be read ({exc})")))
            continue
        if len(content) > limit:
            raise DocumentError(
                "/", f"the documents inflate to more than {max_total_bytes // (1024 * 1024)} MiB: split the batch",
                status=413,
            )
        total += len(content)
        entries.append(Entry(info.filename, content))
    return entries


def read_any(data: bytes) -> tuple[EInvoice, str]:
    """A document of a batch: a PDF by its signature, else XML. Returns it with its container."""
    if data.startswith(b"%PDF-"):
        return read_pdf(data), "factur-x-pdf"
    return read_xml(data), "xml"
