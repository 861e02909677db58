"""A private Radicale CalDAV/CardDAV server on a loopback port, for the DAV connectors' tests and
benchmark (the real server, as ``make test`` installs it from PyPI).

Everything lives in one directory: the config, the htpasswd file (plain passwords), the
collections and the TLS certificate (made by ``trustme``, when ``tls`` is set). Radicale runs as
our own child process (``python -m radicale``), so stopping it is a signal to that process.

The test changes the server's content as another device would, over HTTP (MKCOL, PUT, DELETE),
and can invalidate every sync token of a collection the way a server that forgets its history
does (Radicale keeps the states behind its tokens in ``.Radicale.cache/sync-token``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests
import trustme

from fakes.loopback import can_connect, free_port, stop_process


def available() -> bool:
    try:
        import radicale  # noqa: F401
    except ImportError:
        return False
    return True


_CALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><C:calendar/></D:resourcetype>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</D:mkcol>"""
_ADDRESSBOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>{name}</D:displayname>
  </D:prop></D:set>
</D:mkcol>"""


@dataclass
class Radicale:
    """One running server. ``users`` maps user name -> password."""

    root: Path
    users: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    port: int = 0
    ca_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    requests_seen: int = 0

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    @property
    def storage(self) -> Path:
        return self.root / "collections" / "collection-root"

    def log(self) -> str:
        try:
            return (self.root / "radicale.log").read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return "(no log)"

    # -- users --------------------------------------------------------------------------------
    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password
        self._write_users()

    def _write_users(self) -> None:
        tmp = self.root / "users.tmp"
        tmp.write_text("".join(f"{u}:{p}\n" for u, p in sorted(self.users.items())))
        tmp.replace(self.root / "users")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Radicale:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "collections").mkdir(exist_ok=True)
        self._write_users()
        if self.port == 0:
            self.port = free_port()
        ssl = ""
        if self.tls:
            if self.ca_file is None:
                ca = trustme.CA()
                cert = ca.issue_cert("127.0.0.1", "localhost")
                cert.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
                cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
                self.ca_file = self.root / "ca.pem"
                ca.cert_pem.write_to_path(str(self.ca_file))
            ssl = f"ssl = True\ncertificate = {self.root / 'cert.pem'}\nkey = {self.root / 'key.pem'}\n"
        conf = self.root / "radicale.conf"
        conf.write_text(
            f"""[server]
hosts = 127.0.0.1:{self.port}
delay_on_error = 0
{ssl}
[auth]
type = htpasswd
htpasswd_filename = {self.root / "users"}
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {self.root / "collections"}

[logging]
level = warning
mask_passwords = True
"""
        )
        with open(self.root / "radicale.log", "ab") as log:  # the server keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if can_connect(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"radicale did not start:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    # -- content, as another device changes it -----------------------------------------------
    def _session(self, user: str) -> requests.Session:
        s = requests.Session()
        s.auth = (user, self.users[user])
        return s

    def url(self, user: str, collection: str = "", name: str = "") -> str:
        path = f"{quote(user)}/"
        if collection:
            path += f"{quote(collection)}/"
        if name:
            path += quote(name)
        return self.base_url + path

    def _send(self, user: str, method: str, url: str, **kw: object) -> requests.Response:
        with self._session(user) as s:
            verify = str(self.ca_file) if self.ca_file else True  # per request: REQUESTS_CA_BUNDLE
            r = s.request(method, url, timeout=30, verify=verify, **kw)  # type: ignore[arg-type]
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:300]}")
        return r

    def make_calendar(self, user: str, collection: str, display_name: str = "") -> str:
        body = _CALENDAR.format(name=display_name or collection)
        self._send(user, "MKCOL", self.url(user, collection), data=body.encode())
        return self.url(user, collection)

    def make_addressbook(self, user: str, collection: str, display_name: str = "") -> str:
        body = _ADDRESSBOOK.format(name=display_name or collection)
        self._send(user, "MKCOL", self.url(user, collection), data=body.encode())
        return self.url(user, collection)

    def put(self, user: str, collection: str, name: str, text: str) -> None:
        ctype = "text/vcard" if name.endswith(".vcf") else "text/calendar"
        self._send(
            user,
            "PUT",
            self.url(user, collection, name),
            data=text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"),
            headers={"Content-Type": f"{ctype}; charset=utf-8"},
        )

    def delete(self, user: str, collection: str, name: str) -> None:
        self._send(user, "DELETE", self.url(user, collection, name))

    def delete_collection(self, user: str, collection: str) -> None:
        self._send(user, "DELETE", self.url(user, collection))

    def forget_sync_tokens(self, user: str, collection: str) -> None:
        """Invalidate every sync token handed out for the collection (the server answers an old
        one with 403 and DAV:valid-sync-token, RFC 6578 section 3.2)."""
        cache = self.storage / user / collection / ".Radicale.cache" / "sync-token"
        shutil.rmtree(cache, ignore_errors=True)
