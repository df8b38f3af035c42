"""All configuration, read once from environment variables.

Every setting has a default that works on a laptop; a value that is present but
malformed stops start-up with a message naming the variable, because a library
branch silently running with the wrong database or time zone is worse than one
that refuses to start.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent

LANGUAGES = ("zh_CN", "en")
LOG_FORMATS = ("text", "json")
NODE_ROLES = ("branch", "central")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    secret_key: str
    host: str
    port: int
    default_language: str
    node_role: str
    branch_code: str | None
    time_zone: str
    max_body_bytes: int
    session_minutes: int
    signin_failures_per_minute: int
    secure_cookies: bool
    forwarded_allow_ips: str | None
    metadata_providers: str
    metadata_timeout: int
    debug: bool
    # Notices (library.notices): no SMTP host means nothing is sent; notices wait queued.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Jiaxing Library <library@localhost>"
    due_soon_days: int = 3
    notice_interval_seconds: int = 60
    loan_history_days: int = 30
    activity_history_days: int = 400
    # Branch sync (library.sync): a branch node with a central URL and a credential syncs.
    central_url: str | None = None
    sync_credential: str | None = None
    sync_interval_seconds: int = 300
    sync_timeout_seconds: int = 30
    sync_retry_ms: int = 500
    # The central node's limits on what branches send (library.sync.rules, controllers).
    sync_clock_skew_seconds: int = 300
    sync_requests_per_minute: int = 600
    sync_verifier_days: int = 90
    # Check-in at the door (library.activities.rules.CheckInWindow): minutes before a session's
    # start and after its end that a reader's card is taken.
    checkin_opens_minutes_before: int = 60
    checkin_closes_minutes_after: int = 30
    # Which catalogued record an imported (or synced) one is (library.catalog.matching).
    catalog_match_points: str = "control_number,isbn+title"
    # The SIP2 server for self-check machines (library.selfcheck): `library sip2`, or beside
    # the web service under `library serve` when enabled.
    sip2_enabled: bool = False
    sip2_host: str = "127.0.0.1"
    sip2_port: int = 6001
    sip2_idle_seconds: int = 600
    sip2_message_seconds: int = 30
    sip2_max_connections: int = 200
    sip2_tls_cert: str | None = None
    sip2_tls_key: str | None = None
    # The self-check page (/selfcheck): a reader's session there ends after this much inactivity.
    selfcheck_idle_seconds: int = 60
    # Backups (library.ops.backup): where `library backup` writes, and how many it keeps.
    backup_dir: Path | None = None
    backup_keep: int = 7
    # Operations (library.web.metrics, library.web.logs): no token, no /metrics (404); the
    # log lines as text, or one JSON object a line.
    metrics_token: str | None = None
    log_format: str = "text"

    @property
    def covers_dir(self) -> Path:
        return self.data_dir / "covers"

    @property
    def engine(self) -> str:
        return "postgres" if self.database_url.startswith(("postgres://", "postgresql://")) else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        """The file behind a ``sqlite:///`` URL; a relative path is relative to the folder the
        command was started in (as SQLite itself opens it)."""
        return Path(self.database_url[len("sqlite:///") :]).absolute()


def _env(environ: dict[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _int(environ: dict[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _env(environ, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool(environ: dict[str, str], name: str, default: bool) -> bool:
    raw = _env(environ, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(environ: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = _env(environ, name)
    if raw is None:
        return default
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _database_url(environ: dict[str, str], data_dir: Path) -> str:
    raw = _env(environ, "LIBRARY_DATABASE_URL")
    if raw is None:
        return f"sqlite:///{data_dir / 'library.sqlite3'}"
    if raw.startswith("sqlite:///"):
        if len(raw) == len("sqlite:///"):
            raise SettingsError("LIBRARY_DATABASE_URL names no SQLite file (expected sqlite:///path/to/file)")
        return raw
    if raw.startswith(("postgres://", "postgresql://")):
        parsed = urlparse(raw)
        if not parsed.hostname and not parsed.path.strip("/"):
            raise SettingsError("LIBRARY_DATABASE_URL has no host or database name")
        if not parsed.path.strip("/"):
            raise SettingsError("LIBRARY_DATABASE_URL names no database (expected postgresql://host:port/name)")
        try:
            parsed.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise SettingsError("LIBRARY_DATABASE_URL has a malformed port") from None
        return raw
    raise SettingsError(
        "LIBRARY_DATABASE_URL must start with sqlite:/// or postgresql://, got " + repr(raw.split(":", 1)[0] + ":...")
    )


def _secret_key(environ: dict[str, str], data_dir: Path) -> str:
    """The key that signs sessions and CSRF tokens.

    Without LIBRARY_SECRET_KEY a random key is made once and kept in the data
    folder, so a restart does not sign everybody out and no two installs share one.
    """
    raw = _env(environ, "LIBRARY_SECRET_KEY")
    if raw is not None:
        if len(raw) < 32:
            raise SettingsError("LIBRARY_SECRET_KEY must be at least 32 characters long")
        return raw
    key_file = data_dir / "secret.key"
    if key_file.exists():
        key = key_file.read_text().strip()
        if len(key) >= 32:
            return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


METADATA_PROVIDERS = ("local", "goob", "openl", "wiki")


def _metadata_providers(environ: dict[str, str]) -> str:
    raw = _env(environ, "LIBRARY_METADATA_PROVIDERS")
    if raw is None:
        return "local,openl,goob"
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in METADATA_PROVIDERS]
    if unknown:
        raise SettingsError(f"LIBRARY_METADATA_PROVIDERS names unknown providers: {', '.join(unknown)} "
                            f"(known: {', '.join(METADATA_PROVIDERS)})")
    return ",".join(names)


def _mail_from(environ: dict[str, str]) -> str:
    from email.errors import HeaderParseError
    from email.headerregistry import Address
    from email.utils import parseaddr

    raw = _env(environ, "LIBRARY_MAIL_FROM")
    if raw is None:
        return "Jiaxing Library <library@localhost>"
    _, address = parseaddr(raw)
    try:
        ok = "@" in address and bool(Address(addr_spec=address).domain)
    except (HeaderParseError, ValueError, IndexError):
        ok = False
    if not ok:
        raise SettingsError(f"LIBRARY_MAIL_FROM must be an e-mail address, optionally with a name "
                            f"(Name <library@example.org>), got {raw!r}")
    return raw


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir_raw = _env(env, "LIBRARY_DATA_DIR")
    # Unset: the project's own data folder (what `make run` uses). A relative path is taken from
    # the folder the command is started in, as every command-line tool takes one.
    data_dir = Path(data_dir_raw).absolute() if data_dir_raw else PROJECT_ROOT / "data"
    if data_dir.exists() and not data_dir.is_dir():
        raise SettingsError(f"LIBRARY_DATA_DIR is not a folder: {data_dir}")

    time_zone = _env(env, "LIBRARY_TIME_ZONE") or "Asia/Shanghai"
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"LIBRARY_TIME_ZONE is not a known time zone: {time_zone!r}") from None

    node_role = _choice(env, "LIBRARY_NODE_ROLE", "branch", NODE_ROLES)
    return Settings(
        database_url=_database_url(env, data_dir),
        data_dir=data_dir,
        secret_key=_secret_key(env, data_dir),
        host=_env(env, "LIBRARY_HOST") or "127.0.0.1",
        port=_int(env, "LIBRARY_PORT", 8000, 1, 65535),
        default_language=_choice(env, "LIBRARY_DEFAULT_LANGUAGE", "zh_CN", LANGUAGES),
        node_role=node_role,
        branch_code=_env(env, "LIBRARY_BRANCH_CODE"),
        time_zone=time_zone,
        max_body_bytes=_int(env, "LIBRARY_MAX_BODY_BYTES", 1_048_576, 1024, 1_073_741_824),
        session_minutes=_int(env, "LIBRARY_SESSION_MINUTES", 480, 1, 60 * 24 * 30),
        signin_failures_per_minute=_int(env, "LIBRARY_SIGNIN_FAILURES_PER_MINUTE", 5, 1, 1000),
        secure_cookies=_bool(env, "LIBRARY_SECURE_COOKIES", False),
        forwarded_allow_ips=_env(env, "LIBRARY_FORWARDED_ALLOW_IPS"),
        metadata_providers=_metadata_providers(env),
        metadata_timeout=_int(env, "LIBRARY_METADATA_TIMEOUT", 4, 1, 60),
        debug=_bool(env, "LIBRARY_DEBUG", False),
        **_notice_settings(env),
        **_sync_settings(env, node_role),
        checkin_opens_minutes_before=_int(env, "LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE", 60, 0, 24 * 60),
        checkin_closes_minutes_after=_int(env, "LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER", 30, 0, 24 * 60),
        # Checked where its words are known, at start-up (library.catalog.matching.checked_setting).
        catalog_match_points=(_env(env, "LIBRARY_CATALOG_MATCH_POINTS") or "control_number,isbn+title").strip(),
        **_sip2_settings(env),
        backup_dir=Path(_env(env, "LIBRARY_BACKUP_DIR") or data_dir / "backups").absolute(),
        backup_keep=_int(env, "LIBRARY_BACKUP_KEEP", 7, 1, 10000),
        metrics_token=_metrics_token(env),
        log_format=_choice(env, "LIBRARY_LOG_FORMAT", "text", LOG_FORMATS),
    )


def _metrics_token(env: dict[str, str]) -> str | None:
    """The bearer token Prometheus sends for /metrics: long, because the figures say how busy the
    library is and when its sync last worked, and the endpoint may be reachable from the street."""
    raw = _env(env, "LIBRARY_METRICS_TOKEN")
    if raw is not None and (len(raw) < 32 or not raw.isascii() or any(c.isspace() for c in raw)):
        raise SettingsError("LIBRARY_METRICS_TOKEN must be at least 32 characters, ASCII, without spaces "
                            "(for example the output of `openssl rand -hex 24`)")
    return raw


def _sip2_settings(env: dict[str, str]) -> dict:
    cert, key = _env(env, "LIBRARY_SIP2_TLS_CERT"), _env(env, "LIBRARY_SIP2_TLS_KEY")
    if (cert is None) != (key is None):
        raise SettingsError("LIBRARY_SIP2_TLS_CERT and LIBRARY_SIP2_TLS_KEY go together: set both or neither")
    for name, value in (("LIBRARY_SIP2_TLS_CERT", cert), ("LIBRARY_SIP2_TLS_KEY", key)):
        if value is not None and not Path(value).is_file():
            raise SettingsError(f"{name} names no readable file: {value}")
    return {
        "sip2_enabled": _bool(env, "LIBRARY_SIP2_ENABLED", False),
        "sip2_host": _env(env, "LIBRARY_SIP2_HOST") or _env(env, "LIBRARY_HOST") or "127.0.0.1",
        "sip2_port": _int(env, "LIBRARY_SIP2_PORT", 6001, 1, 65535),
        "sip2_idle_seconds": _int(env, "LIBRARY_SIP2_IDLE_SECONDS", 600, 1, 86400),
        "sip2_message_seconds": _int(env, "LIBRARY_SIP2_MESSAGE_SECONDS", 30, 1, 3600),
        "sip2_max_connections": _int(env, "LIBRARY_SIP2_MAX_CONNECTIONS", 200, 1, 10000),
        "sip2_tls_cert": cert,
        "sip2_tls_key": key,
        "selfcheck_idle_seconds": _int(env, "LIBRARY_SELFCHECK_IDLE_SECONDS", 60, 5, 3600),
    }


def _sync_settings(env: dict[str, str], node_role: str) -> dict:
    central_url = _env(env, "LIBRARY_CENTRAL_URL")
    if central_url is not None:
        parts = urlparse(central_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"LIBRARY_CENTRAL_URL must be an http(s) address, got {central_url!r}")
        central_url = central_url.rstrip("/")
    credential = _env(env, "LIBRARY_SYNC_CREDENTIAL")
    if node_role == "branch" and central_url is not None:
        if _env(env, "LIBRARY_BRANCH_CODE") is None:
            raise SettingsError("LIBRARY_BRANCH_CODE is needed on a branch node that syncs (LIBRARY_CENTRAL_URL is set)")
        if credential is None:
            raise SettingsError("LIBRARY_SYNC_CREDENTIAL is needed with LIBRARY_CENTRAL_URL: "
                                "ask the central library's administrator (`library sync credential --branch CODE`)")
    return {
        "central_url": central_url,
        "sync_credential": credential,
        "sync_interval_seconds": _int(env, "LIBRARY_SYNC_INTERVAL_SECONDS", 300, 0, 86400),
        "sync_timeout_seconds": _int(env, "LIBRARY_SYNC_TIMEOUT_SECONDS", 30, 1, 600),
        "sync_retry_ms": _int(env, "LIBRARY_SYNC_RETRY_MS", 500, 10, 8000),
        "sync_clock_skew_seconds": _int(env, "LIBRARY_SYNC_CLOCK_SKEW_SECONDS", 300, 0, 86400),
        "sync_requests_per_minute": _int(env, "LIBRARY_SYNC_REQUESTS_PER_MINUTE", 600, 1, 100000),
        "sync_verifier_days": _int(env, "LIBRARY_SYNC_VERIFIER_DAYS", 90, 0, 3650),
    }


def _notice_settings(env: dict[str, str]) -> dict:
    user, password = _env(env, "LIBRARY_SMTP_USER"), _env(env, "LIBRARY_SMTP_PASSWORD")
    if (user is None) != (password is None):
        raise SettingsError("LIBRARY_SMTP_USER and LIBRARY_SMTP_PASSWORD go together: set both or neither")
    for name, value in (("LIBRARY_SMTP_USER", user), ("LIBRARY_SMTP_PASSWORD", password)):
        if value is not None and not value.isascii():
            raise SettingsError(f"{name} must be plain ASCII (Python's SMTP client sends no other characters)")
    return {
        "smtp_host": _env(env, "LIBRARY_SMTP_HOST"),
        "smtp_port": _int(env, "LIBRARY_SMTP_PORT", 25, 1, 65535),
        "smtp_user": user,
        "smtp_password": password,
        "smtp_starttls": _bool(env, "LIBRARY_SMTP_STARTTLS", False),
        "mail_from": _mail_from(env),
        "due_soon_days": _int(env, "LIBRARY_DUE_SOON_DAYS", 3, 0, 60),
        "notice_interval_seconds": _int(env, "LIBRARY_NOTICE_INTERVAL_SECONDS", 60, 0, 86400),
        "loan_history_days": _int(env, "LIBRARY_LOAN_HISTORY_DAYS", 30, 0, 36500),
        "activity_history_days": _int(env, "LIBRARY_ACTIVITY_HISTORY_DAYS", 400, 0, 36500),
    }


# Documented here so that a test can check every variable is in the README.
SETTING_NAMES = (
    "LIBRARY_DATABASE_URL",
    "LIBRARY_DATA_DIR",
    "LIBRARY_SECRET_KEY",
    "LIBRARY_HOST",
    "LIBRARY_PORT",
    "LIBRARY_DEFAULT_LANGUAGE",
    "LIBRARY_NODE_ROLE",
    "LIBRARY_BRANCH_CODE",
    "LIBRARY_CENTRAL_URL",
    "LIBRARY_SYNC_CREDENTIAL",
    "LIBRARY_SYNC_INTERVAL_SECONDS",
    "LIBRARY_SYNC_TIMEOUT_SECONDS",
    "LIBRARY_SYNC_RETRY_MS",
    "LIBRARY_SYNC_CLOCK_SKEW_SECONDS",
    "LIBRARY_SYNC_REQUESTS_PER_MINUTE",
    "LIBRARY_SYNC_VERIFIER_DAYS",
    "LIBRARY_TIME_ZONE",
    "LIBRARY_MAX_BODY_BYTES",
    "LIBRARY_SESSION_MINUTES",
    "LIBRARY_SIGNIN_FAILURES_PER_MINUTE",
    "LIBRARY_SECURE_COOKIES",
    "LIBRARY_FORWARDED_ALLOW_IPS",
    "LIBRARY_METADATA_PROVIDERS",
    "LIBRARY_METADATA_TIMEOUT",
    "LIBRARY_DEBUG",
    "LIBRARY_SMTP_HOST",
    "LIBRARY_SMTP_PORT",
    "LIBRARY_SMTP_USER",
    "LIBRARY_SMTP_PASSWORD",
    "LIBRARY_SMTP_STARTTLS",
    "LIBRARY_MAIL_FROM",
    "LIBRARY_DUE_SOON_DAYS",
    "LIBRARY_NOTICE_INTERVAL_SECONDS",
    "LIBRARY_LOAN_HISTORY_DAYS",
    "LIBRARY_ACTIVITY_HISTORY_DAYS",
    "LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE",
    "LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER",
    "LIBRARY_CATALOG_MATCH_POINTS",
    "LIBRARY_SIP2_ENABLED",
    "LIBRARY_SIP2_HOST",
    "LIBRARY_SIP2_PORT",
    "LIBRARY_SIP2_IDLE_SECONDS",
    "LIBRARY_SIP2_MESSAGE_SECONDS",
    "LIBRARY_SIP2_MAX_CONNECTIONS",
    "LIBRARY_SIP2_TLS_CERT",
    "LIBRARY_SIP2_TLS_KEY",
    "LIBRARY_SELFCHECK_IDLE_SECONDS",
    "LIBRARY_BACKUP_DIR",
    "LIBRARY_BACKUP_KEEP",
    "LIBRARY_METRICS_TOKEN",
    "LIBRARY_LOG_FORMAT",
)
