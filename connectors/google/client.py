"""One account's connection to Google APIs: credentials, services, quota-aware calls and batches.

Services are built offline from the discovery documents shipped with google-api-python-client.
When ``api_endpoint`` is set (a proxy or the test emulator), the document's ``rootUrl`` is replaced
before building, so method URLs *and* the batch URI point there (``client_options`` would leave
the batch URI at www.googleapis.com/batch). Every HTTP object has a timeout; httplib2 is
not thread-safe, so each thread gets its own.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import BatchError, HttpError

from keepwarm.connectors.base import AuthRequired, ConnectorError, SourceError, TransientError
from keepwarm.connectors.google.auth import (
    fix_command,
    load_credentials,
    refresh_failure,
    save_credentials,
)
from keepwarm.connectors.google.quota import (
    Limits,
    RetryPolicy,
    error_body,
    error_reason,
    give_up,
    is_retryable,
    retry_after_seconds,
)

log = logging.getLogger(__name__)
# googleapiclient logs every 403 at WARNING ("Encountered 403 Forbidden with reason ..."); keepwarm
# reports what matters itself, as one actionable line.
logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)

# Google API service names -> what the Cloud console calls them.
API_NAMES = {
    "gmail.googleapis.com": "Gmail API",
    "calendar-json.googleapis.com": "Google Calendar API",
    "people.googleapis.com": "People API",
}
DAILY_LIMIT_WAIT = 3600.0  # dailyLimitExceeded: try again in an hour, not in a second

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # timeouts, resets, refused connections
    http.client.HTTPException,
    httplib2.HttpLib2Error,
)


@dataclass
class ClientSettings:
    account: str
    token_path: Path
    scopes: tuple[str, ...]
    api_endpoint: str | None = None
    token_uri: str | None = None
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class PartResult:
    """What a batch round produced, by caller key. ``throttled`` counts the parts refused for
    rate or concurrency (429, 403 rate limits); ``retry`` holds them and the failed ones (5xx)."""

    ok: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, HttpError] = field(default_factory=dict)
    retry: list[str] = field(default_factory=list)
    retry_after: float | None = None
    throttled: int = 0
    forbidden: int = 0  # of them, 403s: a quota answer, not the concurrency limit


class GoogleClient:
    """Credentials + services + retries for one account. ``close()`` saves a refreshed token."""

    def __init__(self, settings: ClientSettings, limits: Limits) -> None:
        self.settings = settings
        self.limits = limits
        self.retry = settings.retry
        self._creds: Credentials | None = None
        self._loaded_token: str | None = None
        self._local = threading.local()
        self._https: list[google_auth_httplib2.AuthorizedHttp] = []  # every thread's, to close
        self._https_lock = threading.Lock()  # (service() holds _lock while it calls http())
        self._services: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls = 0

    # -- setup
    @property
    def creds(self) -> Credentials:
        if self._creds is None:
            self._creds = load_credentials(
                self.settings.token_path,
                account=self.settings.account,
                needed=self.settings.scopes,
                token_uri=self.settings.token_uri,
            )
            self._loaded_token = self._creds.token
        return self._creds

    def http(self) -> google_auth_httplib2.AuthorizedHttp:
        h = getattr(self._local, "http", None)
        if h is None:
            h = google_auth_httplib2.AuthorizedHttp(
                self.creds, http=httplib2.Http(timeout=self.settings.timeout)
            )
            self._local.http = h
            with self._https_lock:
                self._https.append(h)
        return h

    def service(self, api: str, version: str) -> Any:
        with self._lock:
            svc = self._services.get(api)
            if svc is None:
                doc = json.loads(get_static_doc(api, version) or "{}")
                endpoint = self.settings.api_endpoint
                if endpoint:
                    root = endpoint if endpoint.endswith("/") else endpoint + "/"
                    doc["rootUrl"] = doc["mtlsRootUrl"] = root
                svc = build_from_document(doc, http=self.http())
                self._services[api] = svc
            return svc

    def close(self) -> None:
        """Persist a refreshed access token so the next run need not refresh again, and close
        the HTTP connections (every thread's; an HTTP object opens new ones when used again)."""
        with self._https_lock:
            for h in self._https:
                h.close()
        creds = self._creds
        if creds is not None and creds.token and creds.token != self._loaded_token:
            try:
                save_credentials(creds, self.settings.token_path)
                self._loaded_token = creds.token
            except OSError as exc:
                log.warning("could not update the token file: %s", exc.strerror)

    # -- error mapping
    def _auth_error(self, status: int, reason: str | None) -> AuthRequired | None:
        account = self.settings.account
        if status == 401:
            return AuthRequired(
                f'Google rejected the credentials of "{account}"; authorise again',
                fix_command(account),
            )
        if status == 403 and reason in (
            "insufficientPermissions",
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        ):
            return AuthRequired(
                f'the Google token of "{account}" lacks a needed permission; authorise again',
                fix_command(account),
            )
        return None

    def refusal(self, exc: HttpError, what: str) -> ConnectorError:
        """The connector error for a Google answer that retrying will not change.

        An API not enabled in the Cloud project (403 ``accessNotConfigured``) names the API and
        the console page that enables it; the daily limit waits an hour; anything else is a
        failing account with Google's own reason and message.
        """
        account = self.settings.account
        status = int(exc.resp.status) if exc.resp is not None else 0
        err = error_body(exc.content)
        reason = error_reason(exc.content) or "error"
        message = str(err.get("message") or "")[:300]
        if reason == "accessNotConfigured" or _error_info_reason(err) == "SERVICE_DISABLED":
            service, project = _disabled_service(err)
            name = API_NAMES.get(service or "", "")
            if not name:
                found = re.match(r"(.+? API) has not been used", message)
                name = found.group(1) if found else "Google API"
            where = f" {project}" if project else ""
            page = f"apis/library/{service}" if service else "apis/library"
            link = f"https://console.cloud.google.com/{page}" + (
                f"?project={project}" if project else ""
            )
            return SourceError(
                f'the {name} is not enabled in the Google Cloud project{where} of account "{account}"',
                fix=f"enable the {name} at {link}, wait a few minutes, then run: "
                f"keepwarm sync {account}",
            )
        if reason == "dailyLimitExceeded":
            return TransientError(
                f'Google\'s daily request limit for account "{account}" is used up; keepwarm '
                "will try again later",
                retry_after=DAILY_LIMIT_WAIT,
            )
        return SourceError(
            f'Google refused {what} for account "{account}" (HTTP {status} {reason}: {message})',
            fix="check the account's settings in the config and its Google Cloud project "
            "(docs/google.md, Troubleshooting)",
        )

    def _classify(self, exc: BaseException) -> tuple[bool, float | None]:
        """(retryable, retry_after) for an exception from a call; raises auth problems."""
        if isinstance(exc, BatchError) or (isinstance(exc, HttpError) and exc.resp is None):
            return True, None  # a garbled batch response: send it again
        if isinstance(exc, HttpError):
            status = int(exc.resp.status)
            reason = error_reason(exc.content)
            auth = self._auth_error(status, reason)
            if auth is not None:
                raise auth from None
            if not is_retryable(status, reason):
                return False, None
            ra = retry_after_seconds(exc.resp.get("retry-after"))
            if status in (403, 429):
                self.limits.bucket.throttled(
                    ra, self.retry.base, self.retry.cap, quota=status == 403
                )
            return True, ra
        if isinstance(exc, google.auth.exceptions.GoogleAuthError):
            raise refresh_failure(exc, self.settings.account) from None
        if isinstance(exc, NETWORK_ERRORS):
            return True, None
        return False, None

    # -- calls
    def execute(
        self, make: Callable[[], Any], units: float, what: str, expect: tuple[int, ...] = ()
    ) -> Any:
        """Run one API request with quota, concurrency limit and bounded retries.

        Refusals with a status in ``expect`` (a stale history id's 404, an expired sync token's
        410...) are re-raised as HttpError for the caller to interpret; every other refusal
        becomes a connector error (:meth:`refusal`).
        """
        retry_after: float | None = None
        for attempt in range(self.retry.attempts):
            try:
                with self.limits.slot(units):
                    self.calls += 1
                    return make().execute(http=self.http())
            except (HttpError, google.auth.exceptions.GoogleAuthError, *NETWORK_ERRORS) as exc:
                retryable, retry_after = self._classify(exc)
                if not retryable:
                    if not isinstance(exc, HttpError) or int(exc.resp.status) in expect:
                        raise
                    raise self.refusal(exc, what) from None
                if retry_after is not None and retry_after > self.retry.cap:
                    break  # a long wait is the daemon's job (it backs off between syncs)
                log.debug("retrying %s after %s", what, type(exc).__name__)
                if attempt + 1 < self.retry.attempts:
                    self.retry.sleep(self.retry.delay(attempt, retry_after))
        raise give_up(what, retry_after)

    def batch_round(
        self, api: str, requests: Sequence[tuple[str, Any]], units_each: float
    ) -> PartResult:
        """Send one batch; sort the parts into ok, failed for good (404...) and to retry."""
        out = PartResult()
        svc = self._services[api]

        def callback(key: str, response: Any, exc: HttpError | None) -> None:
            if exc is None:
                out.ok[key] = response
                return
            status = int(exc.resp.status)
            reason = error_reason(exc.content)
            auth = self._auth_error(status, reason)
            if auth is not None:
                raise auth
            if is_retryable(status, reason):
                out.retry.append(key)
                if status in (403, 429):
                    out.throttled += 1
                    out.forbidden += status == 403
                ra = retry_after_seconds(exc.resp.get("retry-after"))
                if ra is not None:
                    out.retry_after = max(out.retry_after or 0.0, ra)
            else:
                out.failed[key] = exc

        batch = svc.new_batch_http_request(callback=callback)
        for key, req in requests:
            batch.add(req, request_id=key)
        try:
            with self.limits.slot(units_each * len(requests)):
                self.calls += 1
                batch.execute(http=self.http())
        except (HttpError, google.auth.exceptions.GoogleAuthError, *NETWORK_ERRORS) as exc:
            retryable, out.retry_after = self._classify(exc)  # the bucket takes note there
            if (
                isinstance(exc, HttpError)
                and exc.resp is not None
                and exc.resp.status in (403, 429)
            ):
                out.throttled = len(requests)
            if not retryable:
                if isinstance(exc, HttpError):
                    raise self.refusal(exc, "a batch request") from None
                raise TransientError(f"a Google batch request failed: {exc}") from None
            done = set(out.ok) | set(out.failed)
            out.retry = [k for k, _ in requests if k not in done]
            return out
        if out.throttled:
            self.limits.bucket.throttled(
                out.retry_after, self.retry.base, self.retry.cap, quota=bool(out.forbidden)
            )
        elif not out.retry:
            self.limits.bucket.clean()
        return out


def _error_info_reason(err: dict[str, Any]) -> str | None:
    """The ``reason`` of a ``google.rpc.ErrorInfo`` detail (``SERVICE_DISABLED``...), if any."""
    for d in err.get("details") or []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("ErrorInfo"):
            return str(d.get("reason") or "") or None
    return None


def _disabled_service(err: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(service, project number)`` of an API-not-enabled error, from its details or message."""
    service, project = _from_details(err.get("details") or [])
    message = str(err.get("message") or "")
    if service is None:
        found = re.search(r"/apis/api/([\w.-]+)/", message)
        service = found.group(1) if found else None
    if project is None:
        found = re.search(r"project[= ](\d+)", message)
        project = found.group(1) if found else None
    return service, project


def _from_details(details: list[Any]) -> tuple[str | None, str | None]:
    """``(service, project number)`` from the first error details that name them."""
    service = project = None
    for d in details:
        meta = d.get("metadata") if isinstance(d, dict) else None
        if isinstance(meta, dict):
            service = service or (str(meta.get("service") or "") or None)
            consumer = str(meta.get("consumer") or "")
            if consumer.startswith("projects/"):
                project = project or consumer.split("/", 1)[1]
    return service, project
