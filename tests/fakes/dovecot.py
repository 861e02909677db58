"""A private Dovecot IMAP server on loopback ports, for the IMAP connector's tests and benchmark.

Everything lives in one directory: the config, the passwd-file (users and passwords), the
Maildirs, the TLS certificate (made by ``trustme``), Dovecot's base_dir and its log. Nothing
system-wide is touched. Started in the foreground (``dovecot -F -c CONF``) so stopping is a
signal to our own child process.

When the tests run as root (CI), Dovecot still needs unprivileged users for its login and
internal processes: Debian's package creates ``dovenull`` and ``dovecot``. The mail user is
root itself (``first_valid_uid = 0``) so the test can write into the Maildirs directly.
As an ordinary user, every process runs as that user.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from fakes.loopback import can_connect, free_port, stop_process

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def available() -> bool:
    return Path(DOVECOT).exists()


@dataclass
class Dovecot:
    """One running server. ``users`` maps user name -> password."""

    root: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0  # plain IMAP (STARTTLS offered)
    tls_port: int = 0  # implicit TLS
    ca_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    extra_config: str = ""

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user

    def mail_owner(self) -> tuple[int, int]:
        """uid/gid the mail processes run as: Dovecot refuses mail access as root."""
        if os.getuid() != 0:
            return os.getuid(), os.getgid()
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid

    def fix_owner(self, path: Path | None = None) -> None:
        """After writing into a Maildir directly as root, hand the files to the mail user."""
        if os.getuid() != 0:
            return
        uid, gid = self.mail_owner()
        top = path or self.root / "mail"
        os.chown(top, uid, gid)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), uid, gid)

    # -- users ------------------------------------------------------------------------------
    def add_user(self, user: str, password: str) -> None:
        """Add a user (Dovecot re-reads the passwd-file when it changes; tests that need many
        users should pass them to the constructor instead, as a change within the same second
        can go unnoticed)."""
        self.users[user] = password
        self._write_passwd()

    def _write_passwd(self) -> None:
        # uid/gid come from mail_uid/mail_gid (passwd-file refuses uid 0)
        lines = [
            f"{u}:{{PLAIN}}{p}:::::{self.root / 'home' / u}::"
            for u, p in sorted(self.users.items())
        ]
        tmp = self.root / "passwd.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(self.root / "passwd")

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the mail user must reach its Maildir
        for d in ("run", "state", "mail", "home"):
            (self.root / d).mkdir(exist_ok=True)
        self.fix_owner(self.root / "mail")
        self.fix_owner(self.root / "home")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_and_cert_chain_pem.write_to_path(str(self.root / "server.pem"))
        self.ca_file = self.root / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._write_passwd()
        self.port, self.tls_port = free_port(), free_port()
        conf = self.root / "dovecot.conf"
        conf.write_text(self._config())
        with open(self.root / "dovecot.stderr", "wb") as err:  # the server keeps its own copy
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if can_connect(self.port) and can_connect(self.tls_port):
                return
            time.sleep(0.05)
        err = (self.root / "dovecot.stderr").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"dovecot did not start:\n{err}\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def _config(self) -> str:
        r = self.root
        uid, gid = self.mail_owner()
        if os.getuid() == 0:
            internal, login = _existing_user("dovecot"), _existing_user("dovenull")
            group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
            chroot = "login"
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            internal = login = me
            group = grp.getgrgid(os.getgid()).gr_name
            chroot = ""
        return f"""
base_dir = {r}/run
state_dir = {r}/state
instance_name = keepwarm-test-{self.port}
log_path = {r}/dovecot.log
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {min(uid, 100)}
first_valid_gid = {min(gid, 100)}
mail_uid = {uid}
mail_gid = {gid}
ssl = yes
ssl_cert = <{r}/server.pem
ssl_key = <{r}/server.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0
mail_location = maildir:{r}/mail/%u
mail_fsync = never
maildir_very_dirty_syncs = no
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/passwd
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
}}
service imap-login {{
  chroot = {chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
# No growing per-IP delay after the wrong-password tests: the auth process cannot reach
# anvil's penalty socket, which disables the penalty.
service anvil {{
  chroot = {"empty" if chroot else ""}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
    mode = 0666
  }}
}}
{self.extra_config}
"""


def _existing_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return "nobody"
    return name
