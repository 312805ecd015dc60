"""Settings, read once from the environment (docs/architecture.md §6).

Every setting is documented in README.md; ``tests/test_foundation.py`` checks that
the table and this module agree. A missing or malformed required value fails
loudly at start-up rather than at the first request.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


class SettingsError(Exception):
    """A setting is missing or malformed."""


class Secret:
    """A string that does not show itself in logs or reprs."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


DEFAULT_WEB_WORKERS = 2  # about one web process per core of a small server
DEFAULT_UPLOAD_MAX_MB = 25
REMOTE_DOCUMENTS = ("fetch", "open", "link")  # the first is the default

# name -> one-line description; README's configuration table must list each one.
DOCUMENTED: dict[str, str] = {
    "VBG_BASE_URL": "Public URL of the node; its host is the node's domain.",
    "DATABASE_URL": "PostgreSQL URL; unset: an embedded PostgreSQL under the data folder.",
    "VBG_DATA_DIR": "Data folder (embedded database, uploads, generated secret).",
    "VBG_SECRET_KEY": "Node secret (sessions, CSRF, key encryption); generated into the data folder if unset.",
    "VBG_DEV_ALLOW_PRIVATE_PEERS": "1 lets federation talk to http and loopback/private addresses (tests, dev).",
    "VBG_NODE_NAME": "Name of the node shown in pages and NodeInfo.",
    "VBG_HOST": "Address the web server listens on.",
    "VBG_PORT": "Port the web server listens on.",
    "VBG_TRUSTED_PROXIES": "Comma-separated proxy addresses whose X-Forwarded-For is trusted.",
    "VBG_WORKERS_IN_SERVE": "0 to run no federation workers inside `serve` (run `vbg-node worker`).",
    "VBG_WEB_WORKERS": "Number of web processes `serve` starts (default 2; about one per CPU core).",
    "VBG_LOG_LEVEL": "Logging level (DEBUG, INFO, WARNING…).",
    "VBG_MESSAGES_KEY": "Key(s) encrypting private messages at rest; generated into the data folder if unset.",
    "VBG_LOG_FORMAT": "text (default) or json: one JSON object a line, never any message content.",
    "VBG_REPLICA_DATABASE_URL": "PostgreSQL URL of a streaming read replica for pages and search (unset: none).",
    "VBG_S3_BUCKET": "Bucket of an S3-compatible object store for uploaded files (unset: the data folder).",
    "VBG_S3_ENDPOINT": "URL of the S3-compatible service (unset: AWS).",
    "VBG_S3_REGION": "Region of the object store (default us-east-1).",
    "VBG_S3_ACCESS_KEY": "Access key of the object store.",
    "VBG_S3_SECRET_KEY": "Secret key of the object store.",
    "VBG_S3_PREFIX": "Prefix of the node's keys in the bucket (default none).",
    "VBG_METRICS_ADDRESS": "host:port of the Prometheus exporter (unset: none); keep it off the public network.",
    "VBG_UPLOAD_MAX_MB": "Largest file a member may upload, in megabytes (default 25).",
    "VBG_REMOTE_DOCUMENTS": "Files of documents from other servers: fetch (now), open (on first open) or link (never).",
    "VBG_SMTP_URL": "SMTP server for outgoing e-mail (smtp://user:pass@host:587?starttls=1, smtps://…); unset: no e-mail.",
    "VBG_CONTACT_EMAIL": "Address to reach the node's managers: footer, about page, refusal and suspension messages.",
    "VBG_TIMEZONE": "Default time zone of dates shown (IANA name, e.g. Africa/Lubumbashi); members may choose theirs.",
    "VBG_REQUIRE_2FA": "1: moderators and admins must use two-factor authentication (TOTP) to use the node.",
    "VBG_MAIL_FROM": "Sender address of the node's e-mails (default: ne-pas-repondre@ the node's host).",
}
LOG_FORMATS = ("text", "json")


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"expected a boolean, got {value!r}")


def _choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    if value is None or value == "":
        return choices[0]
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from exc


def _address(name: str, value: str) -> str:
    """``host:port`` (or empty)."""
    if not value:
        return ""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be host:port, got {value!r}")
    return value


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how the mail worker sends (``VBG_SMTP_URL``).

    ``smtp://[user[:password]@]host[:port][?starttls=1][&timeout=S]`` (port 25; with
    ``starttls=1`` the session is upgraded to TLS and fails if the server cannot) or
    ``smtps://…`` (TLS from the first byte, port 465). User and password are
    percent-decoded; certificates are always verified."""

    host: str
    port: int
    tls: str  # 'none', 'starttls' or 'implicit'
    username: str | None = None
    password: Secret | None = None
    timeout: float = 30.0


def parse_smtp_url(url: str) -> SmtpConfig:
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise SettingsError("VBG_SMTP_URL must look like smtp://host:587?starttls=1 or smtps://host:465")
    if parts.path not in {"", "/"} or parts.fragment:
        raise SettingsError("VBG_SMTP_URL takes no path")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls", "timeout"}
    if unknown:
        raise SettingsError(f"VBG_SMTP_URL: unknown parameter {sorted(unknown)[0]!r}")
    try:
        starttls = _bool(query.get("starttls", [""])[-1])
    except SettingsError as exc:
        raise SettingsError(f"VBG_SMTP_URL: starttls: {exc}") from exc
    if parts.scheme == "smtps" and starttls:
        raise SettingsError("VBG_SMTP_URL: smtps:// is TLS already, starttls=1 makes no sense")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        timeout = float(query.get("timeout", ["30"])[-1])
    except ValueError as exc:
        raise SettingsError(f"VBG_SMTP_URL: {exc}") from exc
    if not 0 < timeout <= 600:
        raise SettingsError("VBG_SMTP_URL: timeout must be from 0 to 600 seconds")
    tls = "implicit" if parts.scheme == "smtps" else ("starttls" if starttls else "none")
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=Secret(unquote(parts.password)) if parts.password else None,
        timeout=timeout,
    )


def _mail_from(value: str | None, base_url: str) -> str:
    from email.headerregistry import Address

    address = value or f"ne-pas-repondre@{urlsplit(base_url).hostname}"
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError) as exc:
        raise SettingsError(f"VBG_MAIL_FROM must be an e-mail address, got {address!r}") from exc
    if "@" not in address:
        raise SettingsError(f"VBG_MAIL_FROM must be an e-mail address, got {address!r}")
    return address


@dataclass(frozen=True)
class Settings:
    base_url: str
    data_dir: Path
    secret_key: Secret
    database_url: str | None = None
    dev_allow_private_peers: bool = False
    node_name: str = "Réseau VBG"
    host: str = "127.0.0.1"
    port: int = 8000
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)
    workers_in_serve: bool = True
    web_workers: int = DEFAULT_WEB_WORKERS
    log_level: str = "INFO"
    # The keyring text of node.encryption (None: VBG_DATA_DIR/messages_key, read when needed)
    messages_key: Secret | None = None
    messages_key_from_env: bool = False
    log_format: str = "text"
    metrics_address: str = ""
    replica_database_url: str | None = None
    s3_bucket: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: Secret | None = None
    s3_prefix: str = ""
    upload_max_mb: int = DEFAULT_UPLOAD_MAX_MB
    remote_documents: str = "fetch"
    smtp: SmtpConfig | None = None  # None: the node sends no e-mail
    mail_from: str = "ne-pas-repondre@localhost"
    contact_email: str = ""  # empty: no contact address shown
    timezone: str = "UTC"
    require_2fa: bool = False

    @property
    def upload_max_bytes(self) -> int:
        return self.upload_max_mb * 1024 * 1024

    @property
    def domain(self) -> str:
        """The node's domain: host (and non-default port) of the base URL."""
        return urlsplit(self.base_url).netloc.lower()

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def url(self, path: str) -> str:
        return self.base_url + path


def _contact(value: str) -> str:
    value = value.strip()
    if value and not re.fullmatch(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+", value):
        raise SettingsError(f"VBG_CONTACT_EMAIL must be an e-mail address, got {value!r}")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"VBG_TIMEZONE must be an IANA time zone such as Africa/Kinshasa, got {value!r}"
        ) from exc
    return value


def _secret(data_dir: Path, env: dict[str, str]) -> Secret:
    value = env.get("VBG_SECRET_KEY")
    if value:
        if len(value) < 32:
            raise SettingsError("VBG_SECRET_KEY must be at least 32 characters")
        return Secret(value)
    return Secret(create_once(data_dir / "secret_key", secrets.token_urlsafe(48)).strip())


def create_once(path: Path, text: str) -> str:
    """The text of ``path``; on first run written as ``text`` (mode 0600), whole.

    Several processes may start together on a new data folder (serve's web processes,
    workers): each writes its candidate to a temporary file and links it into place,
    which succeeds for exactly one of them, so no process ever reads a file another is
    still writing, and every process ends up with the same secret.
    """
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # another process may have linked its own first: that one is the secret
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text()


def _messages_key(data_dir: Path, env: dict[str, str]) -> Secret:
    """The private messages' keyring (checked now: a bad key stops the node at start-up)."""
    from node import encryption

    text = env.get("VBG_MESSAGES_KEY") or encryption.load_or_create_file(data_dir)
    try:
        encryption.Keyring.parse(text)
    except encryption.KeyringError as exc:
        raise SettingsError(f"VBG_MESSAGES_KEY: {exc}") from exc
    return Secret(text)


def load(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    port = _int("VBG_PORT", env.get("VBG_PORT"), 8000)
    web_workers = _int("VBG_WEB_WORKERS", env.get("VBG_WEB_WORKERS"), DEFAULT_WEB_WORKERS)
    if not 1 <= web_workers <= 64:
        raise SettingsError(f"VBG_WEB_WORKERS must be from 1 to 64, got {web_workers}")
    upload_max_mb = _int("VBG_UPLOAD_MAX_MB", env.get("VBG_UPLOAD_MAX_MB"), DEFAULT_UPLOAD_MAX_MB)
    if not 1 <= upload_max_mb <= 2048:
        raise SettingsError(f"VBG_UPLOAD_MAX_MB must be from 1 to 2048, got {upload_max_mb}")
    host = env.get("VBG_HOST") or "127.0.0.1"
    base_url = (env.get("VBG_BASE_URL") or f"http://{host}:{port}").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise SettingsError(f"VBG_BASE_URL must be an http(s) URL without a path, got {base_url!r}")
    data_dir = Path(env.get("VBG_DATA_DIR") or "data").resolve()
    log_format = (env.get("VBG_LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"VBG_LOG_FORMAT must be text or json, got {log_format!r}")
    metrics_address = _address("VBG_METRICS_ADDRESS", env.get("VBG_METRICS_ADDRESS") or "")
    proxies = frozenset(p.strip() for p in (env.get("VBG_TRUSTED_PROXIES") or "").split(",") if p.strip())
    try:
        return Settings(
            base_url=base_url,
            data_dir=data_dir,
            secret_key=_secret(data_dir, env),
            database_url=env.get("DATABASE_URL") or None,
            dev_allow_private_peers=_bool(env.get("VBG_DEV_ALLOW_PRIVATE_PEERS")),
            node_name=env.get("VBG_NODE_NAME") or "Réseau VBG",
            host=host,
            port=port,
            trusted_proxies=proxies,
            workers_in_serve=_bool(env.get("VBG_WORKERS_IN_SERVE"), default=True),
            web_workers=web_workers,
            log_level=(env.get("VBG_LOG_LEVEL") or "INFO").upper(),
            messages_key=_messages_key(data_dir, env),
            messages_key_from_env=bool(env.get("VBG_MESSAGES_KEY")),
            log_format=log_format,
            metrics_address=metrics_address,
            replica_database_url=env.get("VBG_REPLICA_DATABASE_URL") or None,
            s3_bucket=env.get("VBG_S3_BUCKET") or "",
            s3_endpoint=env.get("VBG_S3_ENDPOINT") or "",
            s3_region=env.get("VBG_S3_REGION") or "us-east-1",
            s3_access_key=env.get("VBG_S3_ACCESS_KEY") or "",
            s3_secret_key=Secret(env["VBG_S3_SECRET_KEY"]) if env.get("VBG_S3_SECRET_KEY") else None,
            s3_prefix=env.get("VBG_S3_PREFIX") or "",
            upload_max_mb=upload_max_mb,
            remote_documents=_choice(
                "VBG_REMOTE_DOCUMENTS", env.get("VBG_REMOTE_DOCUMENTS"), REMOTE_DOCUMENTS
            ),
            smtp=parse_smtp_url(env["VBG_SMTP_URL"]) if env.get("VBG_SMTP_URL") else None,
            mail_from=_mail_from(env.get("VBG_MAIL_FROM"), base_url),
            contact_email=_contact(env.get("VBG_CONTACT_EMAIL") or ""),
            timezone=_timezone(env.get("VBG_TIMEZONE") or "UTC"),
            require_2fa=_bool(env.get("VBG_REQUIRE_2FA")),
        )
    except SettingsError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc
