"""Webhook URLs must not point into the service's own network (SSRF).

A URL is checked twice: when it is registered, and at every send, where the host is resolved ONCE,
every address it resolves to is checked, and the connection is pinned to the checked address
(`app/webhooks/transport.py`): there is no window in which DNS can answer something else.

Refused, with a reason naming what is wrong:
- anything but `http://` / `https://` with a host; credentials (`user:pw@`); whitespace or control
  characters anywhere (a CR/LF would split the request); backslashes; a URL that httpx would read
  differently from this module (parser differentials);
- host spellings that hide an address: decimal (`2130706433`), hex (`0x7f000001`), octal or shortened
  (`127.1`) IPv4, a trailing dot, IPv6 zone ids;
- addresses that are not public: loopback, private, shared (CGNAT), reserved, and IPv6 addresses that
  embed a non-public IPv4 (IPv4-mapped `::ffff:`, IPv4-compatible `::a.b.c.d`, 6to4 `2002::/16`, Teredo,
  NAT64 `64:ff9b::/96`) -- unless the network is in `COVERWATCH_WEBHOOK_ALLOWED_NETWORKS`;
- never, allow-list or not: cloud metadata addresses, link-local, unspecified (`0.0.0.0`, `::`),
  multicast and broadcast.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[IPAddress]]

_net = ipaddress.ip_network

# Instance metadata services (AWS, ECS, GCP, Azure, Alibaba, Oracle, DigitalOcean, OpenStack...).
METADATA: tuple[IPNetwork, ...] = (
    _net("169.254.169.254/32"), _net("169.254.169.253/32"), _net("169.254.169.123/32"), _net("169.254.170.2/32"),
    _net("169.254.170.23/32"), _net("fd00:ec2::254/128"), _net("fd00:ec2::253/128"), _net("fd00:ec2::23/128"),
    _net("fd00:ec2::123/128"), _net("100.100.100.200/32"), _net("192.0.0.192/32"), _net("168.63.129.16/32"),
    _net("fd20:ce::254/128"),
)
# Never a webhook target, even when an allowed network covers it.
NEVER: tuple[IPNetwork, ...] = (
    *METADATA,
    _net("169.254.0.0/16"), _net("fe80::/10"),  # link-local: where metadata services live
    _net("0.0.0.0/8"), _net("::/128"),  # "this host": 0.0.0.0 reaches loopback on Linux
    _net("224.0.0.0/4"), _net("ff00::/8"), _net("255.255.255.255/32"),
)
_NAT64 = _net("64:ff9b::/96")
_NAT64_LOCAL = _net("64:ff9b:1::/48")
_IPV4_COMPATIBLE = _net("::/96")
_IPV4_TRANSLATED = _net("::ffff:0:0:0/96")

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class UnsafeUrl(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    """A URL that passed the syntax checks: what to connect to, before resolution."""

    url: str
    scheme: str
    host: str  # lower case; an IP literal without brackets
    port: int
    literal: IPAddress | None  # the host when it is an IP address


def parse(url: str) -> Target:
    """Syntax only (no DNS): raise UnsafeUrl for every spelling that hides where the request goes."""
    if any(c.isspace() or unicodedata.category(c).startswith("C") for c in url):
        raise UnsafeUrl("must not contain whitespace or control characters (CR, LF, tab, NUL...)")
    if "\\" in url:
        raise UnsafeUrl("must not contain a backslash")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise UnsafeUrl("must be an http:// or https:// URL with a host")
    if "@" in parts.netloc:
        raise UnsafeUrl("must not carry credentials (user:password@)")
    try:
        port = parts.port if parts.port is not None else (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl("has an invalid port") from exc
    if not 0 < port < 65536:
        raise UnsafeUrl("has an invalid port")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl("must be an http:// or https:// URL with a host")
    literal: IPAddress | None
    if parts.netloc.split(":")[0].startswith("[") or ":" in host:
        if "%" in host:
            raise UnsafeUrl("must not use an IPv6 zone id")
        try:
            literal = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise UnsafeUrl("has an invalid IPv6 address") from exc
        if literal.ipv4_mapped is not None:
            raise UnsafeUrl("host is an IPv4-mapped IPv6 address: write the IPv4 address as a.b.c.d")
    else:
        if not host.isascii():
            raise UnsafeUrl("host must be ASCII: write an internationalised domain in its xn-- form")
        if "%" in host:
            raise UnsafeUrl("host must not be percent-encoded")
        if host.endswith("."):
            raise UnsafeUrl("host must not end with a dot")
        labels = host.split(".")
        if _NUMERIC_LABEL.match(labels[-1]):
            # The last label is a number: browsers and resolvers read the host as an IPv4 address,
            # in any of its spellings (2130706433, 0x7f.1, 0177.0.0.1, 127.1). Only a.b.c.d is accepted.
            try:
                literal = ipaddress.IPv4Address(host)
            except ValueError as exc:
                raise UnsafeUrl("host is a decimal, hex, octal or shortened IPv4 address: write it as a.b.c.d"
                                ) from exc
        else:
            literal = None
            if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
                raise UnsafeUrl("host is not a valid domain name")
    try:
        seen = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UnsafeUrl("is not a valid URL") from exc
    if seen.host.lower() != host or (seen.port or port) != port or seen.scheme != scheme:
        raise UnsafeUrl("is ambiguous (read differently by different URL parsers)")
    return Target(url=url, scheme=scheme, host=host, port=port, literal=literal)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> IPAddress:
    """Raise UnsafeUrl unless `ip` may be a webhook target; returns the address to connect to."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:a.b.c.d is a.b.c.d: judged, and connected to, as such
    if any(ip in net for net in NEVER):
        raise UnsafeUrl(f"resolves to {ip}, a metadata, link-local, unspecified or multicast address "
                        "(never allowed)")
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            raise UnsafeUrl(f"resolves to {ip}, a local-use NAT64 address")
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (not embedded.is_global or any(embedded in net for net in NEVER)):
            raise UnsafeUrl(f"resolves to {ip}, which embeds {embedded}, a loopback, private or reserved address")
    if any(ip in net for net in allowed):
        return ip
    if not ip.is_global:
        raise UnsafeUrl(f"resolves to {ip}, a loopback, private, shared or reserved address (allow its network "
                        "with COVERWATCH_WEBHOOK_ALLOWED_NETWORKS)")
    return ip


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, in its order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"host {host} does not resolve") from exc
    out: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in out:
            out.append(ip)
    return out


def resolve_checked(target: Target, allowed: Sequence[IPNetwork], resolver: Resolver = system_resolver) -> IPAddress:
    """Resolve once, check every address; the first is the one to connect to (pin)."""
    addresses = [target.literal] if target.literal is not None else list(resolver(target.host, target.port))
    if not addresses:
        raise UnsafeUrl(f"host {target.host} does not resolve")
    checked = [check_address(ip, allowed) for ip in addresses]
    return checked[0]


def check_url(url: str, allowed: Sequence[IPNetwork] = (), resolver: Resolver = system_resolver
              ) -> tuple[Target, IPAddress]:
    """Raise UnsafeUrl unless `url` is safe to send to now; returns the target and the address to pin."""
    target = parse(url)
    return target, resolve_checked(target, allowed, resolver)
