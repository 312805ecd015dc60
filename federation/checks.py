"""The checks of ``vbg-node admin check`` that need the network (``node.checks`` runs them):

- the clock against peers' ``Date`` headers: signatures carry a Date that the other side
  refuses outside its window (±1 h at Mastodon, less elsewhere), so a drifting clock
  silently stops federation;
- our own TLS certificate, as a visitor gets it from the public address: days left.

Peers are asked through the guarded session of ``federation.fetcher`` (address checks,
deadline, no proxies), a plain GET of their NodeInfo discovery document.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp

from federation.errors import FetchError
from federation.fetcher import AddressPolicy, Limits, check_url, guarded_session
from node.checks import ERROR, OK, WARNING, Context, Finding, check, in_production

SKEW_WARNING = 30.0  # seconds
SKEW_ERROR = 300.0
CERT_WARNING_DAYS = 21
CERT_ERROR_DAYS = 7
PEERS_ASKED = 3
RECENT_PEERS = """
SELECT domain FROM instances
 WHERE last_success_at IS NOT NULL AND unreachable_since IS NULL
 ORDER BY last_success_at DESC LIMIT $1
"""
TIMEOUT = 10.0


async def peer_skew(session: aiohttp.ClientSession, url: str, policy: AddressPolicy) -> float:
    """Seconds our clock is ahead of the peer's (negative: behind), from its ``Date``."""
    check_url(url, policy)
    before = time.time()
    async with session.get(url, allow_redirects=False) as response:
        date = response.headers.get("Date")
    after = time.time()
    if not date:
        raise FetchError("no Date header")
    try:
        theirs = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError) as exc:
        raise FetchError("unreadable Date header") from exc
    # The Date is to the second: compare with the middle of our request.
    return (before + after) / 2 - theirs


@check
async def clock(ctx: Context) -> list[Finding]:
    domains: list[str] = list(ctx.peers)
    if not domains and ctx.conn is not None:
        domains = [r["domain"] for r in await ctx.conn.fetch(RECENT_PEERS, PEERS_ASKED)]
    if not domains:
        return [
            Finding(
                OK,
                "Horloge : aucune instance partenaire connue à qui comparer l'heure "
                "(vbg-node admin check --peer DOMAINE pour en désigner une).",
            )
        ]
    policy = AddressPolicy.for_settings(ctx.settings)
    findings: list[Finding] = []
    async with guarded_session(policy, Limits(deadline=TIMEOUT)) as session:
        for peer in domains:
            origin = peer.rstrip("/") if "://" in peer else f"https://{peer}"
            domain = urlsplit(origin).netloc
            url = origin + "/.well-known/nodeinfo"
            try:
                skew = await peer_skew(session, url, policy)
            except (FetchError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                findings.append(Finding(WARNING, f"Horloge : {domain} n'a pas pu être consulté ({exc})."))
                continue
            findings.append(_skew_finding(domain, skew))
    return findings


def _skew_finding(domain: str, skew: float) -> Finding:
    way = "en avance" if skew > 0 else "en retard"
    text = f"Horloge : {abs(skew):.0f} s {way} sur {domain}"
    if abs(skew) >= SKEW_ERROR:
        return Finding(ERROR, text + " : les signatures seront refusées. Activez la synchronisation "
                       "(timedatectl set-ntp true).")  # fmt: skip
    if abs(skew) >= SKEW_WARNING:
        return Finding(WARNING, text + " : vérifiez la synchronisation de l'heure (timedatectl).")
    return Finding(OK, text + ".")


async def certificate_days_left(host: str, port: int = 443) -> float:
    """Days before the certificate that ``host`` presents expires (verified against the
    system's authorities, or ``SSL_CERT_FILE``)."""
    context = ssl.create_default_context()
    async with asyncio.timeout(TIMEOUT):
        _reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        cert = writer.get_extra_info("peercert")
    finally:
        writer.close()
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    return (not_after - datetime.now(UTC)).total_seconds() / 86400


@check
async def certificate(ctx: Context) -> list[Finding]:
    parts = urlsplit(ctx.settings.base_url)
    if parts.scheme != "https":
        if in_production(ctx.settings):
            return [Finding(ERROR, "Certificat TLS : l'adresse publique n'est pas en https.")]
        return []
    host = parts.hostname or ""
    try:
        days = await certificate_days_left(host, parts.port or 443)
    except ssl.SSLCertVerificationError as exc:
        return [Finding(ERROR, f"Certificat TLS de {host} refusé : {exc.verify_message}.")]
    except (OSError, TimeoutError) as exc:
        return [Finding(WARNING, f"Certificat TLS : {host} n'a pas répondu en https ({type(exc).__name__}).")]
    if days < CERT_ERROR_DAYS:
        level = ERROR
    elif days < CERT_WARNING_DAYS:
        level = WARNING
    else:
        level = OK
    advice = (
        "" if level == OK else " Vérifiez le renouvellement automatique (systemctl status certbot.timer)."
    )
    return [Finding(level, f"Certificat TLS de {host} : expire dans {days:.0f} jours.{advice}")]
