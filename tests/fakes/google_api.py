"""A local emulator of the parts of Gmail v1, Calendar v3 and Google's OAuth endpoints keepwarm uses.

The real google-api-python-client, google-auth and google-auth-oauthlib talk to it over HTTP on
127.0.0.1 (CONTRIBUTING.md, "Tests and emulators"). It keeps a mutable mailbox and calendar model,
serves the discovery documents shipped with the installed client (root URL pointed here), speaks
the batch multipart protocol exactly as the library expects, and validates every request against
the discovery document: an unknown path, method or parameter, a bad enum or integer, a missing
required parameter, ``q`` or ``format=full`` under a metadata-only token, ``syncToken`` combined
with ``timeMin``... is answered the way Google answers it *and* recorded in ``violations`` so the
test fails (``GoogleEmulator.check()``).

Faults: ``inject(rate)`` makes a share of requests (and of batch parts) fail with 500/503/429,
dropped connections or stalls longer than the client timeout; ``fail_next(n, kind)`` and
``fail_next_parts(n, kind)`` are the deterministic variants (kinds in :func:`fault_reply`: also
429 without Retry-After, 403 rate and daily limits, 400 failedPrecondition). Quota: Gmail units
per user per sliding minute and Calendar requests per user per minute, answered as
``quota_reply`` says (429 + Retry-After by default); Gmail's per-user concurrency limit over
requests and batch parts in flight (``gmail_concurrency``), with a per-request ``latency``.
Real-service behaviours the connectors must survive: list order that disagrees with dates
(``Mailbox.misplace``), empty history pages with a nextPageToken, exact-case
``metadataHeaders``, APIs not enabled in the Cloud project (``disabled_apis``), ``self`` meaning
the calendar's owner, scopes unticked at consent (``unticked``), password changes.
See docs/google.md for the list of what is modelled and what is not.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import random
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import Parser
from http.server import BaseHTTPRequestHandler
from typing import Any

from googleapiclient.discovery_cache import get_static_doc

from fakes.loopback import LoopbackServer

GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
CONTACTS_READONLY = "https://www.googleapis.com/auth/contacts.readonly"

# Gmail quota units per method (developers.google.com/gmail/api/reference/quota).
GMAIL_UNITS = {
    "gmail.users.getProfile": 1,
    "gmail.users.messages.list": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.history.list": 2,
    "gmail.users.labels.list": 1,
    "gmail.users.messages.send": 100,
}
MAX_RESULTS = {
    "gmail.users.messages.list": 500,
    "gmail.users.history.list": 500,
    "calendar.events.list": 2500,
    "calendar.calendarList.list": 250,
}
BATCH_LIMIT = {"gmail": 100, "calendar": 1000}
SYNC_TOKEN_EXCLUSIVE = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "DRAFT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
STATUS_TEXT = {
    200: ("OK", ""),
    400: ("Bad Request", "INVALID_ARGUMENT"),
    401: ("Unauthorized", "UNAUTHENTICATED"),
    403: ("Forbidden", "PERMISSION_DENIED"),
    404: ("Not Found", "NOT_FOUND"),
    410: ("Gone", ""),
    429: ("Too Many Requests", "RESOURCE_EXHAUSTED"),
    500: ("Internal Server Error", "INTERNAL"),
    501: ("Not Implemented", "UNIMPLEMENTED"),
    503: ("Service Unavailable", "UNAVAILABLE"),
}
FAULT_KINDS = ("500", "503", "429", "drop", "timeout")
API_NAMES = {"gmail": "Gmail API", "calendar": "Google Calendar API", "people": "People API"}
API_SERVICES = {
    "gmail": "gmail.googleapis.com",
    "calendar": "calendar-json.googleapis.com",
    "people": "people.googleapis.com",
}


class Reply:
    """An HTTP answer: status, headers and a JSON (or raw) body."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.headers = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        if isinstance(body, bytes):
            self.body = body
        else:
            self.body = json.dumps(body if body is not None else {}).encode()


def error(status: int, message: str, reason: str, domain: str = "global", **extra: Any) -> Reply:
    """Google's v1 error body."""
    err: dict[str, Any] = {"message": message, "domain": domain, "reason": reason, **extra}
    body: dict[str, Any] = {"code": status, "message": message, "errors": [err]}
    if STATUS_TEXT.get(status, ("", ""))[1]:
        body["status"] = STATUS_TEXT[status][1]
    return Reply(status, {"error": body})


def fault_reply(kind: str) -> Reply:
    """The answer of an injected fault (``fail_next``/``inject`` kinds other than drop/timeout).

    ``429`` carries ``Retry-After: 1``; ``429bare`` has none (Google often sends none);
    ``403user``/``403rate`` are the 403 forms of a rate limit (``userRateLimitExceeded``,
    ``rateLimitExceeded``), ``403daily`` the daily limit; ``400`` a request Google will never
    accept (``failedPrecondition``, e.g. a Workspace user without Gmail); ``500``/``503`` backend
    errors.
    """
    if kind in ("429", "429bare"):
        r = error(429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits")
        if kind == "429":
            r.headers["Retry-After"] = "1"
        return r
    if kind == "403user":
        return error(403, "User Rate Limit Exceeded", "userRateLimitExceeded", "usageLimits")
    if kind == "403rate":
        return error(403, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits")
    if kind == "403daily":
        return error(403, "Daily Limit Exceeded", "dailyLimitExceeded", "usageLimits")
    if kind == "400":
        return error(400, "Mail service not enabled", "failedPrecondition")
    return error(int(kind), "Backend Error", "backendError")


def too_many_concurrent() -> Reply:
    """Gmail's answer to a request or batch part over the per-user concurrency limit."""
    return error(429, "Too many concurrent requests for user", "rateLimitExceeded")


class Violation(Exception):
    """A request the real API would reject: answered with ``reply`` and recorded."""

    def __init__(self, reply: Reply, text: str) -> None:
        super().__init__(text)
        self.reply = reply


# -- models -------------------------------------------------------------------------------------
@dataclass
class Msg:
    id: str
    thread_id: str
    labels: set[str]
    internal_ms: int
    headers: list[tuple[str, str]]
    history_id: int
    list_key: tuple[int, str] | None = None  # where messages.list puts it, if not by its date

    def key(self) -> tuple[int, str]:
        return self.list_key or (self.internal_ms, self.id)

    def stub(self, with_labels: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "threadId": self.thread_id}
        if with_labels:
            out["labelIds"] = sorted(self.labels)
        return out


class Mailbox:
    """A Gmail mailbox with a history log (ids increase with random gaps) that can expire."""

    def __init__(self, address: str, rng: random.Random) -> None:
        self.address = address
        self.rng = rng
        self.messages: dict[str, Msg] = {}
        self.history: list[dict[str, Any]] = []
        self.history_id = 100_000
        self.min_history = 0
        # The next N history.list answers that have records to give are an empty page with a
        # nextPageToken instead (Gmail does this; gauteh/lieer issues 22, 24, 102).
        self.empty_history_pages = 0
        self.sent_raw: list[bytes] = []
        self._ids = itertools.count(0x18F0000000000000 + rng.randrange(1 << 20))
        self._order: list[Msg] | None = None

    def _bump(self) -> int:
        self.history_id += self.rng.randint(1, 4)
        return self.history_id

    def _record(self, kind: str, msg: Msg, labels: list[str] | None = None) -> None:
        hid = self._bump()
        msg.history_id = hid
        rec: dict[str, Any] = {"id": str(hid), "messages": [msg.stub(False)]}
        entry: dict[str, Any] = {"message": msg.stub(kind != "messagesDeleted")}
        if labels is not None:
            entry["labelIds"] = labels
        rec[kind] = [entry]
        self.history.append(rec)

    def add(
        self,
        headers: list[tuple[str, str]],
        *,
        labels: set[str] | None = None,
        internal_ms: int | None = None,
        thread_id: str | None = None,
        record: bool = True,
    ) -> Msg:
        mid = format(next(self._ids), "x")
        msg = Msg(
            mid,
            thread_id or mid,
            set(labels if labels is not None else {"INBOX", "UNREAD", "CATEGORY_PERSONAL"}),
            internal_ms if internal_ms is not None else int(time.time() * 1000),
            headers,
            self.history_id,
        )
        self.messages[mid] = msg
        self._order = None
        if record:
            self._record("messagesAdded", msg)
        else:
            msg.history_id = self._bump()
        return msg

    def delete(self, mid: str) -> None:
        msg = self.messages.pop(mid)
        self._order = None
        self._record("messagesDeleted", msg)

    def add_labels(self, mid: str, labels: list[str]) -> None:
        msg = self.messages[mid]
        msg.labels |= set(labels)
        self._record("labelsAdded", msg, labels)

    def remove_labels(self, mid: str, labels: list[str]) -> None:
        msg = self.messages[mid]
        msg.labels -= set(labels)
        self._record("labelsRemoved", msg, labels)

    def ordered(self) -> list[Msg]:
        """The order of messages.list: newest first, except messages listed out of place."""
        if self._order is None:
            self._order = sorted(self.messages.values(), key=Msg.key, reverse=True)
        return self._order

    def misplace(self, mid: str, at: int) -> None:
        """List message ``mid`` at position ``at`` whatever its date: Gmail does not guarantee
        newest-first order (google-api-nodejs-client issue 3508), e.g. for imported mail."""
        order = [m for m in self.ordered() if m.id != mid]
        ms, tie = order[at].key()
        self.messages[mid].list_key = (ms, tie + "~")  # sorts just before order[at]
        self._order = None

    def expire_history(self) -> None:
        self.min_history = self._bump()


@dataclass
class Calendar:
    entry: dict[str, Any]
    events: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)


class CalendarModel:
    """Calendars with events (already expanded instances) and sync tokens that can expire."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.calendars: dict[str, Calendar] = {}
        self.seq = 1
        self.min_token_seq = 0
        self._ids = itertools.count(1)
        self.add_calendar(address, summary=address, primary=True, accessRole="owner")

    def add_calendar(self, cal_id: str, **entry: Any) -> None:
        base = {
            "kind": "calendar#calendarListEntry",
            "id": cal_id,
            "summary": cal_id,
            "timeZone": "UTC",
            "accessRole": "reader",
        }
        self.calendars[cal_id] = Calendar({**base, **entry})

    def put_event(self, cal_id: str, event: dict[str, Any]) -> str:
        """Create or replace an event (an instance); returns its id."""
        ev = dict(event)
        ev.setdefault("id", f"ev{next(self._ids):06d}")
        ev.setdefault("kind", "calendar#event")
        ev.setdefault("status", "confirmed")
        ev.setdefault("eventType", "default")
        ev.setdefault("iCalUID", f"{ev['id']}@google.com")
        self.seq += 1
        ev["updated"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.calendars[cal_id].events[ev["id"]] = (self.seq, ev)
        return str(ev["id"])

    def cancel_event(self, cal_id: str, event_id: str) -> None:
        _, ev = self.calendars[cal_id].events[event_id]
        self.put_event(cal_id, {**ev, "status": "cancelled"})

    def expire_tokens(self) -> None:
        self.min_token_seq = self.seq + 1
        self.seq += 1


class ContactsModel:
    """The user's Google contacts (People API persons) and contact groups.

    Like Google: ``connections.list`` needs ``personFields``; ``pageSize`` is at most 1000; a
    ``nextSyncToken`` comes on the last page when ``requestSyncToken`` is set; a listing from a
    sync token returns the persons changed since, a deleted one as ``metadata.deleted``; a sync
    token older than ``expire_tokens()`` (Google keeps them seven days) is answered 400
    FAILED_PRECONDITION "Sync token is expired". Groups: the system groups plus the user's own
    (``groupType`` USER_CONTACT_GROUP); persons carry ``memberships``.
    """

    def __init__(self) -> None:
        self.people: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self.groups: dict[str, dict[str, Any]] = {
            f"contactGroups/{g}": {
                "resourceName": f"contactGroups/{g}",
                "groupType": "SYSTEM_CONTACT_GROUP",
                "name": g,
                "formattedName": g.title(),
            }
            for g in ("myContacts", "starred", "friends", "family", "coworkers")
        }
        self.seq = 1
        self.min_token_seq = 0
        self._ids = itertools.count(1)

    def add_group(self, name: str) -> str:
        rn = f"contactGroups/{next(self._ids):x}"
        self.groups[rn] = {
            "resourceName": rn,
            "groupType": "USER_CONTACT_GROUP",
            "name": name,
            "formattedName": name,
        }
        return rn

    def put(self, person: dict[str, Any]) -> str:
        """Create or replace a person; returns its resourceName (people/cNNN)."""
        p = dict(person)
        p.setdefault("resourceName", f"people/c{next(self._ids):06d}")
        p.setdefault("etag", secrets.token_hex(6))
        p.setdefault("metadata", {"sources": [{"type": "CONTACT"}]})
        self.seq += 1
        self.people[p["resourceName"]] = (self.seq, p)
        return str(p["resourceName"])

    def delete(self, rn: str) -> None:
        self.seq += 1
        self.people[rn] = (self.seq, None)

    def expire_tokens(self) -> None:
        self.min_token_seq = self.seq + 1
        self.seq += 1


# -- auth ---------------------------------------------------------------------------------------
@dataclass
class Grant:
    user: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class AccessToken:
    refresh_token: str
    scopes: tuple[str, ...]
    expires: float


def _when(t: dict[str, Any]) -> float:
    if "dateTime" in t:
        return datetime.fromisoformat(t["dateTime"].replace("Z", "+00:00")).timestamp()
    return datetime.fromisoformat(t["date"]).replace(tzinfo=UTC).timestamp()


def _rfc3339(value: str) -> float:
    if not re.search(r"(Z|[+-]\d\d:\d\d)$", value):
        raise ValueError(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _unb64(token: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


# -- discovery routing ----------------------------------------------------------------------------
@dataclass
class Route:
    api: str
    method_id: str
    http_method: str
    regex: re.Pattern[str]
    spec: dict[str, Any]
    common: dict[str, Any]


def _walk(resources: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for res in resources.values():
        out.extend(res.get("methods", {}).values())
        out.extend(_walk(res.get("resources", {})))
    return out


def _routes(api: str, version: str) -> tuple[dict[str, Any], list[Route]]:
    doc = get_static_doc(api, version)
    assert doc, f"no static discovery document for {api} {version}"
    d = json.loads(doc)
    prefix = "/" + d["servicePath"]
    routes = []
    for m in _walk(d["resources"]):
        pattern = re.sub(r"\{\+(\w+)\}", r"(?P<\1>.+)", m["path"])
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        routes.append(
            Route(
                api,
                m["id"],
                m["httpMethod"],
                re.compile("^" + prefix + pattern + "$"),
                m,
                d["parameters"],
            )
        )
    return d, routes


# -- the emulator ---------------------------------------------------------------------------------
class GoogleEmulator:
    """Gmail v1 + Calendar v3 + OAuth token endpoint for one user (``address``), on loopback."""

    CLIENT_ID = "keepwarm-test.apps.googleusercontent.com"
    CLIENT_SECRET = "emulator-secret"

    def __init__(
        self,
        *,
        address: str = "me@example.com",
        gmail_units_per_minute: int = 10_000_000,
        calendar_requests_per_minute: int = 1_000_000,
        seed: int = 1,
        access_token_lifetime: int = 3599,
        stall_seconds: float = 3.0,
        max_lifetime: float = 900.0,
        quota_window: float = 60.0,
        gmail_concurrency: int | None = None,
        latency: float = 0.0,
    ) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.fault_rng = random.Random(seed + 1)
        self.mailbox = Mailbox(address, self.rng)
        self.calendar = CalendarModel(address)
        self.contacts = ContactsModel()
        self.address = address
        self.gmail_units_per_minute = gmail_units_per_minute
        self.quota_window = quota_window  # seconds of the sliding quota window (60 for real)
        # How an over-quota request is answered: "429" (with Retry-After), "429bare" (none),
        # "403user" (userRateLimitExceeded) or "403rate" (rateLimitExceeded), both without.
        self.quota_reply = "429"
        # Gmail's per-user concurrency: requests and batch parts in flight at once beyond this
        # get 429 "Too many concurrent requests for user" (field reports: at 50-100 parts, and
        # sometimes above 20). None: unlimited.
        self.gmail_concurrency = gmail_concurrency
        self.latency = latency  # seconds every API request (a batch: all its parts) takes
        self.inflight: Counter[str] = Counter()
        self.max_inflight = 0
        self.concurrency_rejections = 0
        self.calendar_requests_per_minute = calendar_requests_per_minute
        self.people_requests_per_minute = 90  # "critical read requests per minute per user"
        self.access_token_lifetime = access_token_lifetime
        self.stall_seconds = stall_seconds
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.codes: dict[str, dict[str, str]] = {}
        # Scopes the user unticks on the consent page (granular consent): not granted, and the
        # token response's "scope" lists only what was granted.
        self.unticked: set[str] = set()
        self.auth_requests: list[dict[str, str]] = []
        self.violations: list[str] = []
        self.calls: Counter[str] = Counter()
        self.http_requests = 0
        self.units_used = 0
        self.quota_rejections = 0
        self.faults_injected: Counter[str] = Counter()
        self.fault_rate = 0.0
        self.part_fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = FAULT_KINDS
        self.project_number = "123456789012"  # the OAuth client's Cloud project
        self.disabled_apis: set[str] = set()  # "gmail" / "calendar": 403 accessNotConfigured
        self._forced: deque[str] = deque()
        self._forced_parts: deque[str] = deque()
        self._usage: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._used: dict[tuple[str, str], int] = {}
        self.gmail_doc, gmail_routes = _routes("gmail", "v1")
        self.calendar_doc, cal_routes = _routes("calendar", "v3")
        self.people_doc, people_routes = _routes("people", "v1")
        # ``v1/{+resourceName}`` matches any path: the longest literal paths are tried first
        people_routes.sort(key=lambda r: -len(re.sub(r"\(\?P<\w+>[^)]*\)", "", r.regex.pattern)))
        self.routes = gmail_routes + cal_routes + people_routes
        self.server = LoopbackServer(_Handler, owner=self, max_lifetime=max_lifetime)

    # -- lifecycle / addresses
    def start(self) -> GoogleEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> GoogleEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_endpoint(self) -> str:
        return self.server.url + "/"

    @property
    def token_uri(self) -> str:
        return self.server.url + "/token"

    def check(self) -> None:
        """Fail the test if any request was one the real API would reject."""
        assert not self.violations, "requests the real Google API would reject:\n" + "\n".join(
            self.violations[:20]
        )

    # -- credentials
    def grant(self, scopes: tuple[str, ...] = (GMAIL_METADATA, CALENDAR_READONLY)) -> str:
        """A new refresh token for the user with ``scopes``."""
        rt = "1//rt-" + secrets.token_urlsafe(12)
        with self.lock:
            self.grants[rt] = Grant(self.address, tuple(scopes))
        return rt

    def authorized_user_info(
        self, scopes: tuple[str, ...] = (GMAIL_METADATA, CALENDAR_READONLY)
    ) -> dict[str, Any]:
        """What ``Credentials.to_json()`` writes after consent, pointing at this emulator."""
        return {
            "refresh_token": self.grant(scopes),
            "client_id": self.CLIENT_ID,
            "client_secret": self.CLIENT_SECRET,
            "token_uri": self.token_uri,
            "scopes": list(scopes),
        }

    def client_config(self) -> dict[str, Any]:
        """An installed-app client secrets file whose endpoints are this emulator."""
        return {
            "installed": {
                "client_id": self.CLIENT_ID,
                "client_secret": self.CLIENT_SECRET,
                "auth_uri": self.url + "/auth",
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    def revoke_all(self) -> None:
        with self.lock:
            for g in self.grants.values():
                g.revoked = True
            self.tokens.clear()

    def change_password(self) -> None:
        """The user changed their password: Google revokes refresh tokens that carry a Gmail
        scope (others, e.g. calendar-only ones, keep working)."""
        with self.lock:
            for rt, g in self.grants.items():
                if any("/auth/gmail." in s or s == "https://mail.google.com/" for s in g.scopes):
                    g.revoked = True
                    for at in [a for a, t in self.tokens.items() if t.refresh_token == rt]:
                        del self.tokens[at]

    def unrevoke_all(self) -> None:
        with self.lock:
            for g in self.grants.values():
                g.revoked = False

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- faults
    def inject(
        self, rate: float, *, part_rate: float | None = None, kinds: tuple[str, ...] = FAULT_KINDS
    ) -> None:
        """Fail a share ``rate`` of HTTP requests (and ``part_rate`` of batch parts) at random."""
        self.fault_rate = rate
        self.part_fault_rate = rate if part_rate is None else part_rate
        self.fault_kinds = kinds

    def fail_next(self, n: int, kind: str = "503") -> None:
        with self.lock:
            self._forced.extend([kind] * n)

    def fail_next_parts(self, n: int, kind: str = "503") -> None:
        """The next ``n`` batch parts fail with ``kind`` (a :func:`fault_reply` kind)."""
        with self.lock:
            self._forced_parts.extend([kind] * n)

    def heal(self) -> None:
        with self.lock:
            self.fault_rate = self.part_fault_rate = 0.0
            self._forced.clear()
            self._forced_parts.clear()

    def _pick_fault(self) -> str | None:
        with self.lock:
            if self._forced:
                return self._forced.popleft()
            if self.fault_rate and self.fault_rng.random() < self.fault_rate:
                return self.fault_rng.choice(self.fault_kinds)
        return None

    # -- quota
    def _charge(self, api: str, user: str, units: int, limit: int) -> Reply | None:
        """Spend ``units`` in the user's sliding quota window, or answer as ``quota_reply`` says
        (429 + Retry-After by default)."""
        now, window = time.monotonic(), self.quota_window
        with self.lock:
            key = (api, user)
            q = self._usage.setdefault(key, deque())
            used = self._used.get(key, 0)
            while q and q[0][0] <= now - window:
                used -= q.popleft()[1]
            self._used[key] = used
            if used + units > limit:
                self.quota_rejections += 1
                freed, wait = 0, window
                for t, u in q:
                    freed += u
                    if used - freed + units <= limit:
                        wait = max(0.001, t + window - now)
                        break
                if self.quota_reply != "429":
                    return fault_reply(self.quota_reply)
                r = error(
                    429,
                    "User-rate limit exceeded. Retry after a while.",
                    "rateLimitExceeded",
                    domain="usageLimits",
                )
                r.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return r
            q.append((now, units))
            self._used[key] = used + units
            self.units_used += units if api == "gmail" else 0
        return None

    def _take_slots(self, user: str, n: int) -> int:
        """Of ``n`` requests (or batch parts) about to run for ``user``, how many Gmail takes on
        now; the others are refused for per-user concurrency."""
        with self.lock:
            limit = self.gmail_concurrency
            granted = n if limit is None else max(0, min(n, limit - self.inflight[user]))
            self.inflight[user] += granted
            self.max_inflight = max(self.max_inflight, self.inflight[user])
            self.concurrency_rejections += n - granted
            return granted

    def _release_slots(self, user: str, n: int) -> None:
        with self.lock:
            self.inflight[user] -= n

    def _user_of(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        with self.lock:
            tok = self.tokens.get(auth[7:]) if auth.lower().startswith("bearer ") else None
            grant = self.grants.get(tok.refresh_token) if tok else None
            return grant.user if grant else None

    # -- request handling
    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        in_batch: str | None = None,
    ) -> Reply:
        path, _, qs = target.partition("?")
        query = urllib.parse.parse_qs(qs, keep_blank_values=True)
        if method == "POST" and headers.get("x-http-method-override", "").upper() == "GET":
            method = "GET"
            query.update(urllib.parse.parse_qs(body.decode(), keep_blank_values=True))
            body = b""
        if in_batch is None and path in ("/batch", "/batch/gmail/v1", "/batch/calendar/v3"):
            return self._batch(path, headers, body)
        if in_batch is None and path == "/token":
            return self._token(body, headers)
        if in_batch is None and path == "/auth":
            return self._auth(query)
        try:
            return self._api(method, path, query, headers, body, in_batch)
        except Violation as v:
            with self.lock:
                self.violations.append(f"{method} {target}: {v}")
            return v.reply

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        found_path = False
        for r in self.routes:
            m = r.regex.match(path)
            if m:
                found_path = True
                if r.http_method == method:
                    return r, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
        if found_path:
            raise Violation(
                error(405, f"Method {method} not allowed", "methodNotAllowed"), "wrong HTTP method"
            )
        raise Violation(error(404, "Not Found", "notFound"), "no such API path")

    def _validate(
        self, route: Route, query: dict[str, list[str]], path_params: dict[str, str]
    ) -> dict[str, Any]:
        spec = route.spec.get("parameters", {})
        out: dict[str, Any] = dict(path_params)
        for name, values in query.items():
            p = spec.get(name) or route.common.get(name)
            if p is None or p.get("location") == "path":
                raise Violation(
                    error(
                        400,
                        f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.',
                        "invalidParameter",
                    ),
                    f"unknown parameter {name}",
                )
            if len(values) > 1 and not p.get("repeated"):
                raise Violation(
                    error(400, f"Parameter {name} given {len(values)} times", "invalidParameter"),
                    f"{name} is not repeated",
                )
            conv = [self._convert(route, name, p, v) for v in values]
            out[name] = conv if p.get("repeated") else conv[0]
        for name, p in spec.items():
            if p.get("required") and name not in out:
                raise Violation(
                    error(400, f"Required parameter: {name}", "required"), f"missing {name}"
                )
        return out

    def _convert(self, route: Route, name: str, p: dict[str, Any], v: str) -> Any:
        try:
            return self._convert_value(route, name, p, v)
        except _BadValue:
            raise Violation(
                error(400, f"Invalid value '{v}' for parameter {name}", "invalidParameter"),
                f"bad value for {name}: {v!r}",
            ) from None

    @staticmethod
    def _convert_value(route: Route, name: str, p: dict[str, Any], v: str) -> Any:
        bad = _BadValue()
        if p.get("type") == "boolean":
            if v not in ("true", "false"):
                raise bad
            return v == "true"
        if p.get("type") == "integer":
            if not re.fullmatch(r"-?\d+", v):
                raise bad
            n = int(v)
            hi = MAX_RESULTS.get(route.method_id) if name == "maxResults" else None
            lo = (
                int(p["minimum"])
                if "minimum" in p
                else (0 if p.get("format") == "uint32" else None)
            )
            if (hi is not None and n > hi) or (lo is not None and n < lo):
                raise bad
            return n
        if "enum" in p and v not in p["enum"]:
            raise bad
        return v

    def _authorize(self, route: Route, headers: dict[str, str]) -> AccessToken:
        auth = headers.get("authorization", "")
        with self.lock:
            tok = self.tokens.get(auth[7:]) if auth.lower().startswith("bearer ") else None
            if tok is None or tok.expires < time.time():
                raise _Reject(
                    error(
                        401,
                        "Invalid Credentials",
                        "authError",
                        locationType="header",
                        location="Authorization",
                    )
                )
        allowed = set(route.spec.get("scopes", []))
        if not allowed & set(tok.scopes):
            raise Violation(
                error(
                    403,
                    "Request had insufficient authentication scopes.",
                    "insufficientPermissions",
                ),
                f"scopes {tok.scopes} cannot call {route.method_id}",
            )
        return tok

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        in_batch: str | None,
    ) -> Reply:
        route, path_params = self._match(method, path)
        if in_batch is not None and not route.method_id.startswith(in_batch):
            raise Violation(
                error(400, "All requests in a batch must target the same API", "badRequest"),
                "mixed-API batch",
            )
        params = self._validate(route, query, path_params)
        if query.get("alt", ["json"]) != ["json"]:
            raise Violation(error(400, "only alt=json", "invalidParameter"), "alt")
        try:
            tok = self._authorize(route, headers)
        except _Reject as r:
            return r.reply
        user = self.grants[tok.refresh_token].user
        if route.api in self.disabled_apis:
            return self._access_not_configured(route.api)
        if route.api == "gmail" and params.get("userId") not in ("me", user):
            raise Violation(error(403, "Delegation denied", "forbidden"), "other userId")
        api = route.api
        slot = api == "gmail" and in_batch is None  # batch parts are counted by _batch
        if slot and not self._take_slots(user, 1):
            return too_many_concurrent()
        try:
            if in_batch is None and self.latency:
                time.sleep(self.latency)
            units = GMAIL_UNITS.get(route.method_id, 1) if api == "gmail" else 1
            limit = {
                "gmail": self.gmail_units_per_minute,
                "people": self.people_requests_per_minute,
            }.get(api, self.calendar_requests_per_minute)
            over = self._charge(api, user, units, limit)
            if over is not None:
                return over
            with self.lock:
                self.calls[route.method_id] += 1
            handler = getattr(self, "_" + route.method_id.replace(".", "_"), None)
            if handler is None:
                raise Violation(
                    error(501, "not emulated", "notImplemented"), f"{route.method_id} not emulated"
                )
            with self.lock:
                return handler(params, tok, body)  # type: ignore[no-any-return]
        finally:
            if slot:
                self._release_slots(user, 1)

    # -- People (contacts)
    def _people_contactGroups_list(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        groups = sorted(self.contacts.groups.values(), key=lambda g: g["resourceName"])
        return Reply(200, {"contactGroups": groups, "totalItems": len(groups)})

    def _people_people_connections_list(
        self, p: dict[str, Any], tok: AccessToken, body: bytes
    ) -> Reply:
        if p.get("resourceName") != "people/me":
            raise Violation(
                error(400, "only people/me has connections", "badRequest"), "resourceName"
            )
        if not p.get("personFields"):
            raise Violation(
                error(
                    400,
                    "personFields mask is required. Please specify one or more valid paths.",
                    "badRequest",
                ),
                "personFields missing",
            )
        size = int(p.get("pageSize") or 100)
        if not 1 <= size <= 1000:
            raise Violation(error(400, "pageSize must be 1..1000", "badRequest"), "pageSize")
        model = self.contacts
        since: int | None = None
        if p.get("syncToken"):
            since = int(_unb64(str(p["syncToken"])).get("seq", 0))
            if since < model.min_token_seq:
                return Reply(
                    400,
                    {
                        "error": {
                            "code": 400,
                            "message": "Sync token is expired. Clear local cache and retry call "
                            "without the sync token.",
                            "status": "FAILED_PRECONDITION",
                            "details": [
                                {
                                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                    "reason": "EXPIRED_SYNC_TOKEN",
                                    "domain": "people.googleapis.com",
                                }
                            ],
                        }
                    },
                )
        if p.get("pageToken"):
            page = _unb64(str(p["pageToken"]))
            offset, at = int(page["offset"]), int(page["at"])
        else:
            offset, at = 0, model.seq
        rows = sorted(
            (rn, seq, person)
            for rn, (seq, person) in model.people.items()
            if seq <= at
            and ((since is None and person is not None) or (since is not None and seq > since))
        )
        chunk = rows[offset : offset + size]
        out: dict[str, Any] = {
            "connections": [
                person
                if person is not None
                else {"resourceName": rn, "metadata": {"deleted": True}}
                for rn, _seq, person in chunk
            ],
            "totalPeople": len(rows),
            "totalItems": len(rows),
        }
        if offset + size < len(rows):
            out["nextPageToken"] = _b64({"offset": offset + size, "at": at})
        elif p.get("requestSyncToken"):
            out["nextSyncToken"] = _b64({"seq": at})
        return Reply(200, out)

    def _access_not_configured(self, api: str) -> Reply:
        """What Google answers for an API that is not enabled in the client's Cloud project."""
        service, project = API_SERVICES[api], self.project_number
        message = (
            f"{API_NAMES[api]} has not been used in project {project} before or it is disabled. "
            f"Enable it by visiting https://console.developers.google.com/apis/api/{service}/"
            f"overview?project={project} then retry. If you enabled this API recently, wait a "
            "few minutes for the action to propagate to our systems and retry."
        )
        r = error(
            403,
            message,
            "accessNotConfigured",
            domain="usageLimits",
            extendedHelp="https://console.developers.google.com",
        )
        body = json.loads(r.body)
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {"service": service, "consumer": f"projects/{project}"},
            }
        ]
        return Reply(403, body)

    # -- Gmail
    def _metadata_only(self, tok: AccessToken) -> bool:
        return GMAIL_METADATA in tok.scopes

    def _gmail_users_getProfile(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        mb = self.mailbox
        return Reply(
            200,
            {
                "emailAddress": mb.address,
                "messagesTotal": len(mb.messages),
                "threadsTotal": len({m.thread_id for m in mb.messages.values()}),
                "historyId": str(mb.history_id),
            },
        )

    def _gmail_users_labels_list(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        return Reply(
            200, {"labels": [{"id": x, "name": x, "type": "system"} for x in SYSTEM_LABELS]}
        )

    def _gmail_users_messages_list(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        if "q" in p and self._metadata_only(tok):
            raise Violation(
                error(403, "Metadata scope does not support 'q' parameter", "forbidden"),
                "q under gmail.metadata",
            )
        want = set(p.get("labelIds", []))
        spam_trash = p.get("includeSpamTrash", False)
        size = p.get("maxResults", 100) or 100
        after = tuple(_unb64(p["pageToken"])) if p.get("pageToken") else None
        matching = [
            m
            for m in self.mailbox.ordered()
            if want <= m.labels and (spam_trash or not m.labels & {"SPAM", "TRASH"})
        ]
        start = 0
        if after is not None:
            start = next((i for i, m in enumerate(matching) if m.key() < after), len(matching))
        page = matching[start : start + size]
        out: dict[str, Any] = {"resultSizeEstimate": len(matching)}
        if page:
            out["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + size < len(matching):
            out["nextPageToken"] = _b64(list(page[-1].key()))
        return Reply(200, out)

    def _gmail_users_messages_get(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        fmt = p.get("format", "full")
        if fmt in ("full", "raw") and self._metadata_only(tok):
            raise Violation(
                error(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden"),
                f"format={fmt} under gmail.metadata",
            )
        m = self.mailbox.messages.get(p["id"])
        if m is None:
            return error(404, "Requested entity was not found.", "notFound")
        out: dict[str, Any] = {
            **m.stub(),
            "historyId": str(m.history_id),
            "internalDate": str(m.internal_ms),
            "sizeEstimate": 1000,
        }
        if fmt != "minimal":
            # Exact-case matching: whether Gmail matches metadataHeaders case-insensitively is
            # unverified (one report says it does not), so the emulator takes the strict reading.
            wanted = set(p.get("metadataHeaders", []))
            hdrs = [{"name": n, "value": v} for n, v in m.headers if not wanted or n in wanted]
            out["payload"] = {"mimeType": "text/plain", "headers": hdrs}
        return Reply(200, out)

    def _gmail_users_history_list(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        mb = self.mailbox
        if not re.fullmatch(r"\d+", p["startHistoryId"]):
            raise Violation(
                error(400, "Invalid startHistoryId", "invalidArgument"), "startHistoryId"
            )
        start = int(p["startHistoryId"])
        if start < mb.min_history:
            return error(404, "Requested entity was not found.", "notFound")
        types = {t[0].lower() + t[1:] for t in p.get("historyTypes", [])}
        kinds = {
            "messageAdded": "messagesAdded",
            "messageDeleted": "messagesDeleted",
            "labelAdded": "labelsAdded",
            "labelRemoved": "labelsRemoved",
        }
        wanted = {kinds[t] for t in types} if types else set(kinds.values())
        if p.get("pageToken"):
            start = int(_unb64(p["pageToken"]))
        recs = [r for r in mb.history if int(r["id"]) > start and wanted & set(r)]
        if p.get("labelId"):
            recs = [
                r
                for r in recs
                if any(
                    p["labelId"] in e["message"].get("labelIds", [])
                    for k in wanted
                    if k in r
                    for e in r[k]
                )
            ]
        size = p.get("maxResults", 100) or 100
        if recs and mb.empty_history_pages > 0:
            mb.empty_history_pages -= 1
            return Reply(200, {"historyId": str(mb.history_id), "nextPageToken": _b64(start)})
        page = recs[:size]
        out: dict[str, Any] = {"historyId": str(mb.history_id)}
        if page:
            out["history"] = page
        if len(recs) > size:
            out["nextPageToken"] = _b64(int(page[-1]["id"]))
        return Reply(200, out)

    def _gmail_users_messages_send(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        try:
            raw = base64.urlsafe_b64decode(json.loads(body)["raw"] + "==")
        except (ValueError, KeyError, TypeError):
            raise Violation(
                error(400, "Invalid raw", "invalidArgument"), "send without raw"
            ) from None
        self.mailbox.sent_raw.append(raw)
        hdrs = list(Parser().parsestr(raw.decode("utf-8", "replace"), headersonly=True).items())
        m = self.mailbox.add(hdrs, labels={"SENT"})
        return Reply(200, m.stub())

    # -- Calendar
    def _calendar_calendarList_list(
        self, p: dict[str, Any], tok: AccessToken, body: bytes
    ) -> Reply:
        entries = [c.entry for c in self.calendar.calendars.values()]
        size = p.get("maxResults", 100) or 100
        start = int(_unb64(p["pageToken"])) if p.get("pageToken") else 0
        out: dict[str, Any] = {
            "kind": "calendar#calendarList",
            "items": entries[start : start + size],
        }
        if start + size < len(entries):
            out["nextPageToken"] = _b64(start + size)
        else:
            out["nextSyncToken"] = _b64(["cl", self.calendar.seq])
        return Reply(200, out)

    def _calendar_events_list(self, p: dict[str, Any], tok: AccessToken, body: bytes) -> Reply:
        model = self.calendar
        cal_id = "primary" if p["calendarId"] == "primary" else p["calendarId"]
        cal = model.calendars.get(model.address if cal_id == "primary" else cal_id)
        if cal is None:
            return error(404, "Not Found", "notFound")
        if p.get("orderBy") == "startTime" and not p.get("singleEvents"):
            raise Violation(
                error(
                    400,
                    "The requested ordering is not available for the particular query.",
                    "invalid",
                ),
                "orderBy without singleEvents",
            )
        items: list[tuple[int, dict[str, Any]]] = sorted(
            cal.events.values(), key=lambda se: se[1]["id"]
        )
        since: int | None = None
        if "syncToken" in p:
            clash = [k for k in SYNC_TOKEN_EXCLUSIVE if k in p]
            if clash:
                raise Violation(
                    error(400, f"Sync token cannot be used with {clash[0]}", "invalid"),
                    f"syncToken with {clash}",
                )
            try:
                _kind, since = _unb64(p["syncToken"])
            except ValueError:
                raise Violation(
                    error(400, "Invalid sync token value.", "invalid"), "bad syncToken"
                ) from None
            if since < model.min_token_seq:
                return Reply(
                    410,
                    {
                        "error": {
                            "errors": [
                                {
                                    "domain": "calendar",
                                    "reason": "fullSyncRequired",
                                    "message": "Sync token is no longer valid, a full sync is required.",
                                    "locationType": "parameter",
                                    "location": "syncToken",
                                }
                            ],
                            "code": 410,
                            "message": "Sync token is no longer valid, a full sync is required.",
                        }
                    },
                )
            items = [(s, e) for s, e in items if s > since]
        else:
            lo = _rfc3339(p["timeMin"]) if "timeMin" in p else None
            hi = _rfc3339(p["timeMax"]) if "timeMax" in p else None
            if lo is not None and hi is not None and lo >= hi:
                raise Violation(
                    error(400, "The specified time range is empty.", "timeRangeEmpty"),
                    "timeMin >= timeMax",
                )
            items = [
                (s, e)
                for s, e in items
                if (p.get("showDeleted") or e["status"] != "cancelled")
                and (lo is None or _when(e["end"]) > lo)
                and (hi is None or _when(e["start"]) < hi)
            ]
        size = p.get("maxResults", 250) or 250
        start = int(_unb64(p["pageToken"])) if p.get("pageToken") else 0
        page = items[start : start + size]
        out: dict[str, Any] = {
            "kind": "calendar#events",
            "summary": cal.entry["summary"],
            "timeZone": cal.entry.get("timeZone", "UTC"),
            "accessRole": cal.entry.get("accessRole"),
            "items": [self._event_view(e, cal.entry["id"]) for _, e in page],
        }
        if start + size < len(items):
            out["nextPageToken"] = _b64(start + size)
        else:
            out["nextSyncToken"] = _b64(["ev", model.seq])
        return Reply(200, out)

    @staticmethod
    def _event_view(e: dict[str, Any], cal_id: str) -> dict[str, Any]:
        """The copy of an event on calendar ``cal_id``: ``self`` marks the attendee (and the
        organizer) that *is this calendar* (discovery doc: "the calendar on which this copy of
        the event appears"), not the signed-in user: on a colleague's calendar, the colleague."""
        if e["status"] == "cancelled":
            return {"kind": "calendar#event", "id": e["id"], "status": "cancelled"}
        out = json.loads(json.dumps(e))
        for who in [*(out.get("attendees") or []), out.get("organizer") or {}]:
            who.pop("self", None)
            if who.get("email") == cal_id:
                who["self"] = True
        return out

    # -- batch
    def _batch(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        ctype = headers.get("content-type", "")
        if not ctype.startswith("multipart/mixed"):
            with self.lock:
                self.violations.append(f"POST {path}: batch without multipart/mixed")
            return error(400, "Batch requests must be multipart/mixed", "badRequest")
        msg = Parser().parsestr(f"Content-Type: {ctype}\r\n\r\n" + body.decode("utf-8"))
        parts = msg.get_payload()
        api = "calendar" if path.endswith("calendar/v3") else "gmail"
        if not isinstance(parts, list) or len(parts) > BATCH_LIMIT[api]:
            with self.lock:
                self.violations.append(f"POST {path}: {len(parts)} parts exceed the batch limit")
            return error(400, "Too many requests in batch.", "badRequest")
        boundary = "batch_" + uuid.uuid4().hex
        out: list[str] = []
        # Gmail runs a batch's parts concurrently: each holds a per-user slot while it runs.
        user = self._user_of(headers) if api == "gmail" else None
        granted = self._take_slots(user, len(parts)) if user is not None else len(parts)
        try:
            if self.latency:
                time.sleep(self.latency)
            replies = [
                self._batch_part(part.get_payload(), headers, api)
                if n < granted
                else (too_many_concurrent(), too_many_concurrent().body.decode())
                for n, part in enumerate(parts)
            ]
        finally:
            if user is not None:
                self._release_slots(user, granted)
        for part, (inner_status, inner_body) in zip(parts, replies, strict=True):
            cid = part["Content-ID"] or ""
            reason = STATUS_TEXT.get(inner_status.status, ("Error", ""))[0]
            resp_cid = "<response-" + cid[1:] if cid.startswith("<") else cid
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {resp_cid}\r\n\r\n"
                f"HTTP/1.1 {inner_status.status} {reason}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in inner_status.headers.items())
                + f"\r\n{inner_body}\r\n"
            )
        text = "".join(out) + f"--{boundary}--\r\n"
        return Reply(200, text.encode(), {"Content-Type": f"multipart/mixed; boundary={boundary}"})

    def _batch_part(self, payload: str, outer: dict[str, str], api: str) -> tuple[Reply, str]:
        head, _, body = payload.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        method, target, _ = lines[0].split(" ", 2)
        hdrs = {k.lower(): v for k, v in outer.items() if not k.lower().startswith("content-")}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        with self.lock:
            forced = self._forced_parts.popleft() if self._forced_parts else None
        if forced is not None:
            self.faults_injected["part" + forced] += 1
            r = fault_reply(forced)
        elif self.part_fault_rate and self.fault_rng.random() < self.part_fault_rate:
            kind = self.fault_rng.choice(["429", "500", "503"])
            self.faults_injected["part" + kind] += 1
            r = (
                error(429, "Too many concurrent requests for user", "rateLimitExceeded")
                if kind == "429"
                else error(int(kind), "Backend Error", "backendError")
            )
        else:
            r = self.handle(method, target, hdrs, body.encode(), in_batch=api)
        return r, r.body.decode()

    # -- OAuth
    def _token(self, body: bytes, headers: dict[str, str]) -> Reply:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):  # client_secret_basic, as requests-oauthlib sends it
            cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", urllib.parse.unquote_plus(cid))
            form.setdefault("client_secret", urllib.parse.unquote_plus(secret))
        invalid_grant = Reply(
            400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
        )
        if (
            form.get("client_id") != self.CLIENT_ID
            or form.get("client_secret") != self.CLIENT_SECRET
        ):
            return Reply(
                401,
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            )
        with self.lock:
            if form.get("grant_type") == "refresh_token":
                rt = form.get("refresh_token", "")
                g = self.grants.get(rt)
                if g is None or g.revoked:
                    return invalid_grant
                return Reply(200, self._issue(rt, g.scopes))
            if form.get("grant_type") == "authorization_code":
                return self._exchange_code(form, invalid_grant)
        return Reply(400, {"error": "unsupported_grant_type"})

    def _issue(self, rt: str, scopes: tuple[str, ...]) -> dict[str, Any]:
        at = "ya29.emu-" + secrets.token_urlsafe(16)
        self.tokens[at] = AccessToken(rt, scopes, time.time() + self.access_token_lifetime)
        return {
            "access_token": at,
            "expires_in": self.access_token_lifetime,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }

    def _exchange_code(self, form: dict[str, str], invalid: Reply) -> Reply:
        c = self.codes.pop(form.get("code", ""), None)
        if c is None or form.get("redirect_uri") != c["redirect_uri"]:
            return invalid
        verifier = form.get("code_verifier", "")
        digest = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .decode()
            .rstrip("=")
        )
        if c.get("code_challenge") and digest != c["code_challenge"]:
            return Reply(
                400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
            )
        scopes = tuple(x for x in c["scope"].split() if x not in self.unticked)
        rt = "1//rt-" + secrets.token_urlsafe(12)
        self.grants[rt] = Grant(self.address, scopes)
        return Reply(200, {**self._issue(rt, scopes), "refresh_token": rt})

    def _auth(self, query: dict[str, list[str]]) -> Reply:
        q = {k: v[0] for k, v in query.items()}
        with self.lock:
            self.auth_requests.append(q)
        if q.get("client_id") != self.CLIENT_ID or q.get("response_type") != "code":
            return Reply(400, {"error": "invalid_request"})
        code = "4/emu-" + secrets.token_urlsafe(10)
        with self.lock:
            self.codes[code] = {
                "redirect_uri": q.get("redirect_uri", ""),
                "scope": q.get("scope", ""),
                "code_challenge": q.get("code_challenge", ""),
            }
        sep = "&" if "?" in q.get("redirect_uri", "") else "?"
        loc = (
            q.get("redirect_uri", "")
            + sep
            + urllib.parse.urlencode(
                {"state": q.get("state", ""), "code": code, "scope": q.get("scope", "")}
            )
        )
        return Reply(302, b"", {"Location": loc})

    # -- convenience for tests
    def add_mail(
        self,
        n: int,
        *,
        labels: set[str] | None = None,
        start_ms: int | None = None,
        step_ms: int = 60_000,
        record: bool = True,
        sender: str = "alice@example.org",
    ) -> list[Msg]:
        """Add ``n`` distinct messages, newest last (each ``step_ms`` after the previous)."""
        with self.lock:
            base = start_ms if start_ms is not None else int(time.time() * 1000) - n * step_ms
            out = []
            for i in range(n):
                ms = base + i * step_ms
                k = len(self.mailbox.messages) + self.rng.randrange(1 << 30)
                lab = set(labels) if labels is not None else {"INBOX", "CATEGORY_PERSONAL"}
                frm, to = (self.address, sender) if "SENT" in lab else (sender, self.address)
                hdrs = [
                    ("From", f"Sender {k} <{frm}>"),
                    ("To", to),
                    ("Subject", f"Message {k}"),
                    (
                        "Date",
                        datetime.fromtimestamp(ms / 1000, UTC).strftime(
                            "%a, %d %b %Y %H:%M:%S +0000"
                        ),
                    ),
                    ("Message-ID", f"<m{k}.{ms}@emu.example>"),
                    ("X-Body-Secret", "never requested"),
                ]
                out.append(self.mailbox.add(hdrs, labels=lab, internal_ms=ms, record=record))
            return out

    def message_ids(
        self, *, exclude: tuple[str, ...] = ("SPAM", "TRASH", "DRAFT", "CHAT")
    ) -> set[str]:
        """Message-IDs (without brackets) keepwarm should hold."""
        with self.lock:
            out = set()
            for m in self.mailbox.messages.values():
                if m.labels & set(exclude):
                    continue
                mid = next((v for n, v in m.headers if n.lower() == "message-id"), None)
                if mid:
                    out.add(mid.strip("<>"))
            return out


class _BadValue(Exception):
    pass


class _Reject(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        emu: GoogleEmulator = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client died mid-upload (kill -9): nothing reached the API
            self.close_connection = True
            return
        with emu.lock:
            emu.http_requests += 1
        path = self.path.split("?", 1)[0]
        fault = None if path in ("/token", "/auth") else emu._pick_fault()
        if fault is not None:
            emu.faults_injected[fault] += 1
            if fault == "drop":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            if fault == "timeout":
                time.sleep(emu.stall_seconds)
                self.close_connection = True
                return
            r = fault_reply(fault)
        else:
            hdrs = {k.lower(): v for k, v in self.headers.items()}
            r = emu.handle(self.command, self.path, hdrs, body)
        self.send_response(r.status)
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(r.body)))
        self.end_headers()
        self.wfile.write(r.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve
