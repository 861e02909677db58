"""A thin Microsoft Graph HTTP client on requests: auth header, throttling, retries, error codes.

- ``Retry-After`` (seconds, possibly fractional) is honoured on 429 and 503.
- At most :data:`MAX_CONCURRENT` requests per mailbox are in flight (Outlook's limit), shared by
  every client of the same mailbox in the process. A ``$batch`` counts as its members, up to four
  (Graph hands Outlook four members at a time, and they count against the same limit).
- Other 5xx, timeouts and dropped connections: exponential backoff with full jitter.
- After :attr:`GraphClient.max_attempts` tries a :class:`TransientError` carrying the last
  ``Retry-After`` is raised, so the daemon backs off and resumes from the last committed cursor.
- A 401 triggers one silent token refresh; a second 401 (or a 403) is :class:`AuthRequired`.
- Delta state that the server no longer knows (410, ``SyncStateNotFound``) is :class:`DeltaExpired`.
- A mailbox Graph cannot serve (404 ``MailboxNotEnabledForRESTAPI``: no Exchange Online licence,
  inactive, or on-premises) is :class:`MailboxNotEnabled`, with the fix for the user: never an
  empty mailbox, and never a reason to delete what is stored.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from keepwarm.connectors.base import AuthRequired, CursorExpired, SourceError, TransientError
from keepwarm.connectors.microsoft.auth import MicrosoftAuth, fix_command

log = logging.getLogger(__name__)

DEFAULT_GRAPH = "https://graph.microsoft.com/v1.0"
MAX_CONCURRENT = 4  # Outlook: four concurrent requests per app and mailbox
MAX_BATCH = 20  # JSON batching limit
MAX_RETRY_AFTER_WAIT = 60.0  # longer server waits are left to the daemon's backoff
RESYNC_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
MAILBOX_NOT_ENABLED = frozenset({"mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi"})


class WeightedGate:
    """A first-come-first-served semaphore whose holders take one or more permits at once.

    A request taking several (a ``$batch``) waits for all of them together, and nobody behind it
    in the queue overtakes it, so it is neither starved nor holding half its permits.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def hold(self, permits: int = 1) -> Iterator[None]:
        n = max(1, min(permits, self.capacity))
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or self.free < n:
                self._cond.wait()
            self._queue.popleft()
            self.free -= n
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self.free += n
                self._cond.notify_all()


_gates: dict[str, WeightedGate] = {}
_gates_lock = threading.Lock()


def mailbox_gate(key: str) -> WeightedGate:
    """The process-wide concurrency gate for one mailbox (Graph endpoint + account)."""
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = WeightedGate(MAX_CONCURRENT)
        return gate


class NoAnswer(TransientError):
    """A non-idempotent request (sendMail) got no clear answer: it may or may not have been done."""


class DeltaExpired(CursorExpired):
    """The delta or skip token is no longer known to Graph: restart that delta round.

    The mail and calendar syncs restart the round themselves; should one escape, the daemon
    treats it as an expired cursor (full resync, deduplicated by the store).
    """


class MailboxNotEnabled(SourceError):
    """Graph cannot serve this user's mailbox (unlicensed, inactive or on-premises)."""

    def __init__(self, account: str, code: str) -> None:
        super().__init__(
            f'Microsoft Graph cannot read the mailbox of account "{account}" ({code}): it has no '
            "Exchange Online licence, is inactive, or is hosted on an on-premises Exchange server",
            fix="ask your Microsoft 365 admin to assign an Exchange Online licence to this user; "
            "for an on-premises mailbox use an imap account instead (docs/imap.md)",
        )


class NotFound(SourceError):
    """404 from Graph (a folder or message that no longer exists)."""


class GraphError(SourceError):
    """A Graph error response that retrying will not fix (a 4xx other than 401/403/404/410/429)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(
            f"Microsoft Graph rejected a request ({status} {code}: {message}); if this persists, "
            "check graph_endpoint and the app registration's permissions"
        )
        self.status = status
        self.code = code


def error_code(resp: requests.Response) -> tuple[str, str]:
    """``(code, message)`` from a Graph error body, tolerating non-JSON bodies."""
    try:
        body = resp.json()
    except ValueError:
        return "", resp.reason or ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("code") or ""), str(err.get("message") or "")[:300]
    if isinstance(err, str):  # OAuth-style bodies
        return err, str(body.get("error_description") or "")[:300]
    return "", ""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: ``"2.128"`` or ``"10"``; HTTP dates are ignored."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def quote_id(item_id: str) -> str:
    return quote(item_id, safe="")


class GraphClient:
    """GET/POST JSON against Graph for one mailbox, with throttling and retries."""

    def __init__(
        self,
        auth: MicrosoftAuth,
        *,
        base_url: str = DEFAULT_GRAPH,
        timeout: float = 60.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.auth = auth
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self.session = requests.Session()
        # per request, since $REQUESTS_CA_BUNDLE would override session.verify
        self.verify: str | bool = auth.session.ca_file or True
        self.gate = mailbox_gate(f"{self.base_url}|{auth.account}")
        self.requests = 0  # HTTP requests sent, retries included (for benchmarks and logs)

    def close(self) -> None:
        """Close the pooled connections, Graph's and the sign-in service's (the client opens new
        ones if it is used again)."""
        self.session.close()
        self.auth.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def get(
        self,
        path_or_url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return self.request("GET", path_or_url, params=params, headers=headers)

    def post(
        self,
        path: str,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        return self.request("POST", path, body=body, headers=headers, idempotent=idempotent)

    # -- the retry loop --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
        weight: int = 1,
    ) -> dict[str, Any]:
        """One request with retries; ``weight`` is how many of the mailbox's concurrent
        requests it takes (a ``$batch``: its members, up to four)."""
        url = self.url(path_or_url)
        retry_after: float | None = None
        refreshed = False
        last = "no response"
        for attempt in range(1, self.max_attempts + 1):
            token = self.auth.access_token()
            hdrs = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            hdrs.update(headers or {})
            resp = self._try_send(method, url, params, hdrs, body, weight, idempotent)
            if isinstance(resp, str):  # no answer: the kind of network error
                last = resp
                self._pause(attempt, None)
                continue
            status = resp.status_code
            if status < 300:
                try:
                    return _json_body(resp)
                except ValueError:
                    last = "a truncated response"
                    self._pause(attempt, None)
                    continue
            code, message = error_code(resp)
            if status == 401 and not refreshed:
                refreshed = True
                self.auth.invalidate()
                self.auth.access_token(force_refresh=True)
                continue
            self._refused(status, code, message)
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                last = f"{status} {code}".strip()
                log.debug("graph %s %s: %s, retry-after %s", method, status, code, retry_after)
                if _wait_too_long(retry_after):
                    break
                if not idempotent and status >= 500 and status != 503:
                    raise NoAnswer(f"Microsoft Graph failed while handling the request ({last})")
                self._pause(attempt, retry_after)
                continue
            raise GraphError(status, code or "error", message)
        raise TransientError(
            f"Microsoft Graph is busy or unavailable ({last}); will retry later",
            retry_after=retry_after,
        )

    def _try_send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        body: Any,
        weight: int,
        idempotent: bool,
    ) -> requests.Response | str:
        """The response, or the name of the network error that left the request unanswered
        (a request that is not idempotent raises NoAnswer instead: it must not be sent twice)."""
        try:
            return self._send(method, url, params, headers, body, weight)
        except requests.exceptions.SSLError:
            raise SourceError(
                f"the TLS certificate of {self.base_url} is not trusted; if a proxy "
                "inspects TLS on this network, set ca_file to its CA certificate"
            ) from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            if not idempotent:
                raise NoAnswer(f"Microsoft Graph did not answer ({type(exc).__name__})") from None
            return type(exc).__name__

    def _refused(self, status: int, code: str, message: str) -> None:
        """Raise what a refusal means: sign in again, read everything again, not found."""
        if status in (401, 403):
            raise AuthRequired(
                f"Microsoft Graph refused access for account {self.auth.account} "
                f"({status} {code or 'error'}); sign in again and grant the permissions",
                fix=fix_command(self.auth.account),
            )
        if status == 410 or code.lower() in RESYNC_CODES:
            raise DeltaExpired(
                f"Microsoft Graph no longer knows this sync state ({code or 'Gone'})"
            )
        self._check_enabled(status, code)
        if status == 404:
            raise NotFound(f"Microsoft Graph: not found ({code or 'NotFound'}: {message})")

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        body: Any,
        weight: int = 1,
    ) -> requests.Response:
        with self.gate.hold(weight):
            self.requests += 1
            if body is None:
                return self.session.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self.verify,
                )
            if isinstance(body, bytes):  # a pre-encoded body (MIME sendMail)
                headers.setdefault("Content-Type", "text/plain")
                data = body
            else:
                headers["Content-Type"] = "application/json"
                data = json.dumps(body).encode()
            return self.session.request(
                method,
                url,
                params=params,
                headers=headers,
                data=data,
                timeout=self.timeout,
                verify=self.verify,
            )

    def _pause(self, attempt: int, retry_after: float | None) -> None:
        if attempt >= self.max_attempts:
            return
        if retry_after is not None:
            delay = retry_after
        else:
            exp = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
            delay = random.uniform(0, exp)  # full jitter
        self.sleep(delay)

    # -- JSON batching ---------------------------------------------------------------------------
    def batch_get(
        self, urls: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> dict[str, tuple[int, dict[str, Any]]]:
        """GET up to any number of relative URLs via ``$batch`` (20 per call); ``{key: (status, body)}``.

        Throttled or failed members are retried (with the same bounds as single requests).
        """
        results: dict[str, tuple[int, dict[str, Any]]] = {}
        pending = dict(urls)
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                return results
            retry_after: float | None = None
            keys = list(pending)
            for i in range(0, len(keys), MAX_BATCH):
                ra = self._batch_call(keys[i : i + MAX_BATCH], pending, headers, results)
                if ra is not None:
                    retry_after = max(retry_after or 0.0, ra)
            if pending:
                if _wait_too_long(retry_after):
                    raise TransientError(
                        "Microsoft Graph asked to wait before more requests; will retry later",
                        retry_after=retry_after,
                    )
                self._pause(attempt, retry_after)
        if pending:
            raise TransientError("Microsoft Graph kept throttling a batch; will retry later")
        return results

    def _batch_call(
        self,
        chunk: list[str],
        pending: dict[str, str],
        headers: Mapping[str, str] | None,
        results: dict[str, tuple[int, dict[str, Any]]],
    ) -> float | None:
        """One ``$batch`` call for ``chunk``: answered members move from ``pending`` to
        ``results``; returns the longest Retry-After of the throttled or failed ones."""
        reqs = [
            {"id": str(n), "method": "GET", "url": pending[k], "headers": dict(headers or {})}
            for n, k in enumerate(chunk)
        ]
        reply = self.request(
            "POST", "$batch", body={"requests": reqs}, weight=min(len(reqs), MAX_CONCURRENT)
        )
        retry_after: float | None = None
        for item in reply.get("responses") or []:
            try:
                key = chunk[int(item.get("id"))]
            except (TypeError, ValueError, IndexError):
                continue
            status = int(item.get("status") or 0)
            if status == 429 or status >= 500 or status == 0:
                ra = parse_retry_after((item.get("headers") or {}).get("Retry-After"))
                retry_after = ra if retry_after is None else max(retry_after, ra or 0.0)
                continue
            body = item.get("body")
            self._check_enabled(status, _member_code(body))
            results[key] = (status, body if isinstance(body, dict) else {})
            pending.pop(key, None)
        return retry_after

    def _check_enabled(self, status: int, code: str) -> None:
        """A 404 that says the mailbox has no Exchange Online: MailboxNotEnabled."""
        if status == 404 and code.lower() in MAILBOX_NOT_ENABLED:
            raise MailboxNotEnabled(self.auth.account, code)


def _wait_too_long(retry_after: float | None) -> bool:
    return retry_after is not None and retry_after > MAX_RETRY_AFTER_WAIT


def _member_code(body: Any) -> str:
    """The ``error.code`` of a ``$batch`` member's body, or ``""``."""
    err = body.get("error") if isinstance(body, dict) else None
    return str(err.get("code") or "") if isinstance(err, dict) else ""


def _json_body(resp: requests.Response) -> dict[str, Any]:
    """The JSON object of a 2xx response; ValueError when it is cut short or not JSON."""
    if resp.status_code in (202, 204) or not resp.content:
        return {}
    data = resp.json()
    if not isinstance(data, dict):
        raise SourceError("Microsoft Graph sent an unexpected response; check graph_endpoint")
    return data
