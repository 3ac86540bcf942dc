"""CSV import through the API and the CLI: the sample files, idempotency, rejected rows with line and reason."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from app.imports.cli import ImportFailed, run
from app.imports.parsing import decimal_text, rows
from tests.conftest import VALUATION_DATE
from tests.helpers import PRIMARY, TOP_UP, exposure, ok, open_balance

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ORDER = ("buyers", "limits", "invoices", "payments")
CSV = {"Content-Type": "text/csv"}


def post(api, kind: str, body: bytes | str, expect: int = 200):
    content = body.encode() if isinstance(body, str) else body
    return ok(api.post(f"/v1/imports/{kind}", content=content, headers=CSV), expect)


def policies(api) -> None:
    ok(api.put("/v1/policies/P", json=PRIMARY))
    ok(api.put("/v1/policies/T", json=TOP_UP))


def test_the_sample_files_import_once(api):
    policies(api)
    counts = {kind: post(api, kind, (EXAMPLES / f"{kind}.csv").read_bytes()) for kind in ORDER}
    assert {k: (c["rows"], c["items"], c["created"], c["rejected"]) for k, c in counts.items()} == {
        "buyers": (3, 3, 3, 0), "limits": (3, 3, 3, 0), "invoices": (6, 6, 6, 0), "payments": (3, 2, 2, 0)}

    # What the files say, as the JSON API shows it.
    assert ok(api.get("/v1/buyers/BARILLA"))["name"] == "Barilla G. e R. Fratelli, S.p.A."
    assert ok(api.get("/v1/invoices/F-2026-004"))["amount"] == "10000.50"  # decimal comma
    assert open_balance(api, "F-2026-003") == 20000  # VIR-001 allocated 10,000 to it
    assert open_balance(api, "F-2026-004") == 0  # credit note 5,000.50, then VIR-001's 5,000
    assert open_balance(api, "F-2026-001") == 60000  # VIR-002 unallocated: oldest due date first
    # Exposure and alerts are current: LECLERC 150,000 against 100,000 + Top Up 100,000; BARILLA refused.
    leclerc = exposure(api, "LECLERC")
    assert (leclerc["outstanding"], leclerc["covered_primary"], leclerc["covered_top_up"], leclerc["status"]) == (
        "150000.00", "100000.00", "50000.00", "above_primary")
    assert exposure(api, "BARILLA")["status"] == "no_cover"
    alerts = {(a["type"], a["buyer_ref"]) for a in ok(api.get("/v1/alerts"))["items"]}
    assert ("exposure_above_primary", "LECLERC") in alerts

    before = [ok(api.get(path)) for path in ("/v1/exposure/buyers", "/v1/buyers/METRO-DE/limits", "/v1/alerts")]
    again = {kind: post(api, kind, (EXAMPLES / f"{kind}.csv").read_bytes()) for kind in ORDER}
    assert {k: (c["unchanged"], c["created"], c["updated"], c["rejected"]) for k, c in again.items()} == {
        "buyers": (3, 0, 0, 0), "limits": (3, 0, 0, 0), "invoices": (6, 0, 0, 0), "payments": (2, 0, 0, 0)}
    after = [ok(api.get(path)) for path in ("/v1/exposure/buyers", "/v1/buyers/METRO-DE/limits", "/v1/alerts")]
    assert after == before


def test_rejected_rows_name_their_line_and_reason(api):
    policies(api)
    post(api, "buyers", "buyer_ref;name;country\nB1;Dupont;FR\nB2;Durand;XX\nbad ref;Martin;FR\n")
    report = post(api, "invoices", (
        "invoice_ref,buyer_ref,currency,amount,issue_date,due_date\n"
        "I1,B1,EUR,1000.00,2026-02-01,2026-03-31\n"
        "I2,NOBODY,EUR,500.00,2026-02-01,2026-03-31\n"
        "\n"
        "I3,B1,EUR,-5,2026-02-01,2026-03-31\n"
        "I4,B1,EUR,100.00,2026-02-31,2026-03-31\n"
        "I5,B1,EUR,100.00,2026-02-01,2026-03-31,extra\n"
        "I6,B1,EUR,\"1,5\",2026-02-01,2026-03-31\n"
    ))
    assert (report["rows"], report["created"], report["rejected"]) == (6, 2, 4)
    assert [(r["line"], r["ref"]) for r in report["rejected_rows"]] == [(3, "I2"), (5, "I3"), (6, "I4"), (7, "I5")]
    reasons = [r["reason"] for r in report["rejected_rows"]]
    assert "no buyer 'NOBODY'" in reasons[0]
    assert reasons[1].startswith("amount: ")
    assert reasons[2] == "issue_date: Value error, 2026-02-31 is not a calendar date"
    assert reasons[3] == "7 cells, the header has 6 columns"
    assert ok(api.get("/v1/invoices/I6"))["amount"] == "1.50"
    assert api.get("/v1/invoices/I2").status_code == 404
    buyers = post(api, "buyers", "buyer_ref;name;country\nB1;Dupont;FR\nB2;Durand;XX\nbad ref;Martin;FR\n")
    assert [(r["line"], r["reason"].split(":")[0]) for r in buyers["rejected_rows"]] == [
        (3, "country"), (4, "buyer_ref")]
    assert buyers["unchanged"] == 1

    # A payment's rows must agree on the payment; its allocations are checked as the API checks them.
    pay = post(api, "payments", (
        "payment_ref,buyer_ref,amount,currency,received_on,allocated_invoice_ref,allocated_amount\n"
        "P1,B1,300.00,EUR,2026-03-01,I1,200.00\n"
        "P1,B1,300.00,EUR,2026-03-02,I6,1.50\n"
        "P2,B1,100.00,EUR,2026-03-01,I1,900.00\n"
        "P3,B1,100.00,EUR,2026-03-01,,\n"
    ))
    assert (pay["items"], pay["created"], pay["rejected"]) == (3, 1, 2)
    assert [(r["line"], r["ref"]) for r in pay["rejected_rows"]] == [(2, "P1"), (3, "P1"), (4, "P2")]
    assert "received_on '2026-03-02' differs" in pay["rejected_rows"][0]["reason"]
    assert pay["rejected_rows"][2]["reason"] == "allocations: they add up to more than the payment amount."


def test_a_bad_header_or_encoding_is_a_422_and_writes_nothing(api):
    r = api.post("/v1/imports/buyers", content=b"buyer_ref,name,land\nB1,Dupont,FR\n", headers=CSV)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/csv/header"
    assert "Unknown column(s) land" in r.json()["detail"]
    r = api.post("/v1/imports/buyers", content=b"buyer_ref,name\nB1,Dupont\n", headers=CSV)
    assert r.status_code == 422 and "Missing column(s) country" in r.json()["detail"]
    r = api.post("/v1/imports/buyers", content="buyer_ref,name,country\nB1,Dupont,FR\n".encode("utf-16"),
                 headers=CSV)
    assert r.status_code == 422
    assert api.get("/v1/buyers/B1").status_code == 404
    assert api.post("/v1/imports/nothing", content=b"a\n", headers=CSV).status_code == 422


def test_scopes(api, anon):
    ingest = ok(api.post("/v1/api-keys", json={"name": "erp", "scope": "ingest"}), 201)["key"]
    read = ok(api.post("/v1/api-keys", json={"name": "dash", "scope": "read"}), 201)["key"]
    body = (EXAMPLES / "buyers.csv").read_bytes()
    assert anon.post("/v1/imports/buyers", content=body, headers={**CSV, "Authorization": f"Bearer {read}"}
                     ).status_code == 403
    assert anon.post("/v1/imports/buyers", content=body, headers={**CSV, "Authorization": f"Bearer {ingest}"}
                     ).status_code == 200
    r = anon.post("/v1/imports/limits", content=(EXAMPLES / "limits.csv").read_bytes(),
                  headers={**CSV, "Authorization": f"Bearer {ingest}"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]


def test_the_cli_imports_in_batches_and_reports_rejected_rows(api, tenant, app, database, tmp_path):
    policies(api)
    settings = app.state.settings.model_copy(update={"today": VALUATION_DATE})
    assert run("buyers", EXAMPLES / "buyers.csv", tenant.id, settings).counts["created"] == 3
    source = tmp_path / "invoices.csv"
    lines = ["invoice_ref,buyer_ref,currency,amount,issue_date,due_date"]
    lines += [f"INV-{n:04d},LECLERC,EUR,{n}.00,2026-02-01,2026-03-31" for n in range(1, 251)]
    lines.insert(100, "INV-BAD,LECLERC,EUR,zero,2026-02-01,2026-03-31")
    source.write_text("\n".join(lines) + "\n")
    tally = run("invoices", source, tenant.id, settings, batch_size=60)
    assert (tally.rows, tally.counts["created"], tally.counts["rejected"]) == (251, 250, 1)
    with (tmp_path / "invoices.rejected.csv").open() as f:
        assert list(csv.reader(f)) == [["line", "ref", "reason"],
                                       ["101", "INV-BAD", 'amount: Value error, must be a decimal string such as '
                                                          '"1250.00"']]
    # Every batch was written through the ingest path: exposure is current.
    assert exposure(api, "LECLERC")["outstanding"] == f"{sum(range(1, 251))}.00"
    again = run("invoices", source, tenant.id, settings, batch_size=60, report=tmp_path / "again.csv")
    assert (again.counts["unchanged"], again.counts["created"]) == (250, 0)
    with pytest.raises(ImportFailed, match="no tenant"):
        run("invoices", source, "nope", settings)
    (tmp_path / "bad.csv").write_text("buyer_ref,nom\n")
    with pytest.raises(ImportFailed, match="Unknown column"):
        run("buyers", tmp_path / "bad.csv", tenant.id, settings)


def test_an_import_cut_off_leaves_its_revaluation_queued(api, tenant, app, database):
    """Each batch commits its rows with the stale marks and the queued revaluation of the buyers it wrote to: an
    import cut off before its end (here: `revalue` never runs) leaves rows a dashboard reads as stale, and any
    runner brings them to what a recompute gives."""
    from app.core.context import system_context
    from app.exposure import revaluation
    from app.exposure import service as exposure_service
    from app.imports import service
    from app.tenants.models import Tenant

    policies(api)
    for kind in ("buyers", "limits"):
        post(api, kind, (EXAMPLES / f"{kind}.csv").read_bytes())
    text = (EXAMPLES / "invoices.csv").read_text(encoding="utf-8-sig")
    with database.session() as session:
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        tally = service.import_csv(ctx, "invoices", io.StringIO(text, newline=""), commit=session.commit,
                                   revalue=lambda: None, batch_size=2)
    assert (tally.items, tally.counts["created"]) == (6, 6)
    leclerc = exposure(api, "LECLERC")
    assert (leclerc["stale"], leclerc["outstanding"]) == (True, "0.00")  # the figures from before the import
    assert [o.state for o in revaluation.run_pending(database, app.state.settings, tenant_ids=[tenant.id])] == [
        "done"]
    leclerc = exposure(api, "LECLERC")
    assert (leclerc["stale"], leclerc["outstanding"], leclerc["covered_top_up"]) == (False, "170000.00", "70000.00")
    assert ("exposure_above_primary", "LECLERC") in {(a["type"], a["buyer_ref"])
                                                    for a in ok(api.get("/v1/alerts"))["items"]}
    with database.session() as session:
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        assert exposure_service.check(ctx) == []


def test_batches_end_between_buyers(api, tenant, app, database):
    """A full batch ends before the rows of its last buyer, which go with the next batch: in a file sorted by buyer
    no buyer straddles two batches (the revaluation of one and the writing of the next would want it at once),
    unless its rows fill a whole batch."""
    from app.core.context import system_context
    from app.imports import service
    from app.tenants.models import Tenant

    policies(api)
    for kind in ("buyers", "limits"):
        post(api, kind, (EXAMPLES / f"{kind}.csv").read_bytes())
    buyers = ["LECLERC"] * 2 + ["METRO-DE"] * 3 + ["BARILLA"] + ["LECLERC"] * 5
    text = "invoice_ref,buyer_ref,currency,amount,issue_date,due_date\n" + "".join(
        f"S-{n},{b},EUR,100.00,2026-02-01,2026-03-31\n" for n, b in enumerate(buyers))
    written: list[int] = []
    with database.session() as session:
        ctx = system_context(session, session.get(Tenant, tenant.id), app.state.settings)
        tally = service.import_csv(ctx, "invoices", io.StringIO(text, newline=""), commit=session.commit,
                                   revalue=lambda: None, batch_size=4,
                                   on_batch=lambda t: written.append(t.items))
    assert tally.counts["created"] == len(buyers)
    batches = [buyers[a:b] for a, b in zip([0, *written[:-1]], written, strict=True)]
    assert batches == [["LECLERC"] * 2, ["METRO-DE"] * 3, ["BARILLA"], ["LECLERC"] * 4, ["LECLERC"]]


@pytest.mark.parametrize(("text", "expected"), [
    ("1234.56", "1234.56"), ("1234,56", "1234.56"), ("1 234,56", "1234.56"), ("1.234,56", "1234.56"),
    ("1,234.56", "1234.56"), ("1\u00a0234\u00a0567,8", "1234567.8"), ("12", "12"),
])
def test_amounts_with_a_decimal_point_or_comma(text, expected):
    assert decimal_text(text) == expected


def test_delimiter_and_bom_are_detected():
    semicolons = "\ufeffbuyer_ref;name;country\r\nB1;Dupont, fils;FR\r\n"
    commas = 'buyer_ref,name,country\nB1,"Dupont, fils",FR\n'
    for text in (semicolons, commas):
        assert list(rows("buyers", io.StringIO(text, newline=""))) == [
            (2, {"buyer_ref": "B1", "name": "Dupont, fils", "country": "FR"})]


def test_the_coverwatch_import_command(api, tenant, database, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import cli
    from app.core.config import get_settings

    policies(api)
    monkeypatch.setenv("COVERWATCH_DATABASE_URL", database.url)
    monkeypatch.setenv("COVERWATCH_TODAY", VALUATION_DATE.isoformat())
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        done = runner.invoke(cli, ["import", "buyers", str(EXAMPLES / "buyers.csv"), "--tenant", tenant.id])
        assert done.exit_code == 0, done.output
        assert "3 rows, 3 items: 3 created, 0 updated, 0 unchanged, 0 rejected" in done.output
        bad = tmp_path / "limits.csv"
        bad.write_text((EXAMPLES / "limits.csv").read_text() + "P,NOBODY,granted,10.00,2026-01-01,,,,\n")
        done = runner.invoke(cli, ["import", "limits", str(bad), "--tenant", tenant.id])
        assert done.exit_code == 1, done.output
        assert "3 created" in done.output and "1 rejected" in done.output
        rejected = (tmp_path / "limits.rejected.csv").read_text().splitlines()
        assert rejected[1] == "5,NOBODY,buyer_ref: no buyer 'NOBODY'."
        assert runner.invoke(cli, ["import", "sellers", str(bad), "--tenant", tenant.id]).exit_code == 2
    finally:
        get_settings.cache_clear()
    assert len(ok(api.get("/v1/buyers/LECLERC/limits"))["decisions"]) == 1


def test_the_progress_bar_shows_rows_per_second(api, tenant, app, tmp_path):
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    run("buyers", EXAMPLES / "buyers.csv", tenant.id, app.state.settings, console=console)
    assert "rows/s" in screen.getvalue() and "3 rows" in screen.getvalue()


def test_buyers_and_limits_are_written_a_batch_at_a_time(api):
    """A batch of buyers or decisions is one change per buyer (one refresh for all), each row still checked on
    its own; the same decision twice in a file goes as the first one went."""
    policies(api)
    buyers = post(api, "buyers", "buyer_ref,name,country\nB1,Dupont,FR\nB2,Durand,DE\nB3,Martin,FR\nB1,Dupont SA,FR\n")
    assert (buyers["rows"], buyers["created"], buyers["updated"], buyers["rejected"]) == (4, 3, 1, 0)
    assert ok(api.get("/v1/buyers/B1"))["name"] == "Dupont SA"
    assert [exposure(api, b)["country"] for b in ("B1", "B2", "B3")] == ["FR", "DE", "FR"]  # rows, refreshed
    ok(api.put("/v1/invoices/I1", json={"buyer_ref": "B1", "currency": "EUR", "amount": "100000.00",
                                         "issue_date": "2026-03-10", "due_date": "2026-05-10"}), 201)
    limits = (
        "policy_ref,buyer_ref,status,amount,effective_from\n"
        "P,B1,granted,100000.00,2026-01-01\n"
        "P,B1,reduced,20000.00,2026-03-01\n"  # leaves 100,000 - 20,000 - Top Up 20,000 uncovered
        "P,B2,refused,5000.00,2026-01-01\n"  # a refusal has no amount: rejected, and again below
        "P,B3,granted,10000.00,2026-01-01\n"
        "P,B2,refused,5000.00,2026-01-01\n"
        "P,B3,granted,10000.00,2026-01-01\n"  # the same decision again: recorded once
        "P,NOBODY,granted,10000.00,2026-01-01\n"
        "NOPOLICY,B3,granted,10000.00,2026-01-01\n"
    )
    report = post(api, "limits", limits)
    assert (report["created"], report["unchanged"], report["rejected"]) == (3, 1, 4)
    assert [(r["line"], r["reason"].split(":")[0]) for r in report["rejected_rows"]] == [
        (4, "amount"), (6, "amount"), (8, "buyer_ref"), (9, "No policy 'NOPOLICY'.")]
    b1 = exposure(api, "B1")
    assert (b1["primary_limit"], b1["covered_top_up"], b1["uncovered"]) == ("20000.00", "20000.00", "60000.00")
    assert exposure(api, "B3")["primary_limit"] == "10000.00"
    reduced = [a for a in ok(api.get("/v1/alerts"))["items"] if a["type"] == "limit_reduced_below_exposure"]
    assert [(a["buyer_ref"], a["details"]["decision_status"]) for a in reduced] == [("B1", "reduced")]
    assert len(ok(api.get("/v1/buyers/B3/limits"))["decisions"]) == 1
    again = post(api, "limits", limits)
    assert (again["created"], again["unchanged"], again["rejected"]) == (0, 4, 4)
