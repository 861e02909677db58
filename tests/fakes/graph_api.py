"""A loopback emulator of the Microsoft identity platform (as msal uses it) and Microsoft Graph.

Identity (under ``/{tenant}/``): OpenID configuration, device-code endpoint, token endpoint with
the device-code and refresh-token grants; responses carry ``client_info`` and an ``id_token`` so
msal creates a cache Account, and echo the requested scopes (as the Microsoft identity
platform does).

Graph (under ``/v1.0/``): a mutable mailbox (folder tree, messages) and primary calendar;
``mailFolders`` listing, ``childFolders``, per-folder ``messages/delta`` with absolute
``@odata.nextLink``/``@odata.deltaLink`` back to this server, ``Prefer: odata.maxpagesize``,
``$select``, ``@removed``, delta tokens that can be expired (410 ``SyncStateNotFound``),
``/me/messages/{id}``, ``$batch`` (<= 20), ``calendarView/delta`` (bodies included, as Graph
does; occurrences of a series with only their times, the master holding the rest),
``/me/events/{id}``, ``sendMail`` (202). Faults: 429 with fractional, long or no ``Retry-After``,
503, 500, dropped connections, slow answers (client timeouts), truncated bodies; at random
(``fault_rate``) or forced (``force``); Outlook's limit of four concurrent requests per mailbox,
``$batch`` members included; expired delta state as 410 + Location or 400; replayed delta items;
calendar windows over 1825 days; mailboxes not enabled for REST. Contacts (with Contacts.Read):
the default folder ``contacts``, ``contactFolders``, per-folder ``contacts/delta``. See
docs/microsoft.md.

msal needs an https authority: connectors are configured with ``authority_host = url`` (plain
http on loopback) and use ``https://login.test`` towards msal, rewritten by their http client.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import itertools
import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fakes.loopback import LoopbackServer

PUBLIC_AUTHORITY = "https://login.test"
ROOT = "msgfolderroot"
WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "archive": "Archive",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "outbox": "Outbox",
}
RESERVED_SCOPES = {"openid", "profile", "offline_access"}
BATCH_PARALLEL = 4  # $batch members Graph sends to Outlook at once
OCCURRENCE_FIELDS = ("@odata.type", "id", "type", "seriesMasterId", "start", "end")
FAULTS = ("429", "503", "500", "drop", "timeout", "truncate")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(v: str) -> datetime:
    dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def recipient(address: str, name: str = "") -> dict[str, Any]:
    return {"emailAddress": {"name": name or address.split("@")[0], "address": address}}


@dataclass
class FakeFolder:
    id: str
    name: str
    parent: str
    wellknown: str | None = None


class GraphEmulator:
    """The model plus the server. Use as a context manager; everything is thread-safe."""

    def __init__(
        self,
        *,
        user: str = "me@contoso.test",
        tenant: str = "common",
        client_id: str = "11111111-2222-3333-4444-555555555555",
        default_page: int = 10,
        max_page: int = 999,
        access_token_lifetime: int = 3600,
        seed: int = 0,
    ) -> None:
        self.user = user
        self.tenant = tenant
        self.client_id = client_id
        self.default_page = default_page
        self.max_page = max_page
        self.access_token_lifetime = access_token_lifetime
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self._ids = itertools.count(1)
        self.seq = 0
        # mailbox
        self.folders: dict[str, FakeFolder] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.folder_log: dict[str, list[tuple[int, str]]] = {}
        for wk, name in WELL_KNOWN.items():
            self.create_folder(name, ROOT, wellknown=wk)
        # calendar
        self.events: dict[str, dict[str, Any]] = {}
        self.event_log: list[tuple[int, str]] = []
        # contacts: the default folder (well-known name "contacts") and the user's own folders
        self.contact_folders: dict[str, str] = {"contacts": "Contacts"}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.contact_log: dict[str, list[tuple[int, str]]] = {"contacts": []}
        # delta state
        self.generation = 0
        self.rounds: dict[str, dict[str, Any]] = {}
        self.deltas: dict[str, dict[str, Any]] = {}
        self.filter_cap = 5000
        # identity
        self.uid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.utid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.device_codes: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.access_tokens: dict[str, tuple[float, str]] = {}
        self.auto_approve = False
        self.consented: set[str] = set()  # scopes the user agreed to at sign-in
        self.auth_broken = False
        self.token_requests: Counter[str] = Counter()
        # faults and observation
        self.fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = FAULTS
        self.forced: list[str] = []
        self.retry_after: str | None = "0.05"  # None: throttled without a Retry-After header
        self.sync_state_status = 410  # or 400: expired delta state (code syncStateNotFound)
        self.replay = 0  # every delta page repeats its first N items at its end (replays)
        self.latency = 0.0
        self.timeout_sleep = 1.5
        self.concurrency_limit = 4
        self.inflight = 0
        self.max_inflight = 0
        self.concurrency_rejections = 0
        self.graph_requests = 0
        self.faults_injected: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()
        self.selected: set[str] = set()
        self.prefers: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self.tls_url: str | None = None
        # False: an unlicensed, inactive or on-premises mailbox; every mailbox route answers
        # 404 MailboxNotEnabledForRESTAPI (python-o365 issue 438).
        self.mailbox_enabled = True
        self.public_authority = PUBLIC_AUTHORITY  # the https host msal is given
        self.server = LoopbackServer(_Handler, owner=self, max_connections=48)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.tls_url or self.server.url

    def use_tls(self, server_context: Any) -> None:
        """Serve HTTPS (a test CA's certificate for 127.0.0.1); msal then talks to it directly."""
        httpd = self.server.httpd
        httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
        self.tls_url = f"https://127.0.0.1:{self.server.port}"
        self.public_authority = self.tls_url

    @property
    def graph_endpoint(self) -> str:
        return f"{self.url}/v1.0"

    def __enter__(self) -> GraphEmulator:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def _next_id(self, prefix: str) -> str:
        n = next(self._ids)
        return f"{prefix}{_b64url(n.to_bytes(6, 'big'))}-{n % 7}="

    def _tick(self) -> int:
        self.seq += 1
        return self.seq

    # -- mailbox model ---------------------------------------------------------------------------
    def folder_id(self, name_or_id: str) -> str:
        with self.lock:
            if name_or_id in self.folders:
                return name_or_id
            for f in self.folders.values():
                if f.wellknown == name_or_id.lower():
                    return f.id
            raise KeyError(name_or_id)

    def create_folder(self, name: str, parent: str = ROOT, *, wellknown: str | None = None) -> str:
        with self.lock:
            fid = self._next_id("AQMkF")
            parent_id = parent if parent == ROOT else self.folder_id(parent)
            self.folders[fid] = FakeFolder(fid, name, parent_id, wellknown)
            self.folder_log[fid] = []
            return fid

    def rename_folder(self, folder: str, name: str) -> None:
        with self.lock:
            self.folders[self.folder_id(folder)].name = name

    def delete_folder(self, folder: str) -> None:
        """As Outlook does: the folder moves under Deleted Items."""
        with self.lock:
            self.folders[self.folder_id(folder)].parent = self.folder_id("deleteditems")

    def hard_delete_folder(self, folder: str) -> None:
        with self.lock:
            fid = self.folder_id(folder)
            for mid in [m for m, v in self.messages.items() if v["parentFolderId"] == fid]:
                del self.messages[mid]
            del self.folders[fid]

    def add_message(
        self,
        folder: str = "inbox",
        *,
        sender: str = "alice@example.com",
        to: Iterable[str] = ("me@contoso.test",),
        cc: Iterable[str] = (),
        bcc: Iterable[str] = (),
        subject: str = "Hello",
        sent: datetime | None = None,
        message_id: str | None = None,
        is_draft: bool = False,
        inference: str = "focused",
        conversation: str | None = None,
    ) -> str:
        with self.lock:
            fid = self.folder_id(folder)
            mid = self._next_id("AAkALg")
            when = sent or datetime.now(UTC) - timedelta(hours=self.rng.randint(1, 2000))
            msg = {
                "id": mid,
                "parentFolderId": fid,
                "from": recipient(sender),
                "sender": recipient(sender),
                "toRecipients": [recipient(a) for a in to],
                "ccRecipients": [recipient(a) for a in cc],
                "bccRecipients": [recipient(a) for a in bcc],
                "replyTo": [],
                "sentDateTime": _iso(when),
                "receivedDateTime": _iso(when + timedelta(seconds=3)),
                "internetMessageId": message_id or f"<{uuid.uuid4().hex}@mail.example.com>",
                "conversationId": conversation or f"AAQk{uuid.uuid4().hex[:16]}",
                "subject": subject,
                "isDraft": is_draft,
                "isRead": False,
                "inferenceClassification": inference,
                "body": {"contentType": "html", "content": "<p>SECRET BODY TEXT</p>"},
                "bodyPreview": "SECRET BODY TEXT",
                "uniqueBody": {"contentType": "html", "content": "SECRET BODY TEXT"},
            }
            self.messages[mid] = msg
            self.folder_log[fid].append((self._tick(), mid))
            return mid

    def add_bulk(self, n: int, folders: Iterable[str] = ("inbox", "sentitems")) -> list[str]:
        """``n`` synthetic messages spread over ``folders`` and the last two years."""
        names = list(folders)
        now = datetime.now(UTC)
        ids = []
        with self.lock:
            for i in range(n):
                folder = names[i % len(names)]
                other = f"person{self.rng.randint(1, 300)}@partner{self.rng.randint(1, 40)}.example"
                sent_box = folder == "sentitems"
                ids.append(
                    self.add_message(
                        folder,
                        sender=self.user if sent_box else other,
                        to=[other] if sent_box else [self.user],
                        subject=f"Subject {i}",
                        sent=now - timedelta(minutes=self.rng.randint(10, 700_000)),
                    )
                )
        return ids

    def move_message(self, mid: str, folder: str) -> None:
        with self.lock:
            msg = self.messages[mid]
            old, new = msg["parentFolderId"], self.folder_id(folder)
            msg["parentFolderId"] = new
            self.folder_log[old].append((self._tick(), mid))
            self.folder_log[new].append((self._tick(), mid))

    def delete_message(self, mid: str) -> None:
        """Hard delete (shift+delete, or emptied from Deleted Items)."""
        with self.lock:
            msg = self.messages.pop(mid)
            self.folder_log[msg["parentFolderId"]].append((self._tick(), mid))

    def update_message(self, mid: str, **fields: Any) -> None:
        with self.lock:
            msg = self.messages[mid]
            msg.update(fields)
            self.folder_log[msg["parentFolderId"]].append((self._tick(), mid))

    def folder_path(self, fid: str) -> str:
        parts = []
        while fid != ROOT:
            f = self.folders[fid]
            parts.append(f.name)
            fid = f.parent
        return "/".join(reversed(parts))

    def synced_folder_ids(self) -> set[str]:
        """Folders a correct client syncs: the tree minus Junk/Deleted/Drafts/Outbox subtrees."""
        with self.lock:
            skip = {
                f.id
                for f in self.folders.values()
                if f.wellknown in ("junkemail", "deleteditems", "drafts", "outbox")
            }
            out = set()
            for fid in self.folders:
                cur, ok = fid, True
                while cur != ROOT:
                    if cur in skip:
                        ok = False
                        break
                    cur = self.folders[cur].parent
                if ok:
                    out.add(fid)
            return out

    def expected_message_ids(self, since: datetime | None = None) -> set[str]:
        """Normalized Message-IDs a correct client stores."""
        synced = self.synced_folder_ids()
        with self.lock:
            return {
                m["internetMessageId"].strip("<>")
                for m in self.messages.values()
                if m["parentFolderId"] in synced
                and not m["isDraft"]
                and (since is None or _parse_iso(m["receivedDateTime"]) >= since)
            }

    # -- calendar model --------------------------------------------------------------------------
    def add_event(
        self,
        *,
        subject: str = "Meeting",
        start: datetime | None = None,
        duration: timedelta = timedelta(hours=1),
        organizer: str = "alice@example.com",
        attendees: Iterable[tuple[str, str, str]] = (),
        my_response: str = "accepted",
        is_organizer: bool = False,
        show_as: str = "busy",
        event_type: str = "singleInstance",
        is_cancelled: bool = False,
        series_master: str | None = None,
        ical_uid: str | None = None,
        all_day: bool = False,
    ) -> str:
        """``attendees``: (address, response, type) with type required|optional|resource."""
        with self.lock:
            eid = self._next_id("AAMkE")
            begin = start or datetime.now(UTC) - timedelta(days=3)
            ev = {
                "@odata.type": "#microsoft.graph.event",
                "id": eid,
                "iCalUId": ical_uid or f"040000008200E00074C5B7101A82E008{uuid.uuid4().hex}",
                "subject": subject,
                "type": event_type,
                "seriesMasterId": series_master,
                "isCancelled": is_cancelled,
                "isOrganizer": is_organizer,
                "isAllDay": all_day,
                "showAs": show_as,
                "start": {
                    "dateTime": begin.strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                    "timeZone": "UTC",
                },
                "end": {
                    "dateTime": (begin + duration).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                    "timeZone": "UTC",
                },
                "organizer": recipient(organizer),
                "responseStatus": {"response": my_response, "time": "0001-01-01T00:00:00Z"},
                "attendees": [
                    {
                        "type": kind,
                        "status": {"response": resp, "time": "0001-01-01T00:00:00Z"},
                        "emailAddress": {"name": addr.split("@")[0], "address": addr},
                    }
                    for addr, resp, kind in attendees
                ],
                "body": {"contentType": "html", "content": "<p>SECRET AGENDA dial-in 555</p>"},
                "bodyPreview": "SECRET AGENDA dial-in 555",
                "changeKey": uuid.uuid4().hex[:16],
            }
            self.events[eid] = ev
            self.event_log.append((self._tick(), eid))
            return eid

    def add_series(
        self,
        *,
        start: datetime,
        count: int = 4,
        every: timedelta = timedelta(days=7),
        **fields: Any,
    ) -> tuple[str, list[str]]:
        """A recurring series: its master (start/end of the first occurrence, as Graph lists it)
        and ``count`` occurrences ``every`` apart, which Outlook fills from the master.
        ``fields`` are :meth:`add_event`'s. Returns ``(master id, occurrence ids)``."""
        with self.lock:
            master = self.add_event(start=start, event_type="seriesMaster", **fields)
            uid = self.events[master]["iCalUId"]
            occurrences = [
                self.add_event(
                    start=start + i * every,
                    event_type="occurrence",
                    series_master=master,
                    ical_uid=uid,
                    **fields,
                )
                for i in range(count)
            ]
            return master, occurrences

    def update_event(self, eid: str, **fields: Any) -> None:
        """Change an event. Changing a series master changes its occurrences too (not its
        exceptions), and they show up in the next delta, as in Outlook."""
        with self.lock:
            ev = self.events[eid]
            ev.update(fields)
            ev["changeKey"] = uuid.uuid4().hex[:16]
            self.event_log.append((self._tick(), eid))
            if ev["type"] == "seriesMaster":
                for occ in self.events.values():
                    if occ.get("seriesMasterId") == eid and occ["type"] == "occurrence":
                        occ.update(fields)
                        self.event_log.append((self._tick(), occ["id"]))

    def make_exception(self, eid: str, **fields: Any) -> None:
        """One occurrence changed on its own (other attendees, another time...)."""
        self.update_event(eid, type="exception", **fields)

    def delete_event(self, eid: str) -> None:
        """Delete an event; deleting a series master deletes the whole series."""
        with self.lock:
            gone = [eid] + [o for o, ev in self.events.items() if ev.get("seriesMasterId") == eid]
            for e in gone:
                del self.events[e]
                self.event_log.append((self._tick(), e))

    # -- control ---------------------------------------------------------------------------------
    # -- contacts --------------------------------------------------------------------------------
    def add_contact_folder(self, name: str) -> str:
        with self.lock:
            fid = self._next_id("cfolder")
            self.contact_folders[fid] = name
            self.contact_log[fid] = []
            return fid

    def delete_contact_folder(self, fid: str) -> None:
        with self.lock:
            del self.contact_folders[fid]
            for cid in [c for c, v in self.contacts.items() if v["parentFolderId"] == fid]:
                del self.contacts[cid]

    def add_contact(self, folder: str = "contacts", **fields: Any) -> str:
        """A contact as Graph renders it (``emailAddresses`` as addresses or {name, address})."""
        with self.lock:
            cid = self._next_id("contact")
            emails = [
                e if isinstance(e, dict) else {"name": "", "address": e}
                for e in fields.pop("emailAddresses", [])
            ]
            self.contacts[cid] = {
                "id": cid,
                "parentFolderId": folder,
                "displayName": "",
                "emailAddresses": emails,
                "businessPhones": ["+1 555 0100"],
                "homeAddress": {"street": "1 Main St"},
                "personalNotes": "private",
                "categories": [],
                **fields,
            }
            self.contact_log[folder].append((self._tick(), cid))
            return cid

    def update_contact(self, cid: str, **fields: Any) -> None:
        with self.lock:
            self.contacts[cid].update(fields)
            self.contact_log[self.contacts[cid]["parentFolderId"]].append((self._tick(), cid))

    def delete_contact(self, cid: str) -> None:
        with self.lock:
            folder = self.contacts.pop(cid)["parentFolderId"]
            self.contact_log[folder].append((self._tick(), cid))

    def contacts_delta(
        self, fid: str, query: dict[str, str], page_size: int
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``/me/contactFolders/{id}/contacts/delta``: like the mail delta, per folder."""
        base = f"{self.graph_endpoint}/me/contactFolders/{quote(fid, safe='')}/contacts/delta"
        gone = _sync_state_gone(self.sync_state_status, f"{base}?$deltatoken=")
        with self.lock:
            if fid not in self.contact_folders:
                return 404, _error("ErrorItemNotFound", "The specified object was not found."), {}
            if "$skiptoken" in query:
                rid, _, off = query["$skiptoken"].rpartition(".")
                rnd = self.rounds.get(rid)
                if rnd is None or rnd["gen"] != self.generation or rnd["scope"] != fid:
                    return gone
            elif query.get("$deltatoken"):
                d = self.deltas.get(query["$deltatoken"])
                if d is None or d["gen"] != self.generation or d["scope"] != fid:
                    return gone
                ids = self._changed(self.contact_log[fid], d["seq"])
                rid, off = self._start_round("contacts", fid, ids, {"select": d["select"]}), "0"
            else:
                select = [x for x in query.get("$select", "").split(",") if x]
                self.selected.update(select)
                ids = [c for c, v in self.contacts.items() if v["parentFolderId"] == fid]
                rid, off = self._start_round("contacts", fid, ids, {"select": select}), "0"
            rnd = self.rounds[rid]
            start = int(off)
            value: list[dict[str, Any]] = []
            for cid in rnd["ids"][start : start + page_size]:
                c = self.contacts.get(cid)
                if c is None or c["parentFolderId"] != fid:
                    value.append({"id": cid, "@removed": {"reason": "deleted"}})
                else:
                    sel = rnd["select"]
                    value.append({k: v for k, v in c.items() if not sel or k in sel or k == "id"})
            out: dict[str, Any] = {"value": value}
            if start + page_size < len(rnd["ids"]):
                out["@odata.nextLink"] = f"{base}?$skiptoken={rid}.{start + page_size}"
            else:
                token = uuid.uuid4().hex
                self.deltas[token] = {
                    "scope": fid,
                    "seq": rnd["end_seq"],
                    "gen": rnd["gen"],
                    "select": rnd["select"],
                }
                out["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
            return 200, out, {}

    def expire_tokens(self) -> None:
        """Every delta/skip token issued so far becomes unknown (410 SyncStateNotFound)."""
        with self.lock:
            self.generation += 1
            self.rounds.clear()
            self.deltas.clear()

    def force(self, *kinds: str) -> None:
        with self.lock:
            self.forced.extend(kinds)

    def heal(self) -> None:
        with self.lock:
            self.forced.clear()
            self.fault_rate = 0.0
            self.auth_broken = False

    def approve_all(self) -> None:
        with self.lock:
            for dc in self.device_codes.values():
                dc["approved"] = True

    # -- identity --------------------------------------------------------------------------------
    def _issue_tokens(self, scope: str) -> dict[str, Any]:
        at, rt = f"at-{uuid.uuid4().hex}", f"rt-{uuid.uuid4().hex}"
        self.access_tokens[at] = (time.time() + self.access_token_lifetime, scope)
        self.refresh_tokens[rt] = scope
        now = int(time.time())
        claims = {
            "aud": self.client_id,
            "iss": f"{self.public_authority}/{self.utid}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Test User",
            "oid": self.uid,
            "preferred_username": self.user,
            "sub": self.uid,
            "tid": self.utid,
            "ver": "2.0",
        }
        id_token = ".".join(
            (
                _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()),
                _b64url(json.dumps(claims).encode()),
                "",
            )
        )
        echoed = " ".join(s for s in scope.split() if s not in RESERVED_SCOPES)
        return {
            "token_type": "Bearer",
            "scope": echoed,
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": at,
            "refresh_token": rt,
            "id_token": id_token,
            "client_info": _b64url(json.dumps({"uid": self.uid, "utid": self.utid}).encode()),
        }

    def check_bearer(self, header: str | None) -> str | None:
        """The token's scope string if valid, else None."""
        if not header or not header.startswith("Bearer "):
            return None
        entry = self.access_tokens.get(header[7:])
        if entry is None or entry[0] < time.time() or self.auth_broken:
            return None
        return entry[1]

    def choose_fault(self) -> str | None:
        with self.lock:
            if self.forced:
                return self.forced.pop(0)
            if self.fault_rate and self.rng.random() < self.fault_rate:
                return self.rng.choice(self.fault_kinds)
            return None

    # -- delta rounds ----------------------------------------------------------------------------
    def _start_round(self, kind: str, scope: str, ids: list[str], extra: dict[str, Any]) -> str:
        rid = uuid.uuid4().hex[:12]
        self.rounds[rid] = {
            "kind": kind,
            "scope": scope,
            "ids": ids,
            "end_seq": self.seq,
            "gen": self.generation,
            **extra,
        }
        return rid

    def _changed(self, log: list[tuple[int, str]], since: int) -> list[str]:
        order: dict[str, int] = {}
        for seq, mid in log:
            if seq > since:
                order.pop(mid, None)
                order[mid] = seq
        return list(order)

    def mail_delta(
        self, fid: str, query: dict[str, str], page_size: int
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        base = f"{self.graph_endpoint}/me/mailFolders/{quote(fid, safe='')}/messages/delta"
        gone = _sync_state_gone(self.sync_state_status, f"{base}?$deltatoken=")
        with self.lock:
            if "$skiptoken" in query:
                rid, _, off = query["$skiptoken"].rpartition(".")
                rnd = self.rounds.get(rid)
                if rnd is None or rnd["gen"] != self.generation or rnd["scope"] != fid:
                    return gone
                return 200, self._mail_page(rid, int(off), page_size), {}
            if query.get("$deltatoken"):
                d = self.deltas.get(query["$deltatoken"])
                if d is None or d["gen"] != self.generation or d["scope"] != fid:
                    return gone
                ids = self._changed(self.folder_log[fid], d["seq"])
                rid = self._start_round(
                    "mail", fid, ids, {"select": d["select"], "filter": d["filter"]}
                )
                return 200, self._mail_page(rid, 0, page_size), {}
            select = [s for s in query.get("$select", "").split(",") if s]
            self.selected.update(select)
            ids = [m for m, v in self.messages.items() if v["parentFolderId"] == fid]
            flt = query.get("$filter")
            if flt:
                cutoff = _parse_iso(flt.split(" ge ", 1)[1].strip())
                ids = [m for m in ids if _parse_iso(self.messages[m]["receivedDateTime"]) >= cutoff]
                ids.sort(key=lambda m: self.messages[m]["receivedDateTime"], reverse=True)
                ids = ids[: self.filter_cap]
            rid = self._start_round("mail", fid, ids, {"select": select, "filter": flt})
            return 200, self._mail_page(rid, 0, page_size), {}

    def _mail_page(self, rid: str, off: int, size: int) -> dict[str, Any]:
        rnd = self.rounds[rid]
        fid = rnd["scope"]
        chunk = rnd["ids"][off : off + size]
        value = []
        for mid in chunk:
            msg = self.messages.get(mid)
            if msg is None or msg["parentFolderId"] != fid:
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": mid,
                        "@removed": {"reason": "deleted"},
                    }
                )
            else:
                value.append(self.render_message(msg, rnd["select"]))
        value += json.loads(json.dumps(value[: self.replay]))  # the same changes again
        base = f"{self.graph_endpoint}/me/mailFolders/{quote(fid, safe='')}/messages/delta"
        out: dict[str, Any] = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#Collection(message)",
            "value": value,
        }
        if off + size < len(rnd["ids"]):
            out["@odata.nextLink"] = f"{base}?$skiptoken={rid}.{off + size}"
        else:
            token = uuid.uuid4().hex
            self.deltas[token] = {
                "scope": fid,
                "seq": rnd["end_seq"],
                "gen": rnd["gen"],
                "select": rnd["select"],
                "filter": rnd["filter"],
            }
            out["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        return out

    def render_message(self, msg: dict[str, Any], select: list[str]) -> dict[str, Any]:
        out = {
            "@odata.type": "#microsoft.graph.message",
            "@odata.etag": 'W/"CQAAABYAAAA"',
            "id": msg["id"],
        }
        fields = select or [k for k in msg if k not in ("body", "uniqueBody")]
        for f in fields:
            if f in msg:
                out[f] = msg[f]
        return out

    def calendar_delta(
        self, query: dict[str, str], page_size: int
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        base = f"{self.graph_endpoint}/me/calendarView/delta"
        with self.lock:
            if "$skiptoken" in query:
                rid, _, off = query["$skiptoken"].rpartition(".")
                rnd = self.rounds.get(rid)
                if rnd is None or rnd["gen"] != self.generation:
                    return _sync_state_gone(self.sync_state_status, f"{base}?$deltatoken=")
                return 200, self._cal_page(rid, int(off), page_size), {}
            if query.get("$deltatoken"):
                d = self.deltas.get(query["$deltatoken"])
                if d is None or d["gen"] != self.generation or d["scope"] != "calendar":
                    return _sync_state_gone(self.sync_state_status, f"{base}?$deltatoken=")
                ids = self._changed(self.event_log, d["seq"])
                rid = self._start_round("cal", "calendar", ids, {"window": d["window"]})
                return 200, self._cal_page(rid, 0, page_size), {}
            if "startDateTime" not in query or "endDateTime" not in query:
                return (
                    400,
                    _error("ErrorInvalidParameter", "startDateTime and endDateTime are required"),
                    {},
                )
            window = (query["startDateTime"], query["endDateTime"])
            if _parse_iso(window[1]) - _parse_iso(window[0]) > timedelta(days=1825):
                # microsoft-graph-docs issue 6284
                return (
                    400,
                    _error(
                        "ErrorInvalidRequest",
                        "Your request can't be completed. The range between the start and end "
                        "dates is greater than the allowed range. Maximum number of days: 1825",
                    ),
                    {},
                )
            ids = [e for e in self.events if self._in_window(self.events[e], window)]
            rid = self._start_round("cal", "calendar", ids, {"window": window})
            return 200, self._cal_page(rid, 0, page_size), {}

    def _in_window(self, ev: dict[str, Any], window: tuple[str, str]) -> bool:
        lo, hi = _parse_iso(window[0]), _parse_iso(window[1])
        start = _parse_iso(ev["start"]["dateTime"][:19])
        end = _parse_iso(ev["end"]["dateTime"][:19])
        return start < hi and end > lo

    def _cal_page(self, rid: str, off: int, size: int) -> dict[str, Any]:
        rnd = self.rounds[rid]
        chunk = rnd["ids"][off : off + size]
        value = []
        for eid in chunk:
            ev = self.events.get(eid)
            if ev is None or not self._in_window(ev, rnd["window"]):
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.event",
                        "id": eid,
                        "@removed": {"reason": "deleted"},
                    }
                )
            elif ev["type"] == "occurrence":
                # microsoft-graph-docs issues 7632 and 22197: an occurrence in calendarView/delta
                # carries only these; organizer, attendees, responses, showAs are the master's.
                value.append({k: ev[k] for k in OCCURRENCE_FIELDS})
            else:
                value.append(json.loads(json.dumps(ev)))
        value += json.loads(json.dumps(value[: self.replay]))  # the same changes again
        base = f"{self.graph_endpoint}/me/calendarView/delta"
        out: dict[str, Any] = {"value": value}
        if off + size < len(rnd["ids"]):
            out["@odata.nextLink"] = f"{base}?$skiptoken={rid}.{off + size}"
        else:
            token = uuid.uuid4().hex
            self.deltas[token] = {
                "scope": "calendar",
                "seq": rnd["end_seq"],
                "gen": rnd["gen"],
                "window": rnd["window"],
            }
            out["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        return out

    # -- folders ---------------------------------------------------------------------------------
    def render_folder(self, f: FakeFolder) -> dict[str, Any]:
        return {
            "id": f.id,
            "displayName": f.name,
            "parentFolderId": f.parent,
            "childFolderCount": sum(1 for c in self.folders.values() if c.parent == f.id),
            "totalItemCount": sum(1 for m in self.messages.values() if m["parentFolderId"] == f.id),
            "unreadItemCount": 0,
        }

    def children(self, parent: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self.render_folder(f) for f in self.folders.values() if f.parent == parent]


def drop_connection(handler: BaseHTTPRequestHandler) -> None:
    """Close the client's connection without an answer (a dropped connection)."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": _iso(datetime.now(UTC)), "request-id": str(uuid.uuid4())},
        }
    }


def _retry_after(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Retry-After": value}


def _mailbox_not_enabled() -> tuple[int, dict[str, Any], dict[str, str]]:
    return (
        404,
        _error(
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ),
        {},
    )


def _sync_state_gone(status: int, location: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Expired delta state: 410 with a Location header holding the initial query with an empty
    $deltatoken (delta-query-overview), or a 400 ``syncStateNotFound``."""
    if status == 410:
        body = _error(
            "SyncStateNotFound",
            "The sync state generation is not found; generation=149;[highest=157]",
        )
        return 410, body, {"Location": location}
    return status, _error("syncStateNotFound", "The sync state is not found."), {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphEmulator/1.0"

    @property
    def emu(self) -> GraphEmulator:
        return self.server.owner  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------------
    _slots_held = 0  # this request's concurrent slots in the mailbox (see _graph)

    def send_response(self, code: int, message: str | None = None) -> None:
        # A request stops counting against the mailbox's concurrency when its answer starts: the
        # client, once it has the answer, may send the next one at once.
        self._release_slots()
        super().send_response(code, message)

    def _release_slots(self) -> None:
        if self._slots_held:
            with self.emu.lock:
                self.emu.inflight -= self._slots_held
            self._slots_held = 0

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        segs = [unquote(s) for s in parts.path.split("/") if s]
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._body() if method == "POST" else b""
        if segs and segs[0] == "v1.0":
            self._graph(method, segs[1:], query, body)
        elif len(segs) >= 2:
            self._identity(method, segs, body)
        else:
            self._send(404, _error("NotFound", "no such route"))

    # -- identity --------------------------------------------------------------------------------
    def _identity(self, method: str, segs: list[str], raw: bytes) -> None:
        emu = self.emu
        tenant, rest = segs[0], "/".join(segs[1:])
        base = f"{emu.public_authority}/{tenant}"
        if method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            emu.token_requests["openid-configuration"] += 1
            self._send(
                200,
                {
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{emu.public_authority}/{{tenantid}}/v2.0",
                    "response_types_supported": [
                        "code",
                        "id_token",
                        "code id_token",
                        "id_token token",
                    ],
                },
            )
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if method == "POST" and rest == "oauth2/v2.0/devicecode":
            emu.token_requests["devicecode"] += 1
            if form.get("client_id") != emu.client_id:
                self._send(
                    400,
                    {
                        "error": "unauthorized_client",
                        "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory.",
                        "error_codes": [700016],
                    },
                )
                return
            dc, uc = (
                uuid.uuid4().hex,
                "".join(emu.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9)),
            )
            with emu.lock:
                emu.device_codes[dc] = {
                    "user_code": uc,
                    "approved": emu.auto_approve,
                    "scope": form.get("scope", ""),
                    "polls": 0,
                }
            self._send(
                200,
                {
                    "user_code": uc,
                    "device_code": dc,
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": f"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {uc} to authenticate.",
                },
            )
            return
        if method == "POST" and rest == "oauth2/v2.0/token":
            self._token(form)
            return
        self._send(404, {"error": "invalid_request", "error_description": "no such endpoint"})

    def _token(self, form: dict[str, str]) -> None:
        emu = self.emu
        grant = form.get("grant_type", "")
        emu.token_requests[grant] += 1
        if form.get("client_id") != emu.client_id:
            self._send(
                400,
                {
                    "error": "unauthorized_client",
                    "error_description": "AADSTS700016: unknown application",
                    "error_codes": [700016],
                },
            )
            return
        with emu.lock:
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                dc = emu.device_codes.get(form.get("device_code", ""))
                if dc is None:
                    self._send(
                        400,
                        {
                            "error": "expired_token",
                            "error_description": "AADSTS70020: The provided value for the input parameter 'device_code' is not valid.",
                            "error_codes": [70020],
                        },
                    )
                    return
                dc["polls"] += 1
                if not dc["approved"]:
                    self._send(
                        400,
                        {
                            "error": "authorization_pending",
                            "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                            "error_codes": [70016],
                        },
                    )
                    return
                del emu.device_codes[form["device_code"]]
                emu.consented.update((form.get("scope") or dc["scope"]).split())
                self._send(200, emu._issue_tokens(form.get("scope") or dc["scope"]))
                return
            if grant == "refresh_token":
                rt = form.get("refresh_token", "")
                if rt not in emu.refresh_tokens or emu.auth_broken:
                    self._send(
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "AADSTS700082: The refresh token has expired due to inactivity.",
                            "error_codes": [700082],
                            "suberror": "bad_token",
                        },
                    )
                    return
                wanted = set((form.get("scope") or emu.refresh_tokens[rt]).split())
                if not wanted <= emu.consented:
                    self._send(
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "AADSTS65001: The user or administrator has not consented to use the application.",
                            "error_codes": [65001],
                            "suberror": "consent_required",
                        },
                    )
                    return
                self._send(200, emu._issue_tokens(form.get("scope") or emu.refresh_tokens[rt]))
                return
        self._send(400, {"error": "unsupported_grant_type", "error_description": grant})

    # -- graph -----------------------------------------------------------------------------------
    def _graph(self, method: str, segs: list[str], query: dict[str, str], raw: bytes) -> None:
        emu = self.emu
        # A $batch envelope is Graph's; its members go to Outlook up to four at a time and
        # count against the mailbox's four concurrent requests (see _batch), the envelope not.
        slots = 0 if segs[:1] == ["$batch"] else 1
        with emu.lock:
            emu.graph_requests += 1
            emu.inflight += slots
            self._slots_held = slots
            emu.max_inflight = max(emu.max_inflight, emu.inflight)
            over = emu.inflight > emu.concurrency_limit
            if over:
                emu.concurrency_rejections += 1
            prefer = self.headers.get("Prefer") or ""
            if prefer:
                emu.prefers.add(prefer)
        try:
            if emu.latency and slots:
                time.sleep(emu.latency)
            if over:
                self._send(
                    429,
                    _error(
                        "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
                    ),
                    _retry_after(emu.retry_after),
                )
                return
            scope = emu.check_bearer(self.headers.get("Authorization"))
            if scope is None:
                self._send(
                    401,
                    _error(
                        "InvalidAuthenticationToken",
                        "Access token has expired or is not yet valid.",
                    ),
                )
                return
            fault = emu.choose_fault()
            if fault is not None and self._fault(fault):
                return
            status, body, headers = self._route(method, segs, query, raw, scope)
            if fault == "truncate" and body is not None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                drop_connection(self)
                return
            self._send(status, body, headers)
        finally:
            self._release_slots()  # when no answer was sent (a dropped connection)

    def _fault(self, kind: str) -> bool:
        """Serve an injected fault; True if the request is finished."""
        emu = self.emu
        emu.faults_injected[kind] += 1
        if kind == "429":
            self._send(
                429,
                {
                    "error": {
                        "code": "TooManyRequests",
                        "innerError": {
                            "code": "429",
                            "message": "Please retry after",
                            "status": "429",
                        },
                        "message": "Please retry again later.",
                    }
                },
                _retry_after(emu.retry_after),
            )
        elif kind == "503":
            self._send(
                503, _error("ServiceUnavailable", "Service Unavailable"), {"Retry-After": "0.02"}
            )
        elif kind == "400":  # only when forced: a request Graph will never accept
            self._send(400, _error("ErrorInvalidRequest", "The request is invalid."))
        elif kind == "500":
            self._send(500, _error("InternalServerError", "Something went wrong."))
        elif kind == "drop":
            drop_connection(self)
        elif kind == "timeout":
            time.sleep(emu.timeout_sleep)
            drop_connection(self)
        else:
            return False
        return True

    def _page_size(self) -> int:
        prefer = self.headers.get("Prefer") or ""
        size = self.emu.default_page
        for part in prefer.split(","):
            k, _, v = part.strip().partition("=")
            if k.strip().lower() == "odata.maxpagesize":
                with contextlib.suppress(ValueError):
                    size = int(v.strip())
        return max(1, min(size, self.emu.max_page))

    def _route(
        self, method: str, segs: list[str], query: dict[str, str], raw: bytes, scope: str
    ) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        if segs[:1] == ["$batch"] and method == "POST":
            emu.routes["$batch"] += 1
            return self._batch(raw, scope)
        if segs[:1] != ["me"]:
            return 404, _error("ResourceNotFound", "unknown resource"), {}
        s = segs[1:]
        if not emu.mailbox_enabled and s:
            return _mailbox_not_enabled()
        if s == ["sendMail"] and method == "POST":
            emu.routes["sendMail"] += 1
            if "Mail.Send" not in scope.split():
                return (
                    403,
                    _error(
                        "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                    ),
                    {},
                )
            try:
                if (self.headers.get("Content-Type") or "").startswith("text/plain"):
                    mime = base64.b64decode(raw, validate=True)
                    parsed = email.message_from_bytes(mime, policy=email.policy.default)
                    assert parsed["To"]
                    payload = {"mime": mime, "headers": dict(parsed.items())}
                    self._save_sent(parsed)
                else:
                    payload = json.loads(raw)
                    assert payload["message"]["toRecipients"]
            except (ValueError, KeyError, AssertionError, TypeError):
                return (
                    400,
                    _error("ErrorInvalidRecipients", "At least one recipient is not valid."),
                    {},
                )
            with emu.lock:
                emu.sent.append(payload)
            return 202, None, {}
        if method != "GET":
            return 405, _error("MethodNotAllowed", "method not allowed"), {}
        if s == ["calendarView", "delta"]:
            emu.routes["calendarView/delta"] += 1
            if "Calendars.Read" not in scope.split():
                return 403, _error("ErrorAccessDenied", "Access is denied."), {}
            return emu.calendar_delta(query, self._page_size())
        if s[:1] == ["messages"] and len(s) == 2:
            emu.routes["messages/{id}"] += 1
            return self._message(s[1], query)
        if s[:1] == ["events"] and len(s) == 2:
            if "Calendars.Read" not in scope.split():
                return 403, _error("ErrorAccessDenied", "Access is denied."), {}
            return self._event(s[1], query)
        if s[:1] == ["mailFolders"]:
            return self._folders(s[1:], query)
        if s[:1] == ["contactFolders"]:
            emu.routes["contactFolders"] += 1
            if "Contacts.Read" not in scope.split():
                return 403, _error("ErrorAccessDenied", "Access is denied."), {}
            if len(s) == 1:  # the user's own folders; the default one is "contacts"
                with emu.lock:
                    own = [
                        {"id": f, "displayName": n, "parentFolderId": "contacts"}
                        for f, n in emu.contact_folders.items()
                        if f != "contacts"
                    ]
                return 200, {"value": own}, {}
            if len(s) == 4 and s[2:] == ["contacts", "delta"]:
                return emu.contacts_delta(s[1], query, self._page_size())
        return 404, _error("ResourceNotFound", "unknown resource"), {}

    def _message(self, mid: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        with emu.lock:
            msg = emu.messages.get(mid)
            if msg is None:
                return (
                    404,
                    _error("ErrorItemNotFound", "The specified object was not found in the store."),
                    {},
                )
            select = [x for x in query.get("$select", "").split(",") if x]
            emu.selected.update(select)
            return 200, emu.render_message(msg, select), {}

    def _event(self, eid: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """``GET /me/events/{id}``: the whole event (body too unless ``$select`` leaves it out)."""
        emu = self.emu
        emu.routes["events/{id}"] += 1
        with emu.lock:
            ev = emu.events.get(eid)
            if ev is None:
                return (
                    404,
                    _error("ErrorItemNotFound", "The specified object was not found in the store."),
                    {},
                )
            select = [x for x in query.get("$select", "").split(",") if x]
            emu.selected.update(select)
            out = {k: v for k, v in ev.items() if not select or k in select or k == "id"}
            return 200, json.loads(json.dumps(out)), {}

    def _folders(self, s: list[str], query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        if not s:
            emu.routes["mailFolders"] += 1
            return 200, {"value": emu.children(ROOT)}, {}
        try:
            fid = emu.folder_id(s[0])
        except KeyError:
            return (
                404,
                _error("ErrorItemNotFound", "The specified object was not found in the store."),
                {},
            )
        rest = s[1:]
        if not rest:
            emu.routes["mailFolders/{id}"] += 1
            with emu.lock:
                return 200, emu.render_folder(emu.folders[fid]), {}
        if rest == ["childFolders"]:
            emu.routes["childFolders"] += 1
            return 200, {"value": emu.children(fid)}, {}
        if rest == ["messages", "delta"]:
            emu.routes["messages/delta"] += 1
            return emu.mail_delta(fid, query, self._page_size())
        if rest == ["messages"]:
            emu.routes["folder messages"] += 1
            with emu.lock:
                ids = [m for m, v in emu.messages.items() if v["parentFolderId"] == fid]
                flt = query.get("$filter", "")
                if flt.startswith("internetMessageId eq "):
                    wanted = flt.split(" eq ", 1)[1].strip().strip("'").replace("''", "'")
                    ids = [m for m in ids if emu.messages[m]["internetMessageId"] == wanted]
            skip, top = int(query.get("$skip", "0")), int(query.get("$top", "10"))
            out: dict[str, Any] = {"value": [{"id": m} for m in ids[skip : skip + top]]}
            if skip + top < len(ids):
                out["@odata.nextLink"] = (
                    f"{emu.graph_endpoint}/me/mailFolders/{quote(fid, safe='')}/messages?$select=id&$top={top}&$skip={skip + top}"
                )
            return 200, out, {}
        return 404, _error("ResourceNotFound", "unknown resource"), {}

    def _save_sent(self, parsed: Any) -> None:
        """Exchange keeps a sent MIME message (and its Message-ID) in Sent Items."""
        emu = self.emu
        emu.add_message(
            "sentitems",
            sender=emu.user,
            to=[str(parsed["To"])],
            subject=str(parsed["Subject"] or ""),
            sent=datetime.now(UTC),
            message_id=str(parsed["Message-ID"] or "") or None,
        )

    def _batch(self, raw: bytes, scope: str) -> tuple[int, Any, dict[str, str]]:
        emu = self.emu
        try:
            reqs = json.loads(raw)["requests"]
        except (ValueError, KeyError, TypeError):
            return 400, _error("BadRequest", "Invalid batch payload."), {}
        if len(reqs) > 20:
            return (
                400,
                _error("BadRequest", "Number of batch request steps exceeds the maximum of 20."),
                {},
            )
        responses = []
        for i in range(0, len(reqs), BATCH_PARALLEL):
            responses += self._batch_members(reqs[i : i + BATCH_PARALLEL], scope)
        emu.rng.shuffle(responses)  # Graph answers in any order
        return 200, {"responses": responses}, {}

    def _batch_members(self, reqs: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
        """Up to four members at once, each holding one of the mailbox's concurrent slots while
        Outlook works on it; a member finding no free slot is throttled (MailboxConcurrency)."""
        emu = self.emu
        with emu.lock:
            granted = max(0, min(len(reqs), emu.concurrency_limit - emu.inflight))
            emu.inflight += granted
            emu.max_inflight = max(emu.max_inflight, emu.inflight)
            emu.concurrency_rejections += len(reqs) - granted
        try:
            if emu.latency and granted:
                time.sleep(emu.latency)
            return [
                self._batch_member(r, scope)
                if n < granted
                else {
                    "id": r["id"],
                    "status": 429,
                    "headers": _retry_after(emu.retry_after),
                    "body": _error(
                        "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
                    ),
                }
                for n, r in enumerate(reqs)
            ]
        finally:
            with emu.lock:
                emu.inflight -= granted

    def _batch_member(self, r: dict[str, Any], scope: str) -> dict[str, Any]:
        emu = self.emu
        url = urlsplit(r.get("url", ""))
        segs = [unquote(x) for x in url.path.split("/") if x]
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if emu.choose_fault() in ("429", "503"):
            return {
                "id": r["id"],
                "status": 429,
                "headers": _retry_after(emu.retry_after),
                "body": _error(
                    "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
                ),
            }
        if not emu.mailbox_enabled and segs[:1] == ["me"]:
            status, body, _ = _mailbox_not_enabled()
        elif r.get("method") == "GET" and segs[:2] == ["me", "messages"] and len(segs) == 3:
            status, body, _ = self._message(segs[2], q)
        elif r.get("method") == "GET" and segs[:2] == ["me", "events"] and len(segs) == 3:
            status, body, _ = self._event(segs[2], q)
        else:
            status, body = 400, _error("BadRequest", "unsupported in this emulator")
        return {
            "id": r["id"],
            "status": status,
            "headers": {"Content-Type": "application/json"},
            "body": body,
        }
