"""Promotion callbacks: where the registry may POST (checked at request time and at delivery), how it sends.

Every receiver here listens on 127.0.0.1. Every other address is data: given to the checker, or returned by a
stubbed resolver (socket.getaddrinfo), and never connected to.
"""

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from django.utils import timezone

from approvals.models import IdempotencyRecord, OutboxMessage, PromotionRequest
from approvals.services import promotion_reject, promotion_request
from approvals.tasks import deliver_message, sign, wait_for_background_callbacks
from audit.models import AuditEvent
from core import netguard
from core.exceptions import InvalidInput
from core.source import Source
from tests.helpers import Receiver

DOCS = Path(__file__).resolve().parents[2] / "docs"
PUBLIC_V4 = (
    "93.184.215.14"  # a global unicast address: only ever returned by the stub resolver, never dialled
)
PUBLIC_V6 = "2606:4700::1111"


# A resolver for tests: names map to addresses (or to a function giving them); other names do not exist.


class StubResolver:
    def __init__(self):
        self.names = {"localhost": ["127.0.0.1", "::1"]}
        self.calls: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        self.calls.append(host)
        try:  # an IP literal resolves to itself, as with the system resolver
            addresses = [ipaddress.ip_address(host).compressed]
        except ValueError:
            entry = self.names.get(host.lower().removesuffix("."))
            if entry is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = entry() if callable(entry) else entry
        port = int(port or 0)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    stub = StubResolver()
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Whatever the code under test decides, a connection to anything but loopback fails here."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        host, port = address[:2]
        resolved = {info[4][0] for info in socket.getaddrinfo(host, port)}  # the stub resolver
        if not all(ipaddress.ip_address(each).is_loopback for each in resolved):
            raise ConnectionRefusedError(f"tests connect to loopback only, not {host} ({resolved})")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture(autouse=True)
def drained():
    """No delivery outlives its test."""
    yield
    assert wait_for_background_callbacks(timeout=30)


# The address check, as data ----------------------------------------------------------------------

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.254.1.2", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("2001:2::1", "benchmarking"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
    ("2001::1", "Teredo"),
    ("100::1", "discard-only"),
]


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_non_public_addresses_are_refused(address, reason):
    assert reason in (netguard.address_refusal(address) or "")


@pytest.mark.parametrize(
    "address", [PUBLIC_V4, "8.8.8.8", PUBLIC_V6, "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address):
    assert netguard.address_refusal(address) is None


def test_allowed_networks_admit_their_addresses_only():
    networks = netguard.parse_networks(["10.20.0.0/16", "127.0.0.0/8", "fd00:1::/64"])
    assert netguard.address_refusal("10.20.3.4", networks) is None
    assert netguard.address_refusal("10.21.0.1", networks) == "private"
    assert netguard.address_refusal("::ffff:127.0.0.1", networks) is None
    assert netguard.address_refusal("fd00:1::5", networks) is None
    assert netguard.address_refusal("fd00:2::5", networks) == "unique local"
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        netguard.parse_networks(["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://ci.example.com/hook", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("https://user:secret@ci.example.com/hook", "user name or password"),
        ("https://user@ci.example.com/hook", "user name or password"),
        ("http://ci.example.com:0/hook", "port"),
        ("http://ci.example.com:65536/hook", "port"),
        ("http://ci.example.com:http/hook", "port"),
        ("http://2130706433/", "four decimal numbers"),  # 127.0.0.1 as one decimal number
        ("http://0x7f.1/", "four decimal numbers"),  # 127.0.0.1 in hex and short form
        ("http://0x7f000001/", "four decimal numbers"),
        ("http://0177.0.0.1/", "four decimal numbers"),  # octal
        ("http://127.1/", "four decimal numbers"),
        ("http://127.000.000.001/", "four decimal numbers"),
        ("http://[fe80::1%25eth0]/", "zone index"),
        ("http://ci.example.com/a b", "spaces or control characters"),
        ("http://ci.example.com\n.evil/", "spaces or control characters"),
        ("http:///path-only", "must name a host"),
        ("http://exa_mple..com/", "not a valid host name"),
    ],
)
def test_url_shapes_are_refused(url, message):
    with pytest.raises(netguard.Refused, match=message):
        netguard.parse_url(url)


def test_url_is_normalised():
    target = netguard.parse_url("HTTPS://CI.Example.COM.:8443/hooks/ä?x=1#frag")
    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "ci.example.com",
        8443,
        "/hooks/%C3%A4?x=1",
    )
    assert target.host_header == "ci.example.com:8443"
    assert netguard.parse_url("http://[::1]/").host_header == "[::1]"
    assert netguard.parse_url("http://[::1]:8080/").host_header == "[::1]:8080"


def test_allowed_hosts_restrict_and_are_trusted():
    allowed = ["ci.example.com", "[::1]", "LocalHost."]
    assert netguard.parse_url("https://ci.example.com/h", allowed_hosts=allowed).trusted
    assert netguard.parse_url("http://[::1]:9/h", allowed_hosts=allowed).trusted
    assert netguard.parse_url("http://localhost:9/h", allowed_hosts=allowed).trusted
    with pytest.raises(netguard.Refused, match="not an allowed callback host"):
        netguard.parse_url("https://deploy.example.com/h", allowed_hosts=allowed)
    assert not netguard.parse_url("https://deploy.example.com/h").trusted


def test_every_address_of_every_answer_is_checked(resolver):
    resolver.names["public.example"] = [PUBLIC_V4, PUBLIC_V6]
    resolver.names["mixed.example"] = [PUBLIC_V4, "10.0.0.7"]
    resolver.names["mixed6.example"] = [PUBLIC_V4, "fd00::7"]
    resolver.names["metadata.example"] = ["169.254.169.254"]
    assert netguard.check("https://public.example/h")[1] == [PUBLIC_V4, PUBLIC_V6]
    for name in ("mixed", "mixed6", "metadata", "missing"):
        with pytest.raises(netguard.Refused) as refused:
            netguard.check(f"https://{name}.example/h")
        # One message whether the name is unknown or private: the server's view of names is not revealed.
        assert str(refused.value) == f"host '{name}.example' must resolve to public addresses only"
    with pytest.raises(netguard.Refused, match="must resolve to public addresses only"):
        netguard.check("http://localhost:8000/h")  # 127.0.0.1 and ::1


def test_a_slow_resolver_is_a_refusal_within_the_timeout(resolver):
    release = threading.Event()
    resolver.names["slow.example"] = lambda: [PUBLIC_V4] if release.wait(10) else []
    started = time.monotonic()
    try:
        with pytest.raises(netguard.Refused):
            netguard.check("https://slow.example/h", timeout=0.3)
        assert time.monotonic() - started < 3
    finally:
        release.set()


# At request time: 400 naming callback_url, nothing created ------------------------------------------

REFUSED_URLS = [
    "http://127.0.0.1:8000/hook",
    "http://localhost:8000/hook",
    "http://[::1]:8000/hook",
    "http://169.254.169.254/latest/meta-data/",  # refused, never connected to
    "http://10.0.0.1/hook",  # refused, never connected to
    "http://172.16.0.1/hook",  # refused, never connected to
    "http://192.168.0.1/hook",  # refused, never connected to
    "http://100.64.0.1/hook",
    "http://[fc00::1]/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://0.0.0.0:8000/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://mixed.example/hook",  # public and private answers
    "http://internal.example/hook",
    "http://unknown.example/hook",
    "https://user:pw@hooks.example/hook",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_refused_callback_url_is_a_400_and_creates_nothing(world, resolver, url):
    resolver.names["mixed.example"] = [PUBLIC_V4, "10.1.2.3"]
    resolver.names["internal.example"] = ["192.168.10.10"]
    resolver.names["hooks.example"] = [PUBLIC_V4]
    counts = (PromotionRequest.objects.count(), AuditEvent.objects.count(), IdempotencyRecord.objects.count())
    response = world.request(callback_url=url, key="refused-callback")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "invalid-input"
    assert [error["field"] for error in body["errors"]] == ["callback_url"]
    assert "192.168.10.10" not in response.content.decode() and "10.1.2.3" not in response.content.decode()
    assert (
        PromotionRequest.objects.count(),
        AuditEvent.objects.count(),
        IdempotencyRecord.objects.count(),
    ) == counts
    # The key was not used up: the same key with an acceptable URL makes the request.
    response = world.request(callback_url="https://hooks.example/hook", key="refused-callback")
    assert response.status_code == 201, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://2130706433/hook", "http://0x7f.1/hook", "http://017700000001/", "http://127.1/"]
)
def test_numeric_ipv4_forms_are_refused_by_the_service(world, url):
    # The API's URL field refuses these shapes already; the service refuses them for every caller.
    with pytest.raises(InvalidInput) as refused:
        promotion_request(
            actor=world.ci,
            source=Source.cli(),
            asset=world.asset,
            version=world.v2,
            stage=world.production,
            justification="go",
            callback_url=url,
        )
    assert [error.field for error in refused.value.errors] == ["callback_url"]
    assert not PromotionRequest.objects.exists()


@pytest.mark.django_db
def test_allow_lists_admit_internal_receivers(world, settings, resolver):
    resolver.names["deploy.internal"] = ["10.20.0.5"]
    assert world.request(callback_url="http://deploy.internal/hook").status_code == 400
    settings.CALLBACK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert world.request(callback_url="http://deploy.internal/hook").status_code == 201
    assert world.request(callback_url="http://10.21.0.5/hook").status_code == 400
    settings.CALLBACK_ALLOWED_NETWORKS = []
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    assert world.request(callback_url="http://127.0.0.1:9/hook").status_code == 201
    assert world.request(callback_url="http://localhost:9/hook").status_code == 201
    refused = world.request(callback_url="http://deploy.internal/hook")
    assert refused.status_code == 400 and "not an allowed callback host" in refused.json()["detail"]


# At delivery -----------------------------------------------------------------------------------------


@pytest.fixture
def receivers():
    made = []

    def make(*statuses, **options):
        made.append(Receiver(*statuses, **options))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def decide(world, url):
    """Request a promotion with callback_url, then reject it (a final state) through the API."""
    response = world.request(callback_url=url)
    assert response.status_code == 201, response.content
    promotion_id = response.json()["id"]
    decided = world.act(world.r1, promotion_id, "reject", comment="no")
    assert decided.status_code == 200, decided.content
    return promotion_id


delivery = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@delivery
def test_the_callback_is_signed_as_docs_ci_md_says(world, settings, receivers, resolver):
    settings.CALLBACK_ALLOWED_HOSTS = ["localhost"]
    receiver = receivers()
    promotion_id = decide(world, f"http://localhost:{receiver.port}/hook?run=7")
    assert wait_for_background_callbacks(timeout=15)
    [(method, path, headers, body)] = receiver.requests
    headers = {name.lower(): value for name, value in headers.items()}
    assert (method, path) == ("POST", "/hook?run=7")
    assert headers["host"] == f"localhost:{receiver.port}"  # the name, though 127.0.0.1 was dialled
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "model-registry-callback/1"
    revision = PromotionRequest.objects.get(pk=promotion_id).revision
    assert headers["webhook-id"] == f"msg_{promotion_id}_{revision}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    # The secret as documented: DJANGO_WEBHOOK_SECRET, else hex HMAC-SHA256(SECRET_KEY, "promotion-callbacks")
    if not os.environ.get("DJANGO_WEBHOOK_SECRET") and not os.environ.get("DJANGO_WEBHOOK_SECRET_FILE"):
        derived = hmac.new(settings.SECRET_KEY.encode(), b"promotion-callbacks", hashlib.sha256).hexdigest()
        assert derived == settings.WEBHOOK_SECRET
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    digest = hmac.new(settings.WEBHOOK_SECRET.encode(), signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert headers["webhook-signature"] == sign(
        settings.WEBHOOK_SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body
    )
    # The verification function printed in docs/ci.md accepts it, and refuses a changed body.
    namespace = {}
    callbacks = (DOCS / "ci.md").read_text().split("## Callbacks", 1)[1]
    exec(re.search(r"```python\n(.*?)```", callbacks, re.S).group(1), namespace)
    assert namespace["verify"](settings.WEBHOOK_SECRET, headers, body)
    assert not namespace["verify"](settings.WEBHOOK_SECRET, headers, body + b" ")
    # The body is the request as the API shows it, with its event type, in json.dumps's default layout.
    shown = world.client(token=world.ci_token).get(f"/api/v1/promotions/{promotion_id}").json()
    assert json.loads(body) == {"type": f"promotion.{shown['status']}", "data": shown}
    assert body == json.dumps(json.loads(body)).encode()


@delivery
def test_the_decision_answers_before_a_slow_receiver(world, settings, receivers):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT = 30
    release = threading.Event()
    slow = receivers(hold=release)
    try:
        started = time.monotonic()
        decide(world, slow.url)
        # The reviewer's answer is back while the receiver still holds the callback unanswered.
        assert not slow.answered.is_set()
        assert time.monotonic() - started < 8
    finally:
        release.set()
    assert wait_for_background_callbacks(timeout=15)
    # The sender is done once it has read the status line; the receiver's thread marks its answer just after.
    assert slow.answered.wait(10) and len(slow.requests) == 1


@delivery
def test_a_redirect_is_not_followed(world, settings, receivers, caplog):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    second = receivers()
    first = receivers(302, location=second.url)
    with caplog.at_level(logging.WARNING, logger="approvals.tasks"):
        promotion_id = decide(world, first.url)
        assert wait_for_background_callbacks(timeout=15)
    assert [method for method, *_ in first.requests] == ["POST"]
    assert second.requests == []
    assert (
        f"callback for promotion {promotion_id} failed: answered 302 (redirects are not followed)"
        in caplog.text
    )


@delivery
def test_dns_rebinding_is_refused_at_delivery(world, settings, receivers, resolver, caplog):
    target = receivers()
    # While the promotion is requested the name is public; from then on it is loopback.
    resolver.names["hook.example"] = [PUBLIC_V4]
    response = world.request(callback_url=f"http://hook.example:{target.port}/hook")
    assert response.status_code == 201, response.content
    resolver.names["hook.example"] = ["127.0.0.1"]
    promotion_id = response.json()["id"]
    with caplog.at_level(logging.WARNING, logger="approvals.tasks"):
        decided = world.act(world.r1, promotion_id, "reject", comment="no")
        assert decided.status_code == 200
        assert wait_for_background_callbacks(timeout=15)
    assert target.requests == []
    assert resolver.calls.count("hook.example") == 2  # at the request, and again at delivery
    assert f"callback for promotion {promotion_id} refused, not sent" in caplog.text


@delivery
def test_an_allow_list_removed_after_the_request_stops_delivery(world, settings, receivers, caplog):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    target = receivers()
    response = world.request(callback_url=target.url)
    assert response.status_code == 201
    settings.CALLBACK_ALLOWED_HOSTS = []
    with caplog.at_level(logging.WARNING, logger="approvals.tasks"):
        promotion_reject(
            actor=world.r1, source=Source.cli(), promotion_id=response.json()["id"], comment="no"
        )
        assert wait_for_background_callbacks(timeout=15)
    assert target.requests == []
    assert "127.0.0.1 is a loopback address" in caplog.text


@delivery
def test_a_rolled_back_decision_sends_nothing(world, settings, receivers, monkeypatch):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    target = receivers()
    response = world.request(callback_url=target.url)
    assert response.status_code == 201

    def broken(**kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr("approvals.services.promotions.audit_record", broken)
    with pytest.raises(RuntimeError):
        promotion_reject(
            actor=world.r1, source=Source.cli(), promotion_id=response.json()["id"], comment="no"
        )
    assert wait_for_background_callbacks(timeout=15)
    assert target.requests == []


# The sender's own bounds ------------------------------------------------------------------------------


class SilentServer:
    """Accepts connections on 127.0.0.1 and answers nothing, or only a byte at a time."""

    def __init__(self, drip: bytes = b""):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self.serve, args=(drip,), daemon=True).start()

    def serve(self, drip):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            with connection:
                for byte in drip:
                    if self.stop.wait(0.2):
                        break
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break
                self.stop.wait(10)

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize(
    ("scheme", "drip"),
    [
        ("http", b""),
        ("http", b"HTTP/1.1 200 OK but very slowly"),
        ("https", b""),
        ("https", b"\x16\x03\x03\x00\x40" + b"a" * 64),  # a TLS record, a byte at a time
    ],
)
def test_a_silent_or_dripping_receiver_fails_within_the_timeout(scheme, drip):
    server = SilentServer(drip)
    try:
        target = netguard.parse_url(f"{scheme}://127.0.0.1:{server.port}/hook", allowed_hosts=["127.0.0.1"])
        started = time.monotonic()
        with pytest.raises(netguard.SendFailed, match="no answer within"):
            netguard.post(target, ["127.0.0.1"], b"{}", {"Content-Type": "application/json"}, timeout=1)
        assert time.monotonic() - started < 2.5
    finally:
        server.close()


def test_a_closed_port_fails_at_once():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    target = netguard.parse_url(f"http://127.0.0.1:{port}/", allowed_hosts=["127.0.0.1"])
    with pytest.raises(netguard.SendFailed, match="could not connect"):
        netguard.post(target, ["127.0.0.1"], b"{}", {}, timeout=2)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for the name "localhost" only (no IP address in it), and its key."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_connects_to_the_checked_address_and_verifies_the_name(tmp_path, receivers):
    cert, key = _self_signed(tmp_path)
    receiver = receivers()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    names = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)
    receiver.server.socket = server_context.wrap_socket(receiver.server.socket, server_side=True)
    tls = ssl.create_default_context(cafile=cert)  # the system's authorities by default
    target = netguard.parse_url(f"https://localhost:{receiver.port}/hook", allowed_hosts=["localhost"])
    assert netguard.post(target, ["127.0.0.1"], b"{}", {"Content-Type": "x"}, timeout=5, tls=tls) == 204
    assert names == ["localhost"]  # SNI carries the name, though the address was dialled
    [(method, _, headers, body)] = receiver.requests
    assert (method, headers["Host"], body) == ("POST", f"localhost:{receiver.port}", b"{}")
    # A certificate that does not name the host fails, as a delivery failure.
    other = netguard.parse_url(f"https://127.0.0.1:{receiver.port}/hook", allowed_hosts=["127.0.0.1"])
    with pytest.raises(netguard.SendFailed, match="certificate"):
        netguard.post(other, ["127.0.0.1"], b"{}", {}, timeout=5, tls=tls)


@pytest.mark.django_db
def test_failures_are_retried_and_refusals_are_not(world, settings, receivers):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1", "gone.example"]
    promotion = promotion_request(
        actor=world.ci,
        source=Source.cli(),
        asset=world.asset,
        version=world.v2,
        stage=world.production,
        justification="go",
        callback_url="http://127.0.0.1:9/",
    )
    promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk, comment="no")
    message = OutboxMessage.objects.get()  # written in the decision's transaction, not sent yet (no commit)

    def outcome(url):
        OutboxMessage.objects.filter(pk=message.pk).update(
            url=url, status="pending", attempts=0, next_attempt_at=timezone.now()
        )
        now = timezone.now()
        status = deliver_message(message.pk, now=now)  # as a worker runs it
        if status == "pending":
            wait = OutboxMessage.objects.get(pk=message.pk).next_attempt_at - now
            assert dt.timedelta(seconds=48) <= wait <= dt.timedelta(seconds=72)  # 1 min ± 20 %
            return "retried after about 60 s"
        return status

    ok = receivers()
    assert outcome(ok.url) == "delivered"
    assert len(ok.requests) == 1
    assert outcome(receivers(302, location="http://127.0.0.1:9/").url) == "retried after about 60 s"
    assert outcome(receivers(503).url) == "retried after about 60 s"
    assert outcome("http://gone.example/hook") == "retried after about 60 s"  # did not resolve: may later
    settings.CALLBACK_ALLOWED_HOSTS = []
    quiet = receivers()
    assert outcome(quiet.url) == "failed"  # refused (loopback, no longer allowed): never retried
    assert quiet.requests == []
    assert OutboxMessage.objects.get(pk=message.pk).last_error.startswith("refused: 127.0.0.1 is a loopback")
