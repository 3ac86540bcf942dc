from tests.helpers import buyer, invoice, ok


def test_buyer_and_invoice_roundtrip(api):
    buyer(api, "B1")
    inv = invoice(api, "INV-1", "1200.50", "2026-02-01", "2026-04-01")
    assert inv["open_balance"] == "1200.50"
    assert inv["status"] == "open"
    got = ok(api.get("/v1/buyers/B1"))
    assert got["balances"] == [
        {"currency": "EUR", "balance": "1200.50", "open_invoices": "1200.50", "unapplied_credit": "0.00"}
    ]
