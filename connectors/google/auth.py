"""Google OAuth for keepwarm: the token file, silent refresh, and the installed-app consent flow.

The token file is google-auth's authorized-user JSON (``Credentials.to_json()``), written 0600 via
a temporary file and an atomic rename. Scopes are the narrowest that work: ``gmail.metadata``
(headers and labels, never bodies), ``calendar.readonly``, and ``gmail.send`` only when the digest
is delivered through Gmail. A refresh token that stopped working (``invalid_grant``: revoked, a
password change for tokens with Gmail scopes, six months unused, or the 7-day expiry of OAuth
clients left in "Testing") becomes :class:`AuthRequired` with the exact command that fixes it.
Consent can be partial (Google lets the user untick a scope): the token keeps only the scopes
Google granted, and :func:`missing_scopes` names the rest at ``keepwarm auth``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import google.auth.exceptions
from google.oauth2.credentials import Credentials

from keepwarm.connectors.base import AuthRequired, SourceError, TransientError
from keepwarm.core.files import write_private

log = logging.getLogger(__name__)

GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
CONTACTS_READONLY = "https://www.googleapis.com/auth/contacts.readonly"
KIND_SCOPES = {
    "gmail": (GMAIL_METADATA,),
    "gcal": (CALENDAR_READONLY,),
    "gcontacts": (CONTACTS_READONLY,),
}
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def fix_command(account: str) -> str:
    return f"keepwarm auth google {account}"


def load_credentials(
    token_path: Path,
    *,
    account: str,
    needed: Iterable[str] = (),
    token_uri: str | None = None,
) -> Credentials:
    """Credentials from the token file; AuthRequired when missing, damaged or lacking a scope."""
    fix = fix_command(account)
    try:
        info = json.loads(token_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuthRequired(
            f'account "{account}" is not authorised yet (no token file at {token_path})', fix
        ) from None
    except (OSError, ValueError) as exc:
        raise AuthRequired(
            f"the Google token file {token_path} cannot be read ({exc}); authorise again", fix
        ) from None
    if not isinstance(info, dict) or not info.get("refresh_token") or not info.get("client_id"):
        raise AuthRequired(
            f"the Google token file {token_path} is incomplete; authorise again", fix
        )
    scopes = info.get("scopes") or []
    if isinstance(scopes, str):
        scopes = scopes.split()
    missing = [s for s in needed if s not in scopes]
    if missing:
        short = ", ".join(s.rsplit("/", 1)[-1] for s in missing)
        raise AuthRequired(
            f'the Google token for "{account}" does not grant {short}; authorise again', fix
        )
    expiry = _parse_expiry(info.get("expiry"))
    return Credentials(  # type: ignore[no-untyped-call]
        token=info.get("token"),
        refresh_token=info["refresh_token"],
        token_uri=token_uri or info.get("token_uri") or GOOGLE_TOKEN_URI,
        client_id=info["client_id"],
        client_secret=info.get("client_secret"),
        scopes=list(scopes),
        expiry=expiry,
    )


def _parse_expiry(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # google-auth compares expiry with a naive UTC "now".
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def save_credentials(creds: Credentials, token_path: Path) -> None:
    """Write the authorized-user JSON 0600, atomically (never a half-written token file)."""
    token_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: str = creds.to_json()  # type: ignore[no-untyped-call]
    write_private(token_path, data.encode("utf-8"))


def refresh_failure(exc: google.auth.exceptions.GoogleAuthError, account: str) -> Exception:
    """Classify a google-auth failure: transport/retryable -> TransientError, else AuthRequired."""
    if isinstance(exc, google.auth.exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return TransientError("Google's token endpoint is temporarily unavailable")
        text = str(exc.args[0]) if exc.args else ""
        if "invalid_grant" in text:
            why = (
                "access was revoked or expired (a password change ends Gmail access; a token "
                "unused for 6 months expires; OAuth clients left in 'Testing' expire after 7 days)"
            )
        elif "invalid_client" in text:
            why = "the OAuth client in the token file is no longer valid"
        else:
            why = "Google refused to refresh the access token"
        return AuthRequired(
            f'Google account "{account}" needs to be authorised again: {why}', fix_command(account)
        )
    if isinstance(exc, google.auth.exceptions.TransportError):
        return TransientError("cannot reach Google's token endpoint")
    return AuthRequired(
        f'Google account "{account}" needs to be authorised again ({type(exc).__name__})',
        fix_command(account),
    )


def _allow_http_for_loopback(uri: str) -> None:
    """oauthlib refuses http token endpoints; allow it only for a loopback emulator."""
    parsed = urlparse(uri)
    if parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1"):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def read_client_config(path: Path) -> dict[str, Any]:
    """The OAuth client JSON downloaded from the Google Cloud console, validated."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(
            f"OAuth client file {path} not found: download it from Google Cloud console > APIs & Services > Credentials"
        ) from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read the OAuth client file {path}: {exc}") from None
    section = data.get("installed") or data.get("web") if isinstance(data, dict) else None
    if not isinstance(section, dict) or not section.get("client_id"):
        raise SourceError(
            f'{path} is not an OAuth client file: create an OAuth client of type "Desktop app" and download its JSON'
        )
    if not isinstance(data, dict) or "installed" not in data:
        raise SourceError(
            f'{path} is a "Web application" client; keepwarm needs a "Desktop app" OAuth client'
        )
    return dict(data)


def run_installed_flow(
    client_config: dict[str, Any],
    scopes: list[str],
    *,
    port: int,
    prompt_message: str,
    bind_addr: str | None = None,
    timeout_seconds: int | None = None,
) -> Credentials:
    """The installed-app consent flow on a loopback port, without opening a browser.

    ``prompt_message`` (with ``{url}``) is shown by google-auth-oauthlib with the consent URL.
    The caller (the CLI) saves the returned credentials.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    _allow_http_for_loopback(client_config["installed"].get("token_uri", ""))
    os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    flow = InstalledAppFlow.from_client_config(client_config, scopes=scopes)
    creds = flow.run_local_server(
        host="localhost",
        bind_addr=bind_addr,
        port=port,
        open_browser=False,
        authorization_prompt_message=prompt_message,
        success_message="keepwarm is authorised. You can close this tab.",
        timeout_seconds=timeout_seconds,
        access_type="offline",
        prompt="consent",
    )
    if not isinstance(creds, Credentials) or not creds.refresh_token:
        raise SourceError("Google returned no refresh token; run the command again")
    return granted_only(creds)


def granted_only(creds: Credentials) -> Credentials:
    """``creds`` with the scopes Google granted (the token response's ``scope``), not the ones
    asked for: the user may untick some on the consent page, and a token file that claimed them
    would fail only at the first API call."""
    granted = creds.granted_scopes
    if granted is None:
        return creds
    if isinstance(granted, str):
        granted = granted.split()
    return Credentials(  # type: ignore[no-untyped-call]
        token=creds.token,
        refresh_token=creds.refresh_token,
        token_uri=creds.token_uri,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        scopes=[str(g) for g in granted],
        expiry=creds.expiry,
    )


def missing_scopes(creds: Credentials, requested: Iterable[str]) -> list[str]:
    """Requested scopes that ``creds`` does not carry (short names: ``calendar.readonly``)."""
    have = set(creds.scopes or ())
    return [s.rsplit("/", 1)[-1] for s in requested if s not in have]
