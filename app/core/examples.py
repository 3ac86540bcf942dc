"""Request and response examples for every operation of the OpenAPI document.

The writes an integrator starts with carry hand-written bodies (`REQUESTS`: the README's quick session and the
demo's book). Everything else is drawn from the schema itself, field by field, so that a new route or field has an
example without saying anything: a value known by the field's name (`NAMED`: a buyer reference, an amount, a
date), else the schema's own `examples`, else one built from its type, format and pattern. `tests/core/test_openapi.py`
checks that every operation has them and that each validates against its schema.
"""

from __future__ import annotations

from typing import Any

TODAY = "2026-11-20"

# Values by field name: what the domain writes there. Only used where the field's schema is the plain type the
# value has (a name reused with another meaning elsewhere falls back to the schema).
NAMED: dict[str, Any] = {
    "buyer_ref": "LECLERC", "invoice_ref": "FA 2026/001", "applies_to": "FA 2026/001", "payment_ref": "VIR 2026-1187",
    "policy_ref": "AT-WT-01", "primary_policy_ref": "AT-WT-01", "decision_ref": "AT-DEC-88120",
    "insurer_claim_ref": "AT-CL-2026-0412", "allocated_invoice_ref": "FA 2026/001",
    "name": "Leclerc SA", "buyer_name": "Leclerc SA", "tenant_name": "Demo Industries SAS", "insurer": "Allianz Trade",
    "registration_id": "FR12345678901", "insurer_buyer_id": "AT-884211", "sector": "retail",
    "country": "FR", "currency": "EUR", "base": "EUR", "quote": "USD", "locale": "fr-FR", "timezone": "Europe/Paris",
    "rate": "1.0850", "indemnity_rate": "0.90", "ratio": "1.0", "utilisation": "0.72", "premium_rate": "0.0012",
    "issue_date": "2026-11-02", "due_date": "2026-12-31", "original_due_date": "2026-12-31",
    "received_on": "2026-11-18", "effective_from": "2026-11-01", "expires_on": "2027-04-30",
    "starts_on": "2026-01-01", "ends_on": "2026-12-31", "filed_on": TODAY, "today": TODAY, "as_of": TODAY,
    "valued_on": TODAY, "opened_on": TODAY, "delivery_date": "2026-11-02", "claim_deadline": "2027-03-01",
    "url": "https://hooks.example.com/coverwatch", "note": "Called the buyer: payment promised for Friday",
    "description": "Treasury desk", "key_name": "ERP (SAP)", "prefix": "cw_3f9a2c1", "key": "cw_3f9a2c1e8b7d4f60a9",
    "secret": "whsec_MfKQ9r8GKYqXJ3kVhR0l9zJx0sQ8yq7cZ5B2tW8bFvc=", "key_id": "9b2f6c1e-3d4a-4f1b-8c2e-7a5d9e0f1b23",
    "tenant_id": "0f8e3c2a-6b1d-4e5f-9a7c-2d4b6e8f0a13", "endpoint_id": "ep_4f1b8c2e7a5d9e0f1b23",
    "event_id": "msg_2f6c1e3d4a4f1b8c", "payment_terms_days": 60, "days_left": 21, "attempts": 1,
    "acknowledged_by": "Credit desk (console)", "resolved_by": "Credit desk (console)",
    "acknowledged_note": "Called the buyer: payment promised for Friday", "resolved_note": "Paid on 2026-11-21",
    "subject": "buyer:LECLERC", "next_cursor": "WyJMRUNMRVJDIl0", "cover_currency": "EUR", "month": "2026-11",
    "event_type": "alert.opened", "address": "93.184.215.14", "status_code": 200, "last_status_code": 503,
    "error": "HTTP 503 from the receiver", "last_error": "HTTP 503 from the receiver", "latency_ms": 84,
    "last_latency_ms": 84, "id": 1187,
}

# Decimal figures of the answers (strings, like every amount): told by their name.
_FIGURES = ("amount", "balance", "covered", "headroom", "exposure", "outstanding", "indemnif", "limit", "overdue",
            "not_due", "unapplied", "premium", "turnover", "peak", "cap", "loss", "total", "open_invoices",
            "invoiced", "credited")

# Amount-like fields (decimal strings) and the figure they show.
_AMOUNT = "1250.00"

REQUESTS: dict[tuple[str, str], Any] = {
    ("put", "/v1/buyers/{buyer_ref}"): {"name": "Leclerc SA", "country": "FR", "registration_id": "FR12345678901"},
    ("put", "/v1/invoices/{invoice_ref}"): {
        "buyer_ref": "LECLERC", "currency": "EUR", "amount": "18000.00", "issue_date": "2026-11-02",
        "due_date": "2026-12-31"},
    ("post", "/v1/invoices/batch"): {"items": [
        {"invoice_ref": "FA 2026/002", "buyer_ref": "LECLERC", "currency": "EUR", "amount": "4200.00",
         "issue_date": "2026-11-03", "due_date": "2027-01-02"},
        {"invoice_ref": "AV 2026/014", "kind": "credit_note", "buyer_ref": "LECLERC", "currency": "EUR",
         "amount": "300.00", "issue_date": "2026-11-05", "due_date": "2026-11-05", "applies_to": "FA 2026/002"}]},
    ("put", "/v1/payments/{payment_ref}"): {
        "buyer_ref": "LECLERC", "amount": "6000.00", "currency": "EUR", "received_on": "2026-11-18",
        "allocations": [{"invoice_ref": "FA 2026/001", "amount": "6000.00"}]},
    ("post", "/v1/payments/batch"): {"items": [
        {"payment_ref": "VIR 2026-1188", "buyer_ref": "LECLERC", "amount": "2500.00", "currency": "EUR",
         "received_on": "2026-11-19"}]},
    ("put", "/v1/policies/{policy_ref}"): {
        "insurer": "Allianz Trade", "kind": "whole_turnover", "currency": "EUR", "starts_on": "2026-01-01",
        "ends_on": "2026-12-31", "indemnity_rate": "0.90", "max_credit_period_days": 120, "claim_deadline_days": 150},
    ("post", "/v1/policies/{policy_ref}/limits"): {
        "buyer_ref": "LECLERC", "status": "granted", "amount": "20000.00", "effective_from": "2026-11-01"},
    ("put", "/v1/country-limits/{country}"): {"amount": "500000.00", "currency": "EUR", "policy_ref": "AT-WT-01"},
    ("put", "/v1/fx-rates"): {"rates": [{"date": "2026-11-20", "base": "EUR", "quote": "USD", "rate": "1.0850"},
                                        {"date": "2026-11-20", "base": "EUR", "quote": "GBP", "rate": "0.8712"}]},
    ("post", "/v1/credit-checks"): {"buyer_ref": "LECLERC", "currency": "EUR", "amount": "5000.00",
                                    "payment_terms_days": 60},
    ("post", "/v1/claims"): {"buyer_ref": "LECLERC", "invoice_refs": ["FA 2026/001"], "filed_on": TODAY,
                             "insurer_claim_ref": "AT-CL-2026-0412"},
    ("post", "/v1/alerts/{alert_id}/acknowledge"): {"note": "Called the buyer: payment promised for Friday"},
    ("post", "/v1/alerts/{alert_id}/resolve"): {"note": "Paid on 2026-11-21"},
    ("put", "/v1/settings"): {"utilisation_threshold": "0.85", "claim_lead_days": [30, 7], "locale": "fr-FR"},
    ("post", "/v1/api-keys"): {"name": "ERP (SAP)", "scope": "ingest"},
    ("post", "/v1/webhook-endpoints"): {"url": "https://hooks.example.com/coverwatch", "description": "Treasury desk",
                                        "event_types": ["alert.opened", "alert.resolved"]},
    ("patch", "/v1/webhook-endpoints/{endpoint_id}"): {"enabled": True},
    ("post", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): {"grace_hours": 24},
}

# Bodies that are not JSON: the first lines of what the endpoint takes.
TEXT_REQUESTS: dict[str, str] = {
    "text/csv": "Date, USD, JPY, GBP,\n20 November 2026, 1.0850, 162.30, 0.8712,\n",
    "application/xml": (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"\n'
        '  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"\n'
        '  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">\n'
        "  <cbc:ID>FA 2026/001</cbc:ID><cbc:IssueDate>2026-11-02</cbc:IssueDate>"
        "<cbc:DueDate>2026-12-31</cbc:DueDate>\n"
        "  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode><cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>\n"
        "  <cac:AccountingCustomerParty><cac:Party>...</cac:Party></cac:AccountingCustomerParty>\n"
        '  <cac:LegalMonetaryTotal><cbc:PayableAmount currencyID="EUR">18000.00</cbc:PayableAmount>'
        "</cac:LegalMonetaryTotal>\n</Invoice>\n"),
}
TEXT_REQUESTS["text/xml"] = TEXT_REQUESTS["application/xml"]
CSV_IMPORTS: dict[str, str] = {
    "buyers": "buyer_ref,name,country,registration_id,insurer_buyer_id,sector\n"
              "LECLERC,Leclerc SA,FR,FR12345678901,AT-884211,retail\n",
    "invoices": "invoice_ref,buyer_ref,kind,currency,amount,issue_date,due_date,applies_to\n"
                "FA 2026/001,LECLERC,invoice,EUR,18000.00,2026-11-02,2026-12-31,\n",
    "payments": "payment_ref,buyer_ref,amount,currency,received_on,allocated_invoice_ref,allocated_amount\n"
                "VIR 2026-1187,LECLERC,6000.00,EUR,2026-11-18,FA 2026/001,6000.00\n",
    "limits": "policy_ref,buyer_ref,status,amount,effective_from,expires_on,source,max_credit_period_days,"
              "decision_ref\nAT-WT-01,LECLERC,granted,20000.00,2026-11-01,,insurer,,AT-DEC-88120\n",
}

DATE_PATTERN_PREFIX = "^(19"
DECIMAL_PATTERN_PREFIX = "^\\d"


class Examples:
    """Builds an example of a schema of one OpenAPI document (its `components` resolve `$ref`s)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def of(self, schema: dict[str, Any], name: str | None = None, depth: int = 0) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [o for o in schema[key] if self.resolve(o).get("type") != "null"]
                return self.of(options[0], name, depth) if options else None
        if "allOf" in schema:
            return self.of(schema["allOf"][0], name, depth)
        kind = schema.get("type")
        if name in NAMED and _fits(NAMED[name], schema):
            return NAMED[name]
        if schema.get("examples"):
            return schema["examples"][0]
        if "default" in schema and schema["default"] is not None and kind not in ("object", "array"):
            return schema["default"]
        if kind == "object" or "properties" in schema:
            return self.object(schema, depth)
        if kind == "array":
            count = max(1, schema.get("minItems", 1)) if depth < 6 else 0
            return [self.of(schema.get("items", {}), _singular(name), depth + 1) for _ in range(count)]
        if kind == "string":
            return _string(schema, name)
        if kind == "integer":
            return max(schema.get("minimum", 1), min(30, schema.get("maximum", 30)))
        if kind == "number":
            return max(schema.get("minimum", 0), min(1, schema.get("maximum", 1)))
        if kind == "boolean":
            return True
        return None

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        if depth > 6:
            return {}
        return {prop: self.of(sub, prop, depth + 1) for prop, sub in schema.get("properties", {}).items()}


def _singular(name: str | None) -> str | None:
    if name is None:
        return None
    return {"invoice_refs": "invoice_ref", "countries": "country"}.get(name, name)


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "string":
        return isinstance(value, str) and schema.get("format") not in ("date-time", "binary")
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return kind is None and isinstance(value, str)


def _string(schema: dict[str, Any], name: str | None) -> str:
    fmt, pattern = schema.get("format"), schema.get("pattern", "")
    if fmt == "date" or pattern.startswith(DATE_PATTERN_PREFIX):
        return TODAY
    if fmt == "date-time":
        return f"{TODAY}T09:30:00Z"
    if fmt == "uri":
        return "https://coverwatch.dev/problems/validation-error"
    if pattern.startswith(DECIMAL_PATTERN_PREFIX) or any(word in (name or "") for word in _FIGURES):
        return _AMOUNT
    if pattern.startswith("^[A-Za-z0-9]"):
        return "AT-WT-01"
    text = (name or "text").replace("_", " ")
    return text.ljust(schema.get("minLength", 0), "x")[: schema.get("maxLength", 200)]


def complete(document: dict[str, Any]) -> None:
    """Give every operation of `document` a request example (when it takes a body) and a 2xx response example."""
    examples = Examples(document)
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                if "example" in content or "examples" in content:
                    continue
                if media == "application/json":
                    content["example"] = REQUESTS.get((method, path)) or examples.of(content.get("schema", {}))
                elif path == "/v1/imports/{kind}":
                    content["examples"] = {kind: {"summary": f"{kind} CSV", "value": csv}
                                           for kind, csv in CSV_IMPORTS.items()}
                elif media in TEXT_REQUESTS:
                    content["example"] = TEXT_REQUESTS[media]
            for code, response in op.get("responses", {}).items():
                if code.startswith("2"):
                    _response(examples, method, path, response.get("content", {}))


RESPONSES: dict[tuple[str, str], Any] = {
    ("get", "/healthz"): {"status": "ok"},
    ("get", "/readyz"): {"status": "ready", "revision": "7c1e0a9d5b21"},
}
METRICS = ('# HELP coverwatch_exposure_uncovered Uncovered exposure\n# TYPE coverwatch_exposure_uncovered gauge\n'
           'coverwatch_exposure_uncovered{currency="EUR",tenant="Demo Industries SAS"} 184250.0\n')


def _response(examples: Examples, method: str, path: str, content: dict[str, Any]) -> None:
    for media, body in content.items():
        if "example" in body or "examples" in body:
            continue
        if media == "application/json":
            body["example"] = RESPONSES.get((method, path)) or examples.of(body.get("schema", {}))
        elif media.startswith("text/plain"):
            body["example"] = METRICS
        elif media == "text/csv" and "application/json" not in content:  # an export: CSV only
            body["examples"] = _exports()


def _exports() -> dict[str, Any]:
    from app.reports.router import EXPORTS  # the columns each export writes

    def cell(column: str) -> str:
        value = NAMED.get(column, _AMOUNT if column.endswith(("amount", "balance", "uncovered", "indemnifiable"))
                          or column.startswith(("covered", "outstanding", "not_due", "overdue")) else "")
        return f'"{value}"' if isinstance(value, str) and ("," in value or " " in value) else str(value)

    return {kind: {"summary": f"{kind} export (CSV)",
                   "value": ",".join(columns) + "\n" + ",".join(cell(c) for c in columns) + "\n"}
            for kind, (columns, _) in EXPORTS.items()}
