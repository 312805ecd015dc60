"""A real SMTP server on loopback (aiosmtpd) that records what it received, for the
mail tests: the network seam, nothing of the node's own code is faked."""

from __future__ import annotations

import asyncio
import email
import email.policy
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import eventually


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Recorder:
    """aiosmtpd handler: records each message; ``refuse`` maps an address to the SMTP
    reply its RCPT gets (``"550 …"`` permanent, ``"451 …"`` transient)."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    port: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content.replace(b"\r\n", b"\n")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    async def wait_for(self, predicate: Callable[[Recorder], bool], within: float = 10.0) -> None:
        async def received() -> bool:
            return predicate(self)

        await eventually(received, "the SMTP server receives what was expected", within=within)


@asynccontextmanager
async def smtp_server(credentials: tuple[str, str] | None = None) -> AsyncIterator[Recorder]:
    """An SMTP server on 127.0.0.1 (a free port: ``recorder.port``), in this event loop.
    With ``credentials`` it requires AUTH (over plain text: loopback only)."""
    recorder = Recorder()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == credentials
        return AuthResult(success=ok)

    def factory() -> SMTPServer:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # aiosmtpd warns that AUTH without TLS is unsafe: loopback test
            return SMTPServer(
                recorder,
                hostname="smtp.test",
                authenticator=authenticate if credentials else None,
                auth_required=credentials is not None,
                auth_require_tls=False,
            )

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()
