"""A small circulation world for the notice and privacy tests, written straight into the tables."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import uuid as uuid_module
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

from library.accounts.tables import Patron
from library.branches.tables import Branch
from library.catalog.tables import Item, Record
from library.loans.service import end_of_day
from library.loans.tables import Hold, Loan

NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)  # Saturday 10:00 in Jiaxing
TODAY = dt.date(2026, 11, 28)
ZONE = "Asia/Shanghai"


@dataclass
class World:
    branch: int
    records: dict[str, int] = field(default_factory=dict)
    patrons: dict[str, int] = field(default_factory=dict)
    _barcodes: int = 0

    async def item(self, title: str = "猜猜我有多爱你") -> int:
        if title not in self.records:
            [row] = await Record.insert(Record(title=title)).returning(Record.id)
            self.records[title] = row["id"]
        self._barcodes += 1
        [row] = await Item.insert(Item(record=self.records[title], barcode=f"T{self._barcodes:06d}",
                                       home_branch=self.branch, current_branch=self.branch,
                                       status="on_loan")).returning(Item.id)
        return row["id"]

    async def patron(self, key: str, name: str, email: str, language: str = "zh_CN",
                     category: str = "adult") -> int:
        [row] = await Patron.insert(Patron(card_number=f"ZX{len(self.patrons) + 1:08d}", name=name, email=email,
                                           language=language, category=category, home_branch=self.branch,
                                           expires_on=TODAY + dt.timedelta(days=365), pin_hash="x")).returning(
            Patron.id)
        self.patrons[key] = row["id"]
        return row["id"]

    async def loan(self, patron: str, due_on: dt.date, returned_at: dt.datetime | None = None,
                   title: str = "猜猜我有多爱你") -> str:
        loan_uuid = str(uuid_module.uuid4())
        await Loan.insert(Loan(uuid=loan_uuid, item=await self.item(title), patron=self.patrons[patron],
                               branch=self.branch, checked_out_at=NOW - dt.timedelta(days=30), due_on=due_on,
                               due_at=end_of_day(due_on, ZONE), returned_at=returned_at))
        return loan_uuid

    async def ready_hold(self, patron: str, expires_on: dt.date, ready_at: dt.datetime,
                         title: str = "大卫，不可以") -> str:
        item = await self.item(title)
        hold_uuid = str(uuid_module.uuid4())
        await Hold.insert(Hold(uuid=hold_uuid, record=self.records[title], patron=self.patrons[patron],
                               pickup_branch=self.branch, status="ready", placed_at=ready_at - dt.timedelta(days=3),
                               item=item, ready_at=ready_at, expires_on=expires_on))
        return hold_uuid


async def make_world() -> World:
    [row] = await Branch.insert(Branch(code="ZX", name_zh="振兴社区智慧书房", name_en="Zhenxing Smart Study Room",
                                       time_zone=ZONE)).returning(Branch.id)
    world = World(branch=row["id"])
    await world.patron("wang", "王芳", "wangfang@example.org")
    await world.patron("emma", "Emma Liu", "emma@example.org", language="en")
    await world.patron("silent", "赵无邮", "")
    return world


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping what arrives; it refuses recipients in `refuse`. For each
    message, `sessions` says whether it came over TLS and from a signed-in client."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.sessions: list[dict[str, bool]] = []
        self.refuse = set(refuse)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        self.sessions.append({"tls": session.ssl is not None, "signed_in": bool(session.authenticated)})
        return "250 Message accepted for delivery"


def _password_check(user: str, password: str):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(), password.encode())
        return AuthResult(success=ok, handled=False)

    return check


@contextlib.contextmanager
def smtp_server(port: int, refuse: tuple[str, ...] = (), login: tuple[str, str] | None = None,
                tls: tuple[Path, Path] | None = None):
    """A real SMTP server on localhost (its own thread and event loop); with `login`, it
    requires AUTH (over plain text: this is a test). With `tls` (certificate and key files)
    it offers STARTTLS and requires it before anything else, AUTH included."""
    inbox = Inbox(refuse)
    auth = {"authenticator": _password_check(*login), "auth_required": True,
            "auth_require_tls": tls is not None} if login else {}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        auth.update(tls_context=context, require_starttls=True)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **auth)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for `host` (an IP address), signed by itself, and its key: two PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "library test mail server")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = folder / "mail-server.pem", folder / "mail-server.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate_file, key_file


async def until(condition, timeout: float = 10.0) -> None:
    """Wait for an event (a message arriving), never for a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)
