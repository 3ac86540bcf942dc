"""POST /v1/einvoices/batch: a ZIP archive of e-invoices, each document taken on its own."""

from __future__ import annotations

import io
import zipfile

from tests.einvoices.test_einvoices import assert_ledger_empty, document, facturx_pdf, get_invoice
from tests.helpers import ok

ZIP = {"content-type": "application/zip"}


def archive(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def test_an_archive_mixes_forms_and_a_rejected_document_leaves_the_others(api):
    body = archive({
        "2026/11/FA-2026-001.xml": document("ubl-invoice-plain.xml"),
        "FX-2026-1107.pdf": facturx_pdf(document("cii-invoice.xml")),
        "hostile.xml": document("hostile-xxe-file.xml"),
        "no-amount.xml": document("ubl-invoice-missing-amount.xml").replace(b"FA 2026/001", b"FA 2026/077"),
        "again.xml": document("ubl-invoice-plain.xml"),
        "credit.xml": document("ubl-creditnote.xml"),
    })
    r = api.post("/v1/einvoices/batch", content=body, headers=ZIP)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["created"], out["updated"], out["unchanged"], out["rejected"]) == (3, 0, 1, 2)
    by_name = {i["name"]: i for i in out["items"]}
    assert by_name["FX-2026-1107.pdf"]["result"]["container"] == "factur-x-pdf"
    assert by_name["hostile.xml"]["problem"]["errors"] == [
        {"xpath": "/", "detail": "a document type declaration (DTD) is not accepted in an e-invoice"}]
    assert by_name["no-amount.xml"]["problem"]["errors"][0]["xpath"] == (
        "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount")
    assert by_name["again.xml"]["outcome"] == "unchanged"
    refs = sorted((i["invoice_ref"], i["kind"]) for i in ok(api.get("/v1/invoices"))["items"])
    assert refs == [("AV 2026/014", "credit_note"), ("FA 2026/001", "invoice"), ("FX-2026-1107", "invoice")]
    assert get_invoice(api, "FA 2026/001")["open_balance"] == "15000.00"


def test_a_rejected_document_that_created_a_buyer_leaves_no_buyer(api):
    body = archive({"usd-no-amount.xml": document("ubl-invoice-usd.xml").replace(b">25000.50</cbc:PayableAmount>",
                                                                                b">lots</cbc:PayableAmount>"),
                    "plain.xml": document("ubl-invoice-plain.xml")})
    out = ok(api.post("/v1/einvoices/batch", content=body, headers=ZIP))
    assert [i["outcome"] for i in out["items"]] == ["rejected", "created"]
    assert [b["buyer_ref"] for b in ok(api.get("/v1/buyers"))["items"]] == ["CLI-LECLERC"]


def test_archives_that_are_not_taken(api, settings_override):
    r = api.post("/v1/einvoices/batch", content=b"PK\x03\x04 not really", headers=ZIP)
    assert r.status_code == 422 and r.json()["errors"][0]["xpath"] == "/"
    r = api.post("/v1/einvoices/batch", content=archive({"a.xml": document("ubl-invoice-plain.xml")}),
                 headers={"content-type": "application/xml"})
    assert r.status_code == 415
    settings_override(max_batch_items=2)
    r = api.post("/v1/einvoices/batch", content=archive({f"{i}.xml": b"<x/>" for i in range(3)}), headers=ZIP)
    assert r.status_code == 413
    # A zip bomb: 11 MiB of zeros in a few kilobytes, against a 1 MiB body limit (10 MiB inflated at most).
    settings_override(max_batch_items=5000, max_body_bytes=1024 * 1024)
    bomb = archive({"bomb.xml": b"\0" * (11 * 1024 * 1024)})
    assert len(bomb) < 100_000
    r = api.post("/v1/einvoices/batch", content=bomb, headers=ZIP)
    assert r.status_code == 413 and "inflate" in r.json()["detail"]
    assert_ledger_empty(api)


def test_a_replayed_batch_is_answered_from_the_first_time(api):
    body = archive({"plain.xml": document("ubl-invoice-plain.xml")})
    headers = ZIP | {"Idempotency-Key": "zip-1"}
    first = ok(api.post("/v1/einvoices/batch", content=body, headers=headers))
    replay = api.post("/v1/einvoices/batch", content=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == first
