"""Outbound requests to addresses that users name (promotion callbacks): which are allowed, how to send one.

A URL is checked in three steps:

1. its shape (`parse_url`): http or https, a host, no user name or password, a port from 1 to 65535, an
   IPv4 address only in dotted decimal (`http://2130706433/` and `http://0x7f.1/` mean 127.0.0.1 to most
   resolvers);
2. its addresses (`resolve`): every A and AAAA answer must be a public unicast address (`address_refusal`),
   unless the host is on the allow list or the address is in an allowed network;
3. the connection (`post`): made to one of the addresses just checked, never to a name resolved again, so an
   answer that changes between the check and the connection (DNS rebinding) cannot redirect it. Redirects are
   not followed, and the whole exchange has one deadline.

Nothing here reads Django settings: callers pass the allow lists and the timeout.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(ValueError):
    """A URL or address that may not be sent to; the message says why, without naming resolved addresses."""


class NotResolved(Refused):
    """The host did not resolve (in time): refused now, though it may resolve later."""


# Not public unicast, by range. The first match names the reason; anything these miss and ipaddress does not
# call global is refused as "reserved".
_V4 = [
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
]
_V6 = [
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "ORCHID"),
    ("2001:20::/28", "ORCHID"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
]
_V4_RANGES = [(ipaddress.IPv4Network(net), reason) for net, reason in _V4]
_V6_RANGES = [(ipaddress.IPv6Network(net), reason) for net, reason in _V6]
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the low 32 bits are an IPv4 address
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056: bits 16-48 are an IPv4 address


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings ("10.20.0.0/16", "fd00:1::/64", "127.0.0.1") as networks; ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a network in CIDR form: {exc}") from None
    return tuple(networks)


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR:
        return address.sixtofour
    return None


def address_refusal(address: str | Address, allowed_networks: Iterable[Network] = ()) -> str | None:
    """Why address is not a public unicast address ("loopback", "private", …), or None when it may be used.

    An IPv6 address that carries an IPv4 address (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16)
    is judged by the IPv4 address it reaches. allowed_networks are accepted whatever their class.
    """
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "scoped (zone index)"
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    effective = mapped or address
    if any(effective in network for network in allowed_networks if network.version == effective.version):
        return None
    if isinstance(effective, ipaddress.IPv4Address):
        for network, reason in _V4_RANGES:
            if effective in network:
                return reason
        return None if effective.is_global else "reserved"
    for network, reason in _V6_RANGES:
        if effective in network:
            return reason
    embedded = _embedded_v4(effective)
    if embedded is not None:
        inner = address_refusal(embedded, allowed_networks)
        return f"{inner} (embedded in IPv6)" if inner else None
    if effective not in _V6_GLOBAL_UNICAST or not effective.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to ask for."""

    scheme: str
    host: str  # lower case, ASCII (IDNA), no trailing dot; an IPv6 address without brackets
    port: int
    path: str  # path and query, as sent in the request line
    trusted: bool  # the host is on the allow list: its addresses are not checked
    literal: Address | None  # the host, when it is an IP address

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


# A host made only of numbers (decimal, octal with a leading 0, hex with 0x) is an IPv4 address to the WHATWG
# URL parser and to inet_aton, whatever its form; only the canonical dotted decimal is accepted.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def normalise_host(host: str) -> str:
    """The form hosts are compared in: lower case, no brackets, no trailing dot, IP addresses compressed."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.removesuffix(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def parse_url(url: str, *, allowed_hosts: Iterable[str] = ()) -> Target:
    """Check a URL's shape, not its addresses. allowed_hosts, if not empty, are the only hosts it may name."""
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise Refused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("is not a valid URL (check the host and the port)") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("must be an http or https URL")
    if "@" in parts.netloc:
        raise Refused("must not contain a user name or password")
    if not parts.hostname:
        raise Refused("must name a host")
    port = port if port is not None else (443 if parts.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise Refused("must have a port from 1 to 65535")
    host = normalise_host(parts.hostname)
    literal = None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if "%" in host:
            raise Refused("must not carry an IPv6 zone index") from None
        if _NUMERIC_HOST.match(host):
            raise Refused("must write an IPv4 address as four decimal numbers (a.b.c.d)") from None
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise Refused(f"host {parts.hostname!r} is not a valid host name") from None
        if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
            raise Refused(f"host {parts.hostname!r} is not a valid host name") from None
    if isinstance(literal, ipaddress.IPv6Address) and literal.scope_id:
        raise Refused("must not carry an IPv6 zone index")
    allowed = {normalise_host(entry) for entry in allowed_hosts}
    if allowed and host not in allowed:
        raise Refused(f"host {host!r} is not an allowed callback host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Non-ASCII characters are percent-encoded (UTF-8), the rest is sent as given.
    path = "".join(ch if ord(ch) < 127 else quote(ch, safe="") for ch in path)
    return Target(parts.scheme, host, port, path, trusted=host in allowed, literal=literal)


_lookup_pool: ThreadPoolExecutor | None = None
_lookup_pool_lock = threading.Lock()


def _lookup(host: str, port: int, timeout: float) -> list:
    """getaddrinfo with a deadline: the system resolver has none of its own that a caller can set."""
    global _lookup_pool
    with _lookup_pool_lock:
        if _lookup_pool is None:
            _lookup_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="netguard-dns")
    future = _lookup_pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()
        raise
    except (OSError, UnicodeError):
        return []


def resolve(target: Target, *, allowed_networks: Iterable[Network] = (), timeout: float = 5.0) -> list[str]:
    """Every address of target's host (all A and AAAA answers), each checked unless the host is trusted.

    Refused when the host does not resolve in time, or when any one address is not public: a name that
    answers with a public and a private address could be connected to either.
    """
    if target.literal is not None:
        addresses = [target.literal.compressed]
    else:
        try:
            infos = _lookup(target.host, target.port, timeout)
        except FutureTimeout:
            infos = []
        addresses = list(
            dict.fromkeys(
                info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6) and info[4]
            )
        )
    # For a name, the same message whether it did not resolve or resolved to a refused address: the
    # registry's view of internal names is not for its users to map.
    named = f"host {target.host!r} must resolve to public addresses only"
    if not addresses:
        raise NotResolved(named)
    if target.trusted:
        return addresses
    networks = tuple(allowed_networks)
    for address in addresses:
        reason = address_refusal(address, networks)
        if reason is not None:
            if target.literal is not None:
                raise Refused(f"{target.host} is a {reason} address")
            raise Refused(named)
    return addresses


def check(
    url: str, *, allowed_hosts: Iterable[str] = (), allowed_networks: Iterable[Network] = (), timeout=5.0
):
    """parse_url and resolve: the Target and its checked addresses, or Refused."""
    target = parse_url(url, allowed_hosts=allowed_hosts)
    return target, resolve(target, allowed_networks=allowed_networks, timeout=timeout)


class SendFailed(OSError):
    """The receiver could not be reached, or did not answer with a status line in time."""


def post(
    target: Target,
    addresses: list[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> int:
    """POST body to target at one of addresses (already checked); the answer's status code.

    The connection goes to the checked address itself; TLS still verifies the certificate for target.host
    (against tls, by default the system's certificate authorities) and sends it as SNI. Only the status line
    is read: a redirect is returned as its status, never followed. Everything, from the first connection
    attempt to the status line, fits in timeout seconds.
    """
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SendFailed(f"no answer within {timeout} s")
        return left

    sock, errors = None, []
    for address in addresses:
        try:
            sock = socket.create_connection((address, target.port), timeout=remaining())
            break
        except SendFailed:
            raise
        except TimeoutError:
            errors.append(f"{address}: no connection within {timeout} s")
        except OSError as exc:
            errors.append(f"{address}: {exc}")
    if sock is None:
        raise SendFailed("could not connect (" + "; ".join(errors) + ")")
    try:
        if target.scheme == "https":
            sock.settimeout(remaining())  # the handshake as a whole: CPython gives it one deadline
            sock = (tls or ssl.create_default_context()).wrap_socket(sock, server_hostname=target.host)
        head = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        sock.settimeout(remaining())
        sock.sendall("\r\n".join(head).encode("latin-1") + body)
        received = b""
        while b"\r\n" not in received and len(received) < 1024:
            sock.settimeout(remaining())
            chunk = sock.recv(1024)
            if not chunk:
                break
            received += chunk
    except SendFailed:
        raise
    except TimeoutError:
        raise SendFailed(f"no answer within {timeout} s") from None
    except OSError as exc:  # ssl.SSLError too
        raise SendFailed(str(exc) or type(exc).__name__) from None
    finally:
        sock.close()
    match = re.match(rb"HTTP/1\.[01] ([1-5][0-9][0-9])[ \r]", received)
    if match is None:
        raise SendFailed("the answer is not HTTP")
    return int(match.group(1))
