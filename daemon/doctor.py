"""Health checks for ``keepwarm doctor`` and the start-up permission check of ``keepwarm run``.

Each check yields one :class:`Check` line: what was checked, whether it passed, and for a
failure the fix. Network checks only open a TCP connection (or an SMTP login), with a timeout.
"""

from __future__ import annotations

import shlex
import shutil
import smtplib
import sqlite3
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from keepwarm.daemon.config import Account, Config, SmtpConfig
from keepwarm.daemon.secrets import SecretError, resolve_secret
from keepwarm.daemon.store import directory_problem, reads
from keepwarm.daemon.words import plural

NETWORK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False  # informational: shown, never fails the run

    def line(self) -> str:
        mark = "ok  " if self.ok else ("warn" if self.warning else "FAIL")
        text = f"[{mark}] {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"\n       fix: {self.fix}"
        return text


# -- permissions ----------------------------------------------------------------------------------
def private_files(config: Config) -> list[tuple[str, Path]]:
    """Files that must be accessible to their owner only: config, tokens, passwords, database."""
    files: list[tuple[str, Path]] = []
    if config.path is not None:
        files.append(("config", config.path))
    for acct in config.accounts:
        if acct.spec.oauth:
            files.append((f"token of {acct.name}", config.token_path(acct)))
        pw = acct.secret.file
        if pw is not None:
            files.append((f"password file of {acct.name}", Path(pw)))
    if config.smtp is not None and config.smtp.secret.file is not None:
        files.append(("SMTP password file", Path(config.smtp.secret.file)))
    db = config.store_path
    files += [("database", db), ("database", Path(f"{db}-wal")), ("database", Path(f"{db}-shm"))]
    from keepwarm.daemon.actions import key_path

    files.append(("action key", key_path(config)))
    return files


def permission_problems(config: Config) -> list[Check]:
    """One failed Check per existing private file that group or others can access."""
    out: list[Check] = []
    for what, path in private_files(config):
        try:
            st = path.stat()
        except OSError:
            continue  # missing files are reported by the checks that need them
        if not stat.S_ISREG(st.st_mode):
            continue
        loose = stat.S_IMODE(st.st_mode) & 0o077
        if loose:
            out.append(
                Check(
                    f"permissions of {what}",
                    False,
                    f"{path} is mode {stat.S_IMODE(st.st_mode):04o}: group or others can access it",
                    f"chmod 600 {shlex.quote(str(path))}",
                )
            )
    return out


def check_permissions(config: Config) -> Iterator[Check]:
    problems = permission_problems(config)
    if problems:
        yield from problems
    else:
        n = sum(1 for _, p in private_files(config) if p.exists())
        yield Check(
            "permissions", True, f"{plural(n, 'private file')} accessible to their owner only"
        )


# -- the database ---------------------------------------------------------------------------------
MIN_FREE = 64 * 1024 * 1024  # bytes: below this a sync can fill the disk mid-batch


def check_database(config: Config) -> Iterator[Check]:
    """The state directory is writable with room to spare; the database passes quick_check."""
    db = config.store_path
    problem = directory_problem(db.parent)
    if problem is not None:
        yield Check("database directory", False, problem[0], problem[1])
    else:
        where = db.parent if db.parent.exists() else next(p for p in db.parents if p.exists())
        free = shutil.disk_usage(where).free
        yield Check(
            "free space",
            free >= MIN_FREE,
            f"{free // (1024 * 1024):,} MB free in {where}",
            "free disk space there (keepwarm needs room for its database to grow), or set "
            "[store] path to another disk",
        )
    if not db.exists():
        yield Check("database", True, f"{db} not created yet (the first sync creates it)")
        return
    try:
        result = reads.quick_check(db)
    except sqlite3.DatabaseError as exc:
        result = str(exc)
    if result == "ok":
        yield Check("database", True, f"{db} passes SQLite's quick_check")
    else:
        q = shlex.quote(str(db))
        yield Check(
            "database",
            False,
            f"{db} is damaged ({result})",
            f"restore it from a backup, or move it aside (mv {q} {q}.damaged) and run "
            "'keepwarm sync' to import your accounts again",
        )


# -- tokens and sources ---------------------------------------------------------------------------
def check_tokens(config: Config) -> Iterator[Check]:
    for acct in config.accounts:
        if not acct.spec.oauth or not acct.enabled:
            continue
        path = config.token_path(acct)
        provider = acct.spec.login
        if path.is_file():
            yield Check(f"token of {acct.name}", True, f"present ({path})")
        else:
            yield Check(
                f"token of {acct.name}",
                False,
                f"no token file at {path}",
                f"keepwarm auth {provider} {acct.name}",
            )


def check_source(acct: Account, config: Config, timeout: float) -> Check:
    """What the account's kind declares as its doctor check (log in, look at the path, reach
    the server): its sentence, or the error with its fix."""
    from keepwarm.connectors.base import ConnectorError
    from keepwarm.daemon.accounts import context

    spec = acct.spec
    name = f"{spec.probe_label} {acct.name}"
    try:
        return Check(name, True, spec.probe(acct.options, context(acct, config), timeout))
    except ConnectorError as exc:
        return Check(name, False, str(exc), exc.fix or None)


def stored_accounts(config: Config) -> list[tuple[str, str]]:
    """(name, kind) of every account in the database (imports included)."""
    return reads.readonly(config.store_path, reads.accounts) or []


def check_sources(config: Config, timeout: float = NETWORK_TIMEOUT) -> Iterator[Check]:
    configured = {a.name for a in config.accounts}
    imported = [(n, k) for n, k in stored_accounts(config) if n not in configured]
    if imported:
        names = ", ".join(f"{n} ({k})" for n, k in imported)
        yield Check(
            "imported accounts",
            True,
            f"{len(imported)} in the database, not in the config: {names}; "
            "`keepwarm import KIND PATH` again reads what is new",
        )
    if not config.accounts and not imported:
        yield Check(
            "accounts",
            False,
            "no accounts configured and nothing imported",
            "import mail files (keepwarm import maildir PATH) or add an [[accounts]] table "
            "(every kind: `keepwarm init --example`)",
        )
    for acct in config.accounts:
        if not acct.enabled:
            yield Check(f"source of {acct.name}", True, "disabled (skipped)")
        else:
            yield check_source(acct, config, timeout)


def check_accounts(config: Config) -> Iterator[Check]:
    """Each enabled account's last sync as the database recorded it: a failing account's error
    and its fix (an expired sign-in, a mailbox without Exchange Online, an API not enabled...).

    Read-only: the database is neither created nor migrated; no database yet means no lines.
    """
    states = reads.readonly(config.store_path, reads.account_problems) or {}
    for acct in config.accounts:
        if not acct.enabled or acct.name not in states:
            continue
        state, error, fix = states[acct.name]
        name = f"sync of {acct.name}"
        if state in ("ok", "new"):
            yield Check(name, True, "ok" if state == "ok" else "not synced yet")
        elif state == "backoff":
            yield Check(name, False, f"backing off: {error}", fix, warning=True)
        else:
            what = state.replace("_", " ")
            yield Check(name, False, f"{what}: {error}" if error else what, fix)


# -- SMTP -----------------------------------------------------------------------------------------
def _smtp_login(smtp: SmtpConfig, timeout: float) -> str | None:
    ctx = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    client: smtplib.SMTP
    if smtp.security == "tls":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=ctx)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
    try:
        client.ehlo()
        if smtp.security == "starttls":
            client.starttls(context=ctx)
            client.ehlo()
        if smtp.username:
            client.login(smtp.username, resolve_secret(smtp.secret, "delivery.smtp"))
            return "login accepted"
        return "connected (no username configured, so no login)"
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def check_smtp(config: Config, timeout: float = NETWORK_TIMEOUT) -> Iterator[Check]:
    if config.delivery_method != "smtp" or config.smtp is None:
        where = config.outbox if config.delivery_method == "file" else config.delivery_account
        yield Check("delivery", True, f"{config.delivery_method} ({where})")
        return
    smtp = config.smtp
    name = f"SMTP {smtp.host}:{smtp.port}"
    try:
        detail = _smtp_login(smtp, timeout)
    except SecretError as exc:
        yield Check(name, False, str(exc), exc.fix or None)
    except smtplib.SMTPAuthenticationError as exc:
        yield Check(
            name,
            False,
            f"login refused ({exc.smtp_code})",
            "check [delivery.smtp] username and the password source (an app password for Gmail/Outlook)",
        )
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        yield Check(
            name,
            False,
            f"{type(exc).__name__}: {exc}",
            "check [delivery.smtp] host, port and security, the network, and the password source",
        )
    else:
        yield Check(name, True, detail or "ok")


# -- time zone and schedule -----------------------------------------------------------------------
def check_data(config: Config, now: datetime) -> Iterator[Check]:
    """Is there mail, and is it recent? (a warning: an old archive is fine with --as-of)"""
    from keepwarm.daemon.freshness import problem_of

    if not config.store_path.is_file():
        return
    ts = int(now.timestamp())
    found = reads.readonly(config.store_path, lambda conn: reads.newest(conn, ts))
    latest = datetime.fromtimestamp(found, UTC) if found is not None else None
    problem = problem_of(latest, now, config)
    if problem is None and latest is not None:
        yield Check(
            "data", True, f"newest mail or meeting {latest.astimezone(config.zone):%Y-%m-%d %H:%M}"
        )
    elif problem is not None:
        what, _, fix = problem.partition(": ")
        yield Check("data", False, what, fix, warning=True)


def check_schedule(config: Config, now: datetime) -> Iterator[Check]:
    from keepwarm.daemon.freshness import next_digest

    zone = config.zone
    sent = reads.readonly(config.store_path, reads.sent_days) or set()
    at, _catch_up = next_digest(config, now, sent)
    local = at.astimezone(zone)
    mins = max(0, int((at - now).total_seconds() // 60))
    yield Check(
        "time zone",
        True,
        f"{config.timezone} (now {now.astimezone(zone):%Y-%m-%d %H:%M %Z})",
    )
    yield Check(
        "schedule",
        True,
        f"next digest {local:%Y-%m-%d %H:%M %Z} (in {mins // 60}h {mins % 60:02d}m); "
        f"syncs every {_fmt_interval(config.daemon['sync_interval'].total_seconds())}",
    )


def _fmt_interval(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"


def run_checks(config: Config, now: datetime, timeout: float = NETWORK_TIMEOUT) -> Iterator[Check]:
    """Every check after the config loaded, in the order ``doctor`` prints them."""
    yield from check_permissions(config)
    yield from check_database(config)
    yield from check_tokens(config)
    yield from check_sources(config, timeout)
    yield from check_accounts(config)
    yield from check_data(config, now)
    yield from check_smtp(config, timeout)
    yield from check_schedule(config, now)
