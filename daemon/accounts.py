"""Build the connector for a configured account (lazy imports: only the kinds in use load)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from keepwarm.connectors.base import Connector, SourceError
from keepwarm.daemon.config import Account, Config

if TYPE_CHECKING:
    from keepwarm.connectors.dav import DavSettings
    from keepwarm.connectors.google.client import GoogleClient
    from keepwarm.connectors.microsoft.auth import MicrosoftAuth as MicrosoftAuthT
    from keepwarm.connectors.microsoft.graph import GraphClient as GraphClientT


def make_connector(account: Account, config: Config) -> Connector:
    """The connector for ``account``. Raises SourceError when the kind cannot be used here."""
    builder = _BUILDERS.get(account.kind)
    if builder is None:
        raise SourceError(
            f'account "{account.name}": kind "{account.kind}" is not supported by this version'
        )
    return builder(account, config)


Builder = Callable[[Account, Config], Connector]

# kind -> builder; each connector's builder is registered below it.
_BUILDERS: dict[str, Builder] = {}


def _build_imap(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.imap import ImapConnector, ImapSettings
    from keepwarm.daemon.secrets import resolve_secret

    secret = account.secret()
    what = f'account "{account.name}"'
    if secret.file:
        hint = str(secret.file)
    elif secret.env:
        hint = f"the environment variable {secret.env}"
    else:
        hint = "the output of password_command"
    settings = ImapSettings(
        host=account.opt("host"),
        username=account.opt("username"),
        password=lambda: resolve_secret(secret, what),
        port=account.opt("port"),
        security=account.opt("security"),
        folders=tuple(account.opt("folders") or ()),
        exclude_folders=tuple(account.opt("exclude_folders") or ()),
        timeout=account.opt("timeout").total_seconds(),
        ca_file=account.opt("ca_file"),
        backfill=account.opt("backfill"),
        keep_subjects=config.store_subjects,
        password_hint=hint,
    )
    return ImapConnector(account.name, settings)


_BUILDERS["imap"] = _build_imap


# -- Google (gmail, gcal) ----------------------------------------------------------------------
def google_client(
    account: Account, config: Config, *, scopes: tuple[str, ...] | None = None
) -> GoogleClient:
    """The API client of a gmail/gcal/gcontacts account: token file, endpoint, timeout, quota,
    concurrency.

    ``scopes``: what the token must grant (default: what the account's kind reads).
    """
    from keepwarm.connectors.google.auth import KIND_SCOPES
    from keepwarm.connectors.google.client import ClientSettings, GoogleClient
    from keepwarm.connectors.google.quota import Limits, TokenBucket

    if account.kind == "gmail":
        budget, concurrency = account.opt("quota_units_per_minute"), account.opt("max_concurrency")
    else:
        budget, concurrency = account.opt("requests_per_minute"), 4
    settings = ClientSettings(
        account=account.name,
        token_path=config.token_path(account),
        scopes=KIND_SCOPES.get(account.kind, ()) if scopes is None else scopes,
        api_endpoint=account.opt("api_endpoint"),
        token_uri=account.opt("token_uri"),
        timeout=account.opt("timeout").total_seconds(),
    )
    return GoogleClient(settings, Limits(TokenBucket(budget), concurrency))


def _build_gmail(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.google.gmail import GmailConnector, GmailOptions

    options = GmailOptions(
        backfill=account.opt("backfill"),
        store_subjects=config.store_subjects,
        max_concurrency=account.opt("max_concurrency"),
    )
    return GmailConnector(account.name, google_client(account, config), options)


def _build_gcal(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.google.calendar import CalendarOptions, GoogleCalendarConnector

    options = CalendarOptions(
        window_past=account.opt("window_past"),
        window_future=account.opt("window_future"),
        calendars=tuple(account.opt("calendars") or ()),
        me=config.addresses,
        store_subjects=config.store_subjects,
    )
    return GoogleCalendarConnector(account.name, google_client(account, config), options)


def _build_gcontacts(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.google.contacts import GoogleContactsConnector

    return GoogleContactsConnector(account.name, google_client(account, config))


_BUILDERS["gmail"] = _build_gmail
_BUILDERS["gcontacts"] = _build_gcontacts
_BUILDERS["gcal"] = _build_gcal


def microsoft_auth(account: Account, config: Config) -> MicrosoftAuthT:
    from keepwarm.connectors.microsoft import make_auth

    return make_auth(
        account=account.name,
        client_id=account.opt("client_id"),
        tenant=account.opt("tenant") or "common",
        token_path=config.token_path(account),
        mail=bool(account.opt("mail")),
        calendar=bool(account.opt("calendar")),
        contacts=bool(account.opt("contacts")),
        send=config.delivery_method == "microsoft" and config.delivery_account == account.name,
        authority_host=account.opt("authority_host"),
        ca_file=account.opt("ca_file"),
        timeout=account.opt("timeout"),
    )


def microsoft_client(account: Account, config: Config) -> GraphClientT:
    """The Graph client of a ``microsoft`` account (sync, and sendMail delivery)."""
    from keepwarm.connectors.microsoft import make_client

    return make_client(
        microsoft_auth(account, config),
        graph_endpoint=account.opt("graph_endpoint"),
        timeout=account.opt("timeout"),
    )


def _build_microsoft(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.microsoft import MicrosoftConnector, Options

    options = Options(
        mail=bool(account.opt("mail")),
        calendar=bool(account.opt("calendar")),
        contacts=bool(account.opt("contacts")),
        backfill=account.opt("backfill"),
        window_past=account.opt("window_past"),
        window_future=account.opt("window_future"),
        keep_subjects=config.store_subjects,
        me=config.addresses,
    )
    return MicrosoftConnector(account.name, microsoft_client(account, config), options)


_BUILDERS["microsoft"] = _build_microsoft


# -- local files: mbox, maildir, ics ---------------------------------------------------------------
def _maildir(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.local.maildir import MaildirConnector

    return MaildirConnector(account.name, account.opt("path"), keep_subjects=config.store_subjects)


_BUILDERS["maildir"] = _maildir


def _mbox(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.local.mbox import MboxConnector

    return MboxConnector(account.name, account.opt("path"), keep_subjects=config.store_subjects)


_BUILDERS["mbox"] = _mbox


def _ics(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.local.ics import IcsConnector

    return IcsConnector(
        account.name,
        account.opt("path"),
        zone=config.zone,
        self_addresses=config.addresses,
        window_past=account.opt("window_past"),
        window_future=account.opt("window_future"),
        keep_titles=config.store_subjects,
        timeout=(account.opt("timeout") or timedelta(seconds=60)).total_seconds(),
    )


_BUILDERS["ics"] = _ics


def _vcard(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.local.vcard import VcardConnector

    return VcardConnector(account.name, account.opt("path"))


_BUILDERS["vcard"] = _vcard


# -- CalDAV / CardDAV --------------------------------------------------------------------------------
DAV_KINDS = {"caldav": "calendars", "carddav": "addressbooks"}  # kind -> its collections key


def dav_settings(account: Account, collections_key: str) -> DavSettings:
    """Where and how to log in to a caldav/carddav account; the password is read when needed."""
    from keepwarm.connectors.dav import DavSettings
    from keepwarm.daemon.secrets import resolve_secret

    secret = account.secret()
    if secret.file:
        hint = f"the password file {secret.file}"
    elif secret.env:
        hint = f"the environment variable {secret.env}"
    else:
        hint = "the output of password_command"
    return DavSettings(
        url=account.opt("url"),
        username=account.opt("username"),
        password=lambda: resolve_secret(secret, f'account "{account.name}"'),
        timeout=account.opt("timeout").total_seconds(),
        ca_file=account.opt("ca_file"),
        collections=tuple(account.opt(collections_key) or ()),
        password_hint=hint,
    )


def _caldav(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.dav.calendar import CalDavConnector, CalDavOptions

    options = CalDavOptions(
        zone=config.zone,
        me=config.addresses,
        window_past=account.opt("window_past"),
        window_future=account.opt("window_future"),
        keep_titles=config.store_subjects,
    )
    return CalDavConnector(account.name, dav_settings(account, DAV_KINDS["caldav"]), options)


_BUILDERS["caldav"] = _caldav


def _carddav(account: Account, config: Config) -> Connector:
    from keepwarm.connectors.dav.contacts import CardDavConnector

    return CardDavConnector(account.name, dav_settings(account, DAV_KINDS["carddav"]))


_BUILDERS["carddav"] = _carddav
