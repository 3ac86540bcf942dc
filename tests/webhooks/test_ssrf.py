"""SSRF: webhook URLs that would reach the service's own network are refused, at registration and at send.

The test app allows 127.0.0.0/8 (its receivers listen there): every trick below is refused even so. No test
sends to anything but 127.0.0.1: endpoints on other addresses are created disabled, and DNS answers that
name other addresses are refused before any connection.
"""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from app.core.config import Settings
from tests.helpers import ok
from tests.receiver import Receiver, tls_material

TRICKS = {
    # whitespace and control characters: a CR/LF would split the request line and inject headers
    "crlf": ("http://127.0.0.1:9/x\r\nX-Injected: 1", "control characters"),
    "lf": ("http://127.0.0.1:9/x\nfoo", "control characters"),
    "tab": ("http://127.0.0.1:9/\tx", "control characters"),
    "space": ("http://127.0.0.1:9/a b", "whitespace"),
    "zero-width-space": ("http://exa\u200bmple.com/", "control characters"),
    # IPv6 forms that embed a private IPv4
    "6to4-loopback": ("http://[2002:7f00:1::]/", "embeds 127.0.0.1"),
    "6to4-private": ("http://[2002:a00:1::]/", "embeds 10.0.0.1"),
    "6to4-metadata": ("http://[2002:a9fe:a9fe::]/", "embeds 169.254.169.254"),
    "ipv4-mapped": ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
    "ipv4-mapped-hex": ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped"),
    "ipv4-compatible": ("http://[::127.0.0.1]/", "embeds 127.0.0.1"),
    "nat64": ("http://[64:ff9b::127.0.0.1]/", "embeds 127.0.0.1"),
    "nat64-metadata": ("http://[64:ff9b::a9fe:a9fe]/", "embeds 169.254.169.254"),
    "nat64-local-use": ("http://[64:ff9b:1::a00:1]/", "NAT64"),
    "teredo": ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "embeds 127.0.0.1"),
    # IPv4 spellings
    "decimal": ("http://2130706433/", "decimal"),
    "hex": ("http://0x7f000001/", "hex"),
    "hex-dotted": ("http://0x7f.0.0.1/", "hex"),
    "octal": ("http://0177.0.0.1/", "octal"),
    "shortened": ("http://127.1/", "shortened"),
    "trailing-dot-name": ("http://localhost./", "dot"),
    "trailing-dot-ip": ("http://127.0.0.1./", "dot"),
    "ipv6-zone-id": ("http://[fe80::1%25eth0]/", "zone"),
    "percent-encoded-host": ("http://%31%32%37.0.0.1/", "percent-encoded"),
    "uppercase-hex": ("http://0X7F.0.0.1/", "hex"),
    # "this host"
    "0.0.0.0": ("http://0.0.0.0:9/", "unspecified"),
    "0.0.0.0-other": ("http://0.1.2.3/", "unspecified"),
    "ipv6-unspecified": ("http://[::]/", "unspecified"),
    # credentials and parser differentials
    "credentials": ("http://user:pw@127.0.0.1/", "credentials"),
    "user-only": ("http://user@example.com/", "credentials"),
    "empty-credentials": ("http://@127.0.0.1/", "credentials"),
    "backslash": ("http://example.com\\@127.0.0.1/", "backslash"),
    # metadata and private space (not allowed here)
    "aws-metadata": ("http://169.254.169.254/latest/meta-data", "metadata"),
    "aws-metadata-ipv6": ("http://[fd00:ec2::254]/", "metadata"),
    "alibaba-metadata": ("http://100.100.100.200/", "metadata"),
    "ecs-metadata": ("http://169.254.170.2/v2/credentials", "metadata"),
    "link-local": ("http://169.254.1.1/", "link-local"),
    "private-10": ("http://10.1.2.3/", "private"),
    "private-192.168": ("http://192.168.1.1/", "private"),
    "private-172.16": ("http://172.16.0.1/", "private"),
    "unique-local-ipv6": ("http://[fc00::1]/", "private"),
    "cgnat": ("http://100.64.0.1/", "shared"),
    "ipv6-loopback": ("http://[::1]/", "loopback"),
    # not http(s)
    "ftp": ("ftp://example.com/x", "http"),
    "file": ("file:///etc/passwd", "http"),
    "no-host": ("http:///x", "http"),
    "port-zero": ("http://127.0.0.1:0/", "port"),
    "not-a-url": ("not a url", "whitespace"),
}


@pytest.mark.parametrize("name", TRICKS)
def test_a_url_trick_is_refused_at_registration_with_a_problem_naming_the_field(api, name):
    url, reason = TRICKS[name]
    r = api.post("/v1/webhook-endpoints", json={"url": url, "enabled": False})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["pointer"] == "/url"
    assert reason.lower() in error["detail"].lower(), error["detail"]
    assert ok(api.get("/v1/webhook-endpoints"))["items"] == []


def test_a_trick_is_refused_when_changing_the_url_too(api, receiver):
    created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
    r = api.patch(f"/v1/webhook-endpoints/{created['id']}", json={"url": "http://[2002:7f00:1::]/"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/url"
    assert ok(api.get(f"/v1/webhook-endpoints/{created['id']}"))["url"] == receiver.url


def test_the_allow_list_opens_listed_networks_only_and_never_the_metadata_addresses(api, settings_override):
    settings_override(webhook_allowed_networks=(ipaddress.ip_network("10.1.0.0/16"),))
    # Created disabled: nothing is ever sent there.
    listed = ok(api.post("/v1/webhook-endpoints", json={"url": "http://10.1.2.3:8080/x", "enabled": False}), 201)
    assert listed["enabled"] is False
    for url in ("http://10.2.0.1/x", "http://127.0.0.1:9/x", "http://192.168.0.1/"):
        assert api.post("/v1/webhook-endpoints", json={"url": url, "enabled": False}).status_code == 422, url

    everything = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    settings_override(webhook_allowed_networks=everything)
    for url in ("http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
                "http://169.254.170.2/", "http://168.63.129.16/", "http://0.0.0.0/", "http://[fe80::1]/"):
        r = api.post("/v1/webhook-endpoints", json={"url": url, "enabled": False})
        assert r.status_code == 422, url
        assert "never allowed" in r.json()["errors"][0]["detail"]
    assert [e["url"] for e in ok(api.get("/v1/webhook-endpoints"))["items"]] == ["http://10.1.2.3:8080/x"]


def test_the_allow_list_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("COVERWATCH_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8, 10.1.0.0/16,::1/128")
    assert [str(n) for n in Settings().webhook_allowed_networks] == ["127.0.0.0/8", "10.1.0.0/16", "::1/128"]
    monkeypatch.setenv("COVERWATCH_WEBHOOK_ALLOWED_NETWORKS", "10.1.2.3/16")
    with pytest.raises(ValidationError, match="host bits"):
        Settings()
    monkeypatch.delenv("COVERWATCH_WEBHOOK_ALLOWED_NETWORKS")
    assert Settings().webhook_allowed_networks == ()


def _set_url(database, endpoint_id: str, url: str) -> None:
    """As if the endpoint had been registered with `url` (under a name DNS resolved safely, or before the
    URL checks were tightened)."""
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE webhook_endpoints SET url = :url WHERE id = :id"), {"url": url, "id": endpoint_id})


def _deliveries(api):
    return ok(api.get("/v1/webhook-deliveries"))["items"]


def test_the_connection_is_pinned_to_the_address_checked_at_send_time(api, receiver, database, dispatch):
    """DNS rebinding: the name resolves to the receiver (127.0.0.1) when checked, then to another address.
    The dispatcher resolves once and connects to the checked address; the request still names the host."""
    created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
    host = "hooks.invalid"  # .invalid never resolves in real DNS: only the pinned address can reach the receiver
    _set_url(database, created["id"], f"http://{host}:{receiver.port}/hooks")
    asked: list[str] = []

    def rebinding_dns(name: str, port: int) -> list[ipaddress.IPv4Address]:
        asked.append(name)
        return [ipaddress.ip_address("127.0.0.1" if len(asked) == 1 else "10.255.255.1")]

    ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
    assert dispatch(resolver=rebinding_dns) == 1
    assert asked == [host]  # resolved once, for the check; the connection did not ask again
    [got] = receiver.received
    assert got.headers["host"] == f"{host}:{receiver.port}" and got.peer == "127.0.0.1"
    assert receiver.verified(created["secret"])[0]["type"] == "ping"
    [delivery] = _deliveries(api)
    assert delivery["status"] == "delivered" and delivery["attempt_log"][0]["address"] == "127.0.0.1"


def test_a_name_that_resolves_to_a_refused_address_at_send_time_is_not_contacted(api, receiver, database, dispatch):
    created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
    _set_url(database, created["id"], f"http://hooks.invalid:{receiver.port}/hooks")
    answers = {
        "private": ["10.255.255.1"],
        "metadata": ["169.254.169.254"],
        "one of several": ["127.0.0.1", "169.254.169.254"],  # every address is checked, not only the first
        "6to4 of loopback": ["2002:7f00:1::"],
    }
    for name, addresses in answers.items():
        ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
        dispatch(resolver=lambda host, port, a=addresses: [ipaddress.ip_address(x) for x in a])
        latest = _deliveries(api)[0]
        assert latest["status"] == "pending" and latest["last_status_code"] is None, name
        assert latest["last_error"].startswith("refused: resolves to"), (name, latest["last_error"])
    assert receiver.hits == 0


def test_redirects_are_not_followed(api, dispatch):
    target, redirector = Receiver(), Receiver()
    try:
        redirector.redirect_to = target.url
        created = ok(api.post("/v1/webhook-endpoints", json={"url": redirector.url}), 201)
        ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
        dispatch()
        assert redirector.hits == 1 and target.hits == 0
        [delivery] = _deliveries(api)
        assert delivery["status"] == "pending"
        assert (delivery["last_status_code"], delivery["last_error"]) == (302, "redirect not followed")
    finally:
        target.close()
        redirector.close()


def test_a_stored_url_with_a_crlf_fails_its_deliveries_instead_of_leaving_them_pending(api, receiver, database,
                                                                                      dispatch, settings_override):
    """Registered before the check (the bug: its deliveries stayed pending for ever, re-leased each time)."""
    created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
    _set_url(database, created["id"], receiver.url + "\r\nX-Injected: 1")
    settings_override(webhook_retry_window_hours=0.0)
    ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
    assert dispatch() == 1
    [delivery] = _deliveries(api)
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "control characters" in delivery["last_error"]
    assert receiver.hits == 0


def test_a_pinned_https_connection_keeps_the_urls_name_for_sni_and_certificate_checks(api, database, dispatch,
                                                                                      settings_override, tmp_path):
    """Pinned to 127.0.0.1, the TLS handshake still asks for, and verifies the certificate of, the URL's host."""
    context, ca_file = tls_material(tmp_path, "hooks.invalid")
    settings_override(webhook_ca_file=str(ca_file))
    receiver = Receiver(tls=context)
    try:
        created = ok(api.post("/v1/webhook-endpoints", json={"url": receiver.url}), 201)
        _set_url(database, created["id"], f"https://hooks.invalid:{receiver.port}/hooks")
        ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
        dispatch(resolver=lambda host, port: [ipaddress.ip_address("127.0.0.1")])
        assert receiver.sni == ["hooks.invalid"]
        [got] = receiver.received
        assert got.headers["host"] == f"hooks.invalid:{receiver.port}"
        assert receiver.verified(created["secret"])[0]["type"] == "ping"

        # A certificate for another name is refused: verification is against the URL's name, not the address.
        _set_url(database, created["id"], f"https://other.invalid:{receiver.port}/hooks")
        ok(api.post(f"/v1/webhook-endpoints/{created['id']}/test"), 202)
        dispatch(resolver=lambda host, port: [ipaddress.ip_address("127.0.0.1")])
        latest = _deliveries(api)[0]
        assert latest["status"] == "pending" and "CERTIFICATE_VERIFY_FAILED" in latest["last_error"]
        assert len(receiver.received) == 1
    finally:
        receiver.close()
