"""Microsoft identity: msal PublicClientApplication, device-code sign-in, a 0600 token cache.

The token cache is msal's :class:`msal.SerializableTokenCache`, persisted as JSON at the account's
token path (``Config.token_path``), created 0600 and rewritten only when msal reports
``has_state_changed``. Access tokens are obtained silently (cache, then refresh token); any failure
to do so raises :class:`AuthRequired` whose fix is ``keepwarm auth microsoft ACCOUNT``.

msal insists on an https authority. For a loopback test authority (``authority_host =
"http://127.0.0.1:PORT"``) msal is given the placeholder ``https://login.test`` and an
``http_client`` that rewrites that host to the loopback URL (msal validates the authority's
scheme before any request, so the rewrite happens underneath it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from keepwarm.connectors.base import AuthRequired, SourceError, TransientError
from keepwarm.core.files import write_private

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
PLACEHOLDER_HOST = "https://login.test"  # what msal sees when the real host is plain-http loopback
MAIL_SCOPE = "Mail.ReadBasic"
CALENDAR_SCOPE = "Calendars.Read"
SEND_SCOPE = "Mail.Send"
CONTACTS_SCOPE = "Contacts.Read"
_TLS_HINT = (
    "the TLS certificate of the Microsoft sign-in service is not trusted; if a proxy inspects "
    "TLS on this network, set ca_file to its CA certificate"
)
REFRESH_MARGIN = 300  # seconds: refresh an access token that expires sooner than this


def fix_command(account: str) -> str:
    return f"keepwarm auth microsoft {account}"


def scopes_for(*, mail: bool, calendar: bool, send: bool, contacts: bool = False) -> list[str]:
    """The delegated Graph scopes an account needs (msal adds openid/profile/offline_access)."""
    scopes = []
    if mail:
        scopes.append(MAIL_SCOPE)
    if calendar:
        scopes.append(CALENDAR_SCOPE)
    if contacts:
        scopes.append(CONTACTS_SCOPE)
    if send:
        scopes.append(SEND_SCOPE)
    return scopes


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, what: str) -> str:
    """``url`` without a trailing slash; https, or plain http towards a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url.rstrip("/")
    raise SourceError(
        f"{what} {url!r} must be an https:// URL (plain http is allowed only towards a loopback "
        "address such as a local test emulator)"
    )


class RewritingSession(requests.Session):
    """A requests session with a default timeout that maps the placeholder host to a real one."""

    def __init__(
        self, timeout: float, rewrite_to: str | None = None, ca_file: Path | None = None
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self._rewrite_to = rewrite_to
        # Passed with every request: requests lets $REQUESTS_CA_BUNDLE override session.verify.
        self.ca_file = str(ca_file) if ca_file is not None else None

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        u = url.decode() if isinstance(url, bytes) else url
        if self._rewrite_to and u.startswith(PLACEHOLDER_HOST):
            u = self._rewrite_to + u[len(PLACEHOLDER_HOST) :]
        kwargs.setdefault("timeout", self._timeout)
        if self.ca_file is not None:
            kwargs.setdefault("verify", self.ca_file)
        return super().request(method, u, *args, **kwargs)


class TokenCacheFile:
    """msal's serializable cache, loaded from and saved to one 0600 JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache = msal.SerializableTokenCache()
        self._lock = threading.Lock()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SourceError(f"cannot read the token file {path}: {exc}") from None
        try:
            self.cache.deserialize(text)
        except (ValueError, json.JSONDecodeError):
            log.warning("token file %s is not valid JSON; ignoring it", path)

    def save_if_changed(self) -> bool:
        """Write the cache atomically (0600) when msal changed it; True if written."""
        with self._lock:
            if not self.cache.has_state_changed:
                return False
            data = self.cache.serialize()
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                write_private(self.path, data.encode("utf-8"))
            except OSError as exc:
                raise SourceError(f"cannot write the token file {self.path}: {exc}") from None
            self.cache.has_state_changed = False
            return True


class MicrosoftAuth:
    """Tokens for one account: device-code sign-in and silent acquisition."""

    def __init__(
        self,
        *,
        account: str,
        client_id: str,
        tenant: str,
        token_path: Path,
        scopes: list[str],
        authority_host: str | None = None,
        ca_file: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.account = account
        self.client_id = client_id
        self.tenant = tenant
        self.scopes = scopes
        self.token_file = TokenCacheFile(token_path)
        host = check_endpoint(authority_host or DEFAULT_AUTHORITY_HOST, "authority_host")
        rewrite = host if host.startswith("http://") else None
        self.session = RewritingSession(timeout, rewrite, ca_file)
        authority_base = PLACEHOLDER_HOST if rewrite else host
        self.authority = f"{authority_base}/{tenant}"
        self._app: msal.PublicClientApplication | None = None
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def close(self) -> None:
        """Close the sign-in service's pooled connections (reopened if it is used again)."""
        self.session.close()

    def __enter__(self) -> MicrosoftAuth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- msal ---------------------------------------------------------------------------------
    def app(self) -> msal.PublicClientApplication:
        if self._app is None:
            try:
                self._app = msal.PublicClientApplication(
                    self.client_id,
                    authority=self.authority,
                    token_cache=self.token_file.cache,
                    http_client=self.session,
                    instance_discovery=False,
                )
            except ValueError as exc:
                raise SourceError(
                    f"cannot use the Microsoft sign-in authority {self.authority}: {exc}"
                ) from None
            except requests.exceptions.SSLError:
                raise SourceError(_TLS_HINT) from None
            except requests.RequestException as exc:
                raise TransientError(
                    f"cannot reach the Microsoft sign-in service ({type(exc).__name__})"
                ) from None
        return self._app

    def _required(self, why: str) -> AuthRequired:
        return AuthRequired(
            f"Microsoft sign-in needed for account {self.account} ({why})",
            fix=fix_command(self.account),
        )

    def access_token(self, force_refresh: bool = False) -> str:
        """A valid access token, from the cache or by refreshing; AuthRequired otherwise."""
        with self._lock:
            if not force_refresh and self._token and time.time() < self._expires_at:
                return self._token
            try:
                result = self._acquire_silent(force_refresh)
            finally:
                self.token_file.save_if_changed()
            self._token = str(result["access_token"])
            expires_in = float(result.get("expires_in") or 3600)
            self._expires_at = time.time() + max(0.0, expires_in - REFRESH_MARGIN)
            return self._token

    def _acquire_silent(self, force_refresh: bool) -> Mapping[str, Any]:
        try:
            app = self.app()
            accounts = app.get_accounts()
            if not accounts:
                raise self._required("no saved sign-in")
            result = app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], force_refresh=force_refresh
            )
        except requests.exceptions.SSLError:
            raise SourceError(_TLS_HINT) from None
        except requests.RequestException as exc:
            raise TransientError(
                f"cannot reach the Microsoft sign-in service ({type(exc).__name__})"
            ) from None
        if not result:
            raise self._required("the saved sign-in does not cover the permissions needed")
        if "access_token" not in result:
            err = str(result.get("error") or "unknown error")
            if err in ("temporarily_unavailable", "server_error") or _status_is_transient(result):
                raise TransientError(f"the Microsoft sign-in service is unavailable ({err})")
            raise self._required(f"the sign-in service said {err}")
        return result  # type: ignore[no-any-return]

    def invalidate(self) -> None:
        """Forget the in-memory access token (after a 401), so the next call refreshes."""
        with self._lock:
            self._token = None
            self._expires_at = 0.0

    # -- device-code sign-in --------------------------------------------------------------------
    def start_device_flow(self) -> dict[str, Any]:
        """Ask for a device code; returns msal's flow dict (``message``, ``user_code`` ...)."""
        try:
            flow = self.app().initiate_device_flow(scopes=self.scopes)
        except requests.exceptions.SSLError:
            raise SourceError(_TLS_HINT) from None
        except requests.RequestException as exc:
            raise TransientError(
                f"cannot reach the Microsoft sign-in service ({type(exc).__name__})"
            ) from None
        except ValueError as exc:
            raise SourceError(
                f"the sign-in authority cannot do device-code sign-in: {exc}"
            ) from None
        if "user_code" not in flow:
            raise SourceError(
                "Microsoft refused to start device-code sign-in "
                f"({flow.get('error')}: {flow.get('error_description', '')}). Check client_id and "
                "tenant, and that the app registration allows public client flows."
            )
        return dict(flow)

    def finish_device_flow(
        self, flow: dict[str, Any], exit_condition: Callable[[dict[str, Any]], bool] | None = None
    ) -> str:
        """Poll until the user has signed in (as msal does); returns the signed-in username."""
        kwargs: dict[str, Any] = {}
        if exit_condition is not None:
            kwargs["exit_condition"] = exit_condition
        try:
            result = self.app().acquire_token_by_device_flow(flow, **kwargs)
        except requests.exceptions.SSLError:
            raise SourceError(_TLS_HINT) from None
        except requests.RequestException as exc:
            raise TransientError(
                f"lost contact with the Microsoft sign-in service ({type(exc).__name__})"
            ) from None
        finally:
            self.token_file.save_if_changed()
        if "access_token" not in result:
            raise AuthRequired(
                f"sign-in did not complete: {result.get('error')}: "
                f"{result.get('error_description', '')}".strip(),
                fix=fix_command(self.account),
            )
        self.token_file.save_if_changed()
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("name") or "")


def _status_is_transient(result: Mapping[str, Any]) -> bool:
    codes = result.get("error_codes") or []
    return any(c in (90033, 50196) for c in codes if isinstance(c, int))
