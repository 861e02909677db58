"""WebDAV collections (CalDAV calendars, CardDAV address books) through the ``caldav`` library.

``caldav``'s :class:`DAVClient` does the HTTP: basic auth, TLS with a custom CA file, timeouts,
and the DAV error bodies (``preconditions``). keepwarm speaks the few requests it needs through it
itself, the same for calendars and address books (``caldav`` has no CardDAV, and its own sync
helper falls back to fetching everything with a made-up token that it then never trades for a
real one again):

discovery
    ``current-user-principal`` at the configured URL (then at ``/.well-known/caldav`` or
    ``carddav``), the principal's ``calendar-home-set`` / ``addressbook-home-set``, and one
    depth-1 PROPFIND of that home listing every collection with its ``DAV:sync-token`` and
    ``CS:getctag``: one request tells which collections changed at all.
changes
    the ``sync-collection`` REPORT (RFC 6578) from the last token: changed members with their
    ETags, removed members, the new token. A token the server no longer knows
    (``DAV:valid-sync-token``) is :class:`TokenInvalid`; a server without the report is
    :class:`NoSyncReport`, and the caller compares ETags from a depth-1 PROPFIND instead.
data
    ``calendar-multiget`` / ``addressbook-multiget`` REPORTs, 100 members at a time.

Every failure becomes a connector error with a sentence a user can act on: a refused password is
:class:`AuthRequired`, an unreachable or failing server :class:`TransientError`, a URL that is not
a DAV server, an untrusted certificate or a missing collection :class:`SourceError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from keepwarm.connectors.base import AuthRequired, SourceError, TransientError

log = logging.getLogger(__name__)

DAV = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
CS_NS = "http://calendarserver.org/ns/"
MULTIGET_CHUNK = 100


def _escape(text: str) -> str:
    """``text`` as XML character data."""
    from xml.sax.saxutils import escape  # it imports urllib.request and ssl: only when syncing

    return escape(text)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass(frozen=True)
class Flavour:
    """What differs between CalDAV and CardDAV."""

    service: str  # caldav | carddav
    what: str  # calendar | address book (the word users see)
    ns: str
    home: str  # the principal's home-set property
    collection: str  # the resourcetype of a collection of this flavour
    multiget: str
    data: str  # the member data property


CALDAV = Flavour(
    "caldav",
    "calendar",
    CALDAV_NS,
    "calendar-home-set",
    "calendar",
    "calendar-multiget",
    "calendar-data",
)
CARDDAV = Flavour(
    "carddav",
    "address book",
    CARDDAV_NS,
    "addressbook-home-set",
    "addressbook",
    "addressbook-multiget",
    "address-data",
)


class TokenInvalid(Exception):
    """The server no longer knows the sync token (RFC 6578 ``DAV:valid-sync-token``)."""


class NoSyncReport(Exception):
    """The collection does not support the sync-collection REPORT."""


class Gone(Exception):
    """The collection (or the home) is not there any more (404/410)."""


@dataclass(frozen=True)
class DavSettings:
    """One DAV account: where, who, how to get the password (never stored), TLS and timeout.

    ``collections`` chooses collections by display name, last path segment or URL (empty: all).
    """

    url: str
    username: str
    password: Callable[[], str]
    timeout: float = 60.0
    ca_file: Path | None = None
    collections: tuple[str, ...] = ()
    password_hint: str = "the configured password"


@dataclass(frozen=True)
class Collection:
    """One calendar or address book, as its home lists it."""

    url: str
    name: str
    sync_token: str | None = None
    ctag: str | None = None

    @property
    def state(self) -> str | None:
        """What changes whenever a member changes (None: the server says nothing)."""
        if self.sync_token:
            return f"t:{self.sync_token}"
        return f"c:{self.ctag}" if self.ctag else None

    def matches(self, wanted: str) -> bool:
        w = wanted.strip().rstrip("/")
        segment = unquote(urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1])
        return (
            w in (self.name, segment, self.url.rstrip("/")) or w.casefold() == self.name.casefold()
        )


@dataclass
class Changes:
    """Members changed since a token (href -> ETag), members removed, and the new token.

    ``complete``: the listing holds every member (a first sync or an ETag comparison), so a
    member known before and missing from it is gone.
    """

    changed: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    token: str | None = None
    complete: bool = False


class DavSession:
    """The requests keepwarm makes to one DAV account. ``requests`` counts them."""

    def __init__(self, settings: DavSettings, flavour: Flavour) -> None:
        self.settings = settings
        self.flavour = flavour
        self.requests = 0
        self._client: Any = None
        parts = urlsplit(settings.url)
        self.host = parts.hostname or settings.url

    # -- transport ---------------------------------------------------------------------------
    def _dav(self) -> Any:
        if self._client is None:
            from caldav.davclient import DAVClient

            self._client = DAVClient(
                url=self.settings.url,
                username=self.settings.username,
                password=self.settings.password(),
                auth_type="basic",
                timeout=max(1, int(self.settings.timeout)),
                ssl_verify_cert=str(self.settings.ca_file) if self.settings.ca_file else True,
                enable_rfc6764=False,
                rate_limit_handle=False,
            )
        return self._client

    def close(self) -> None:
        """Close the pooled connections (a later request opens new ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _send(
        self, method: str, url: str, body: str, depth: int | None, *, what: str
    ) -> tuple[int, Any]:
        """One request; returns (status, parsed XML root or None). Raises connector errors."""
        client = self._dav()
        headers = {"Content-Type": 'application/xml; charset="utf-8"'}
        if depth is not None:
            headers["Depth"] = str(depth)
        self.requests += 1
        with self._errors(what):
            response = client.request(url, method, body, headers)
        status = int(response.status)
        if status in (404, 410):
            raise Gone(url)
        if status == 501:  # a method or report the server does not implement
            raise _Refused(status, url)
        if status >= 500:
            raise TransientError(
                f"the {self.flavour.service.upper()} server {self.host} failed ({status}) while "
                f"{what}; keepwarm tries again later"
            )
        if status >= 400:
            raise _Refused(status, url)
        return status, getattr(response, "tree", None)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from caldav.lib import error
        from caldav.lib.http_sync import requests as http

        server = f"the {self.flavour.service.upper()} server {self.host}"
        try:
            yield
        except error.RateLimitError as exc:
            raise TransientError(
                f"{server} asks keepwarm to slow down (while {what})",
                retry_after=exc.retry_after_seconds,
            ) from None
        except error.AuthorizationError as exc:
            if _q(DAV, "valid-sync-token") in exc.preconditions:
                raise TokenInvalid() from None
            if exc.status == 403:
                raise _Refused(403, str(exc.url or ""), exc.preconditions) from None
            raise AuthRequired(
                f"{server} refused the user name or password",
                fix=f"check username and {self.settings.password_hint} for this account "
                "(iCloud and Fastmail need an app password), then run 'keepwarm sync'",
            ) from None
        except error.DAVError as exc:
            raise TransientError(f"{server} failed while {what}: {exc.reason}") from None
        except http.exceptions.SSLError as exc:
            raise SourceError(
                f"cannot make a secure connection to {server}: {_ssl_reason(exc)}",
                fix="set ca_file to the certificate authority that signed the server's "
                "certificate, or check the URL",
            ) from None
        except http.exceptions.Timeout:
            raise TransientError(
                f"{server} did not answer within {int(self.settings.timeout)} s while {what}"
            ) from None
        except http.exceptions.ConnectionError as exc:
            raise TransientError(f"cannot reach {server}: {_connection_reason(exc)}") from None
        except http.exceptions.RequestException as exc:
            raise TransientError(f"{server} failed while {what}: {type(exc).__name__}") from None

    def _propfind(self, url: str, props: list[tuple[str, str]], depth: int, what: str) -> Any:
        body = _propfind_body(props)
        return self._send("PROPFIND", url, body, depth, what=what)[1]

    # -- discovery ---------------------------------------------------------------------------
    def find_home(self) -> str:
        """The URL of the collections' home (calendar-home-set or addressbook-home-set)."""
        f = self.flavour
        props = [(DAV, "current-user-principal"), (f.ns, f.home), (DAV, "resourcetype")]
        base = self.settings.url
        candidates = [base, urljoin(base, f"/.well-known/{f.service}")]
        for url in candidates:
            try:
                root = self._propfind(url, props, 0, "looking for your collections")
            except (Gone, _Refused):
                continue
            found = _responses(root, url)
            home = _first_href(found, _q(f.ns, f.home), url)
            if home:
                return home
            principal = _first_href(found, _q(DAV, "current-user-principal"), url)
            if principal:
                try:
                    proot = self._propfind(principal, [(f.ns, f.home)], 0, "reading your principal")
                except (Gone, _Refused):
                    continue
                home = _first_href(_responses(proot, principal), _q(f.ns, f.home), principal)
                if home:
                    return home
            if any(_is_collection(r, f) for r in found.values()):
                return url  # the URL names a collection (or a home) itself
        raise SourceError(
            f"no {f.service.upper()} {f.what}s found at {self.settings.url}",
            fix=f"check the url of this account: it should be the server's {f.service.upper()} "
            "address (see docs/dav.md for Fastmail, iCloud, Nextcloud and Radicale)",
        )

    def collections(self, home: str) -> list[Collection]:
        """Every collection of this flavour under ``home`` (one request), or Gone."""
        f = self.flavour
        props = [
            (DAV, "resourcetype"),
            (DAV, "displayname"),
            (DAV, "sync-token"),
            (CS_NS, "getctag"),
        ]
        root = self._propfind(home, props, 1, f"listing your {f.what}s")
        out: list[Collection] = []
        for href, props_of in _responses(root, home).items():
            if not _is_collection(props_of, f):
                continue
            name = (_text(props_of.get(_q(DAV, "displayname"))) or "").strip()
            if not name:
                name = unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])
            out.append(
                Collection(
                    url=href,
                    name=name,
                    sync_token=_text(props_of.get(_q(DAV, "sync-token"))) or None,
                    ctag=_text(props_of.get(_q(CS_NS, "getctag"))) or None,
                )
            )
        return sorted(out, key=lambda c: c.url)

    def choose(self, found: list[Collection]) -> list[Collection]:
        """The configured collections (all when none are named); SourceError naming the
        available ones when a configured name matches none."""
        wanted = self.settings.collections
        if not wanted:
            return found
        missing = [w for w in wanted if not any(c.matches(w) for c in found)]
        if missing:
            names = ", ".join(f'"{c.name}"' for c in found) or "none"
            raise SourceError(
                f"{self.flavour.what} {', '.join(repr(m) for m in missing)} not found on "
                f"{self.host}; the account has: {names}",
                fix=f"correct the {self.flavour.what} names in the config",
            )
        return [c for c in found if any(c.matches(w) for w in wanted)]

    def probe(self) -> list[Collection]:
        """Log in and find the chosen collections (``keepwarm doctor``); connector errors."""
        try:
            return self.choose(self.collections(self.find_home()))
        except Gone:
            raise SourceError(
                f"the {self.flavour.what}s of {self.settings.username} vanished during the check",
                fix="run keepwarm doctor again",
            ) from None

    # -- changes -----------------------------------------------------------------------------
    def changes(self, collection: str, token: str | None) -> Changes:
        """Members changed since ``token`` (all members when None), following truncated pages."""
        out = Changes(complete=not token)
        current = token
        for _page in range(1000):
            root = self._sync_report(collection, current)
            truncated = _add_changes(out, root, collection)
            new = _text(root.find(_q(DAV, "sync-token"))) if root is not None else None
            out.token = new or current
            if not truncated or not new or new == current:
                return out
            current = new
        return out

    def _sync_report(self, collection: str, token: str | None) -> Any:
        """One page of the sync-collection REPORT (RFC 6578) from ``token``."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{_escape(token or '')}</D:sync-token>"
            "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
            "</D:sync-collection>"
        )
        try:
            _status, root = self._send("REPORT", collection, body, 0, what="reading changes")
        except _Refused as exc:
            if _q(DAV, "valid-sync-token") in exc.preconditions:
                raise TokenInvalid() from None
            raise NoSyncReport() from None
        return root

    def etags(self, collection: str) -> Changes:
        """Every member and its ETag (one depth-1 PROPFIND): the comparison for servers without
        the sync-collection REPORT."""
        root = self._propfind(collection, [(DAV, "getetag")], 1, "listing members")
        out = Changes(complete=True)
        for href, props_of in _responses(root, collection).items():
            if href.rstrip("/") == collection.rstrip("/"):
                continue
            out.changed[href] = _text(props_of.get(_q(DAV, "getetag"))) or ""
        return out

    def fetch(self, collection: str, hrefs: list[str]) -> Iterator[tuple[str, str, str | None]]:
        """``(href, etag, data)`` for each member, by multiget 100 at a time; data is None for
        a member that vanished meanwhile."""
        f = self.flavour
        for i in range(0, len(hrefs), MULTIGET_CHUNK):
            chunk = hrefs[i : i + MULTIGET_CHUNK]
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f'<X:{f.multiget} xmlns:D="DAV:" xmlns:X="{f.ns}">'
                f"<D:prop><D:getetag/><X:{f.data}/></D:prop>"
                + "".join(f"<D:href>{_escape(urlsplit(h).path or h)}</D:href>" for h in chunk)
                + f"</X:{f.multiget}>"
            )
            try:
                _status, root = self._send("REPORT", collection, body, 1, what="reading members")
            except _Refused:
                raise SourceError(
                    f"the server {self.host} refused to hand out the members of {collection}",
                    fix="check that this user may read the collection",
                ) from None
            seen: set[str] = set()
            for href, props_of, code in _members(root, collection):
                data = _text(props_of.get(_q(f.ns, f.data)))
                if code >= 400 or data is None:
                    continue
                seen.add(href)
                yield href, _text(props_of.get(_q(DAV, "getetag"))) or "", data
            for href in chunk:
                if href not in seen:
                    yield href, "", None


class _Refused(Exception):
    """A 4xx answer other than 401/404/410: permissions, an unsupported report, a bad request."""

    def __init__(self, status: int, url: str, preconditions: list[str] | None = None) -> None:
        super().__init__(f"{status} {url}")
        self.status = status
        self.preconditions = list(preconditions or ())


# -- XML --------------------------------------------------------------------------------------------
def _propfind_body(props: list[tuple[str, str]]) -> str:
    prefixes = {DAV: "D", CALDAV_NS: "C", CARDDAV_NS: "CR", CS_NS: "CS"}
    inner = "".join(f"<{prefixes[ns]}:{name}/>" for ns, name in props)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV_NS}" xmlns:CR="{CARDDAV_NS}" '
        f'xmlns:CS="{CS_NS}"><D:prop>{inner}</D:prop></D:propfind>'
    )


def _text(el: Any) -> str | None:
    if el is None:
        return None
    return "".join(el.itertext()).strip()


def _status_code(text: str | None) -> int:
    parts = (text or "").split()
    try:
        return int(parts[1]) if len(parts) > 1 else 200
    except ValueError:
        return 200


def _members(root: Any, base: str) -> Iterator[tuple[str, dict[str, Any], int]]:
    """``(absolute href, {property tag: element}, status)`` of each response of a multistatus:
    the properties found (2xx propstats), and the response's own status when it has one."""
    if root is None:
        return
    for resp in root.iter(_q(DAV, "response")):
        href_el = resp.find(_q(DAV, "href"))
        if href_el is None or not (href_el.text or "").strip():
            continue
        href = urljoin(base, href_el.text.strip())
        code = _status_code(_text(resp.find(_q(DAV, "status"))))
        props: dict[str, Any] = {}
        for propstat in resp.iter(_q(DAV, "propstat")):
            if _status_code(_text(propstat.find(_q(DAV, "status")))) >= 300:
                continue
            prop = propstat.find(_q(DAV, "prop"))
            if prop is not None:
                for child in prop:
                    if isinstance(child.tag, str):
                        props[child.tag] = child
        yield href, props, code


def _responses(root: Any, base: str) -> dict[str, dict[str, Any]]:
    return {href: props for href, props, code in _members(root, base) if code < 400}


def _first_href(found: dict[str, dict[str, Any]], tag: str, base: str) -> str | None:
    for props in found.values():
        el = props.get(tag)
        if el is not None:
            href = el.find(_q(DAV, "href"))
            text = str(href.text or "").strip() if href is not None else ""
            if text:
                return urljoin(base, text)
    return None


def _is_collection(props: dict[str, Any], flavour: Flavour) -> bool:
    rt = props.get(_q(DAV, "resourcetype"))
    return rt is not None and rt.find(_q(flavour.ns, flavour.collection)) is not None


def _ssl_reason(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
        return "its certificate is not trusted"
    if "hostname" in text.lower():
        return "its certificate is for another host name"
    return "the TLS handshake failed"


def _connection_reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
        return "the host name does not resolve"
    if "reset" in text or "aborted" in text or "closed" in text or "remote end" in text:
        return "the server closed the connection"
    return "the connection failed"


def _add_changes(out: Changes, root: Any, collection: str) -> bool:
    """Add one page of a sync-collection REPORT to ``out``; True when the server truncated it
    (507 on the collection itself: ask again from the new token)."""
    truncated = False
    for href, props_of, code in _members(root, collection):
        if code == 507 and href.rstrip("/") == collection.rstrip("/"):
            truncated = True
        elif code in (404, 410) and _q(DAV, "getetag") not in props_of:
            out.changed.pop(href, None)
            out.removed.append(href)
        elif href.rstrip("/") != collection.rstrip("/"):
            etag = _text(props_of.get(_q(DAV, "getetag"))) or ""
            out.changed[href] = etag
            if href in out.removed:
                out.removed.remove(href)
    return truncated
