"""Fault campaign: keepwarm under kill -9, concurrency, hostile input and broken storage.

Everything runs the real ``keepwarm`` command in subprocesses against real components: the
corpora in ../shared/data (Enron, SpamAssassin, the .ics collection), a private Dovecot (behind a
TCP proxy that cuts connections), a real SMTP server (aiosmtpd), SQLite files damaged on disk and
a state directory mounted read-only. Each kind of fault is a row:

- kill -9 during import: ``keepwarm import`` of a real maildir or mbox killed at a random moment,
  then run again; the store must equal an uninterrupted import (every message and every source
  exactly once), and the people list too.
- kill -9 during sync: the same for ``keepwarm sync`` of an IMAP account (Dovecot).
- kill -9 during digest delivery: ``keepwarm digest --send`` (SMTP) killed at a random moment,
  then the recovery a user has (run it again; the mailbox syncs): exactly one digest must arrive.
- concurrent digest --send: several at the same instant; exactly one digest arrives.
- fuzzed headers, fuzzed .ics: real messages and calendars mutated (control characters,
  encoded-word debris, NUL bytes, truncation, huge headers, endless RRULEs ...), imported: no
  traceback, every file accounted for, no invalid address stored, nothing twice.
- broken configs: one clear error (exit 2), no traceback, from status, doctor and run.
- damaged database: random pages overwritten, truncation, a value that is not UTF-8: every
  command works or says "is damaged" in one line; the daemon stops with exit 2.
- read-only state directory: every command names the directory in one line.
- IMAP cut mid-FETCH: the proxy cuts at a random byte; syncs resume to the uninterrupted result,
  and no error shows protocol text.

Columns: trials, survived, lost, duplicated, tracebacks, other (hangs, wrong exit status, an
unclear message, a stored invalid address). Everything but trials and survived must be 0; the
exit status is 1 otherwise.

Run: ``make faults`` or ``.venv/bin/python bench/faults.py [--kills 110] [--seed 15]``
(about 10 minutes on 2 cores; needs root for the read-only mount, as CI has).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from fakes.dovecot import Dovecot  # noqa: E402
from fakes.faults import damage_random_pages, damage_text, read_only  # noqa: E402
from fakes.smtp import PASSWORD, USER, Handler, smtp_server  # noqa: E402
from fakes.tcpproxy import TcpProxy  # noqa: E402
from imap_sync import index, load  # noqa: E402

from keepwarm.connectors.headers import header_block, normalize_address  # noqa: E402

KEEPWARM = str(Path(sys.executable).parent / "keepwarm")
ME = "phillip.allen@enron.com"  # the owner of the allen-p mailbox in the Enron sample
TRACEBACK = "Traceback (most recent call last)"
PROTOCOL_TEXT = re.compile(r"b'|b\"|unterminated line|socket error|\* \d+ FETCH")
MEMORY_LIMIT = 2 << 30  # bytes of address space for each keepwarm process


# -- bookkeeping ------------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    trials: int = 0
    survived: int = 0
    lost: int = 0
    duplicated: int = 0
    tracebacks: int = 0
    other: int = 0
    notes: list[str] = field(default_factory=list)

    def trial(
        self, *, lost: int = 0, duplicated: int = 0, tracebacks: int = 0, other: int = 0
    ) -> None:
        self.trials += 1
        self.lost += lost
        self.duplicated += duplicated
        self.tracebacks += tracebacks
        self.other += other
        if not (lost or duplicated or tracebacks or other):
            self.survived += 1

    def note(self, text: str) -> None:
        if len(self.notes) < 6:
            self.notes.append(text)

    @property
    def clean(self) -> bool:
        return self.trials == self.survived and not (
            self.lost or self.duplicated or self.tracebacks or self.other
        )


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def env_for(cfg: Path, hash_seed: int | None = None) -> dict[str, str]:
    env = {**os.environ, "KEEPWARM_CONFIG": str(cfg), "KW_FAULTS_PASSWORD": PASSWORD}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    return env


def kw(
    cfg: Path, *args: str, timeout: float = 300, hash_seed: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run keepwarm to the end; a hang past ``timeout`` is a failed run (exit status -9)."""
    proc = subprocess.Popen(
        [KEEPWARM, *args],
        env=env_for(cfg, hash_seed),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, -9, out, err + f"\n(hung past {timeout} s)")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def spawn(cfg: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [KEEPWARM, *args],
        env=env_for(cfg),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit,
    )


def kill_after(proc: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds; False if it had ended by then."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.communicate()
            return False
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return True


def traceback_in(*procs: subprocess.CompletedProcess[str]) -> int:
    return sum(1 for p in procs if TRACEBACK in (p.stdout or "") + (p.stderr or ""))


def config(tmp: Path, extra: str = "", *, me: str = ME) -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [me]
            name = "Phillip Allen"
            addresses = ["{me}"]
            timezone = "America/Chicago"
            [store]
            path = "{tmp / "state" / "kw.db"}"
            """
        )
        + textwrap.dedent(extra)
    )
    cfg.chmod(0o600)
    return cfg


# -- comparing stores -------------------------------------------------------------------------------
@dataclass
class Print:
    """What a store holds, for comparison with an uninterrupted run."""

    messages: Counter[tuple[str, str]]
    sources: Counter[tuple[str, str]]
    events: Counter[str]
    ok: bool


def fingerprint(db: Path) -> Print:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        messages = Counter(
            (str(m), str(k)) for m, k in con.execute("SELECT message_id, content_key FROM messages")
        )
        sources = Counter(
            (str(a), str(p))
            for a, p in con.execute("SELECT account, provider_id FROM message_sources")
        )
        events = Counter(str(k) for (k,) in con.execute("SELECT dedupe_key FROM events"))
        ok = con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()
    return Print(messages, sources, events, ok)


def differences(ref: Print, got: Print) -> tuple[int, int]:
    """(lost, duplicated) of ``got`` against ``ref``: records and sources, counted once each."""
    lost = sum((ref.messages - got.messages).values()) + sum((ref.sources - got.sources).values())
    lost += sum((ref.events - got.events).values())
    dup = sum((got.messages - ref.messages).values()) + sum((got.sources - ref.sources).values())
    dup += sum((got.events - ref.events).values())
    return lost, dup


def fresh_state(tmp: Path) -> None:
    shutil.rmtree(tmp / "state", ignore_errors=True)
    (tmp / "state").mkdir(mode=0o700)


# -- the corpora ------------------------------------------------------------------------------------
def corpus_files() -> list[Path]:
    return [
        p
        for sub in ("enron-maildir-sample", "spamassassin-ham", "enron-pst-eml-messy")
        for p in sorted((DATA / sub).rglob("*"))
        if p.is_file()
    ]


def enron_maildir(tmp: Path) -> Path:
    """A maildir-like tree of the Enron sample and the SpamAssassin ham (links, not copies)."""
    root = tmp / "corpus-maildir"
    root.mkdir(exist_ok=True)
    for sub in ("enron-maildir-sample", "spamassassin-ham"):
        link = root / sub
        if not link.exists():
            link.symlink_to(DATA / sub)
    return root


def ham_mbox(tmp: Path) -> Path:
    path = tmp / "ham.mbox"
    if not path.exists():
        with open(path, "wb") as out:
            for f in sorted((DATA / "spamassassin-ham").rglob("*")):
                if f.is_file():
                    data = (
                        f.read_bytes()
                        .replace(b"\n>From ", b"\n>>From ")
                        .replace(b"\nFrom ", b"\n>From ")
                    )
                    out.write(
                        b"From faults@example.com Mon Jan  1 00:00:00 2001\n"
                        + data.rstrip(b"\n")
                        + b"\n\n"
                    )
    return path


# -- kill -9 during import ----------------------------------------------------------------------------
def people(cfg: Path, hash_seed: int = 0) -> object:
    """``keepwarm people --json`` (as of the corpora's end), in a process with this hash seed."""
    return json.loads(
        kw(cfg, "people", "--json", "--as-of", "2002-12-31", hash_seed=hash_seed).stdout
    )


def kills_during_import(tmp: Path, n: int, rng: random.Random) -> tuple[Row, Row]:
    """The kill trials; and whether the people list of one store is the same in processes with
    different hash seeds (the kill trials compare lists made with one seed, so that what they
    measure is the kill)."""
    row = Row("kill -9 during import")
    same = Row("people list, 5 processes")
    sources = [("maildir", enron_maildir(tmp)), ("mbox", ham_mbox(tmp))]
    work = tmp / "import"
    work.mkdir()
    cfg = config(work)
    references: dict[str, tuple[Print, float, object]] = {}
    for kind, path in sources:
        fresh_state(work)
        t = time.monotonic()
        done = kw(cfg, "import", kind, str(path), "--account", kind)
        took = time.monotonic() - t
        assert done.returncode == 0, done.stderr
        first = people(cfg)
        references[kind] = (fingerprint(work / "state" / "kw.db"), took, first)
        row.note(f"{kind}: {done.stdout.strip()} in {took:.1f}s uninterrupted")
        for seed in range(1, 6 if kind == "maildir" else 1):
            differs = people(cfg, seed) != first
            same.trial(other=int(differs))
            if differs:
                same.note(f"{kind}: hash seed {seed} gives another list than seed 0")
    kills = 0
    while kills < n:
        kind, path = sources[kills % len(sources)]
        ref, took, listed = references[kind]
        fresh_state(work)
        proc = spawn(cfg, "import", kind, str(path), "--account", kind)
        if not kill_after(proc, rng.uniform(0.3, 0.98) * took):
            continue  # it finished first: not a kill
        kills += 1
        again = kw(cfg, "import", kind, str(path), "--account", kind)
        got = fingerprint(work / "state" / "kw.db")
        lost, dup = differences(ref, got)
        other = int(again.returncode != 0 or not got.ok)
        if kills % 5 == 0:  # the people list too (the engine takes a moment)
            other += int(people(cfg) != listed)
        row.trial(lost=lost, duplicated=dup, tracebacks=traceback_in(again), other=other)
        if lost or dup or other:
            row.note(f"trial {kills}: lost {lost}, duplicated {dup}: {again.stderr[-200:]}")
    return row, same


# -- kill -9 during sync (IMAP) ------------------------------------------------------------------------
def imap_config(work: Path, server: Dovecot, port: int, security: str = "tls") -> Path:
    pw = work / "imap-password"
    pw.write_text(server.users["faults"] + "\n")
    pw.chmod(0o600)
    return config(
        work,
        f"""\
        [[accounts]]
        name = "imap"
        kind = "imap"
        host = "127.0.0.1"
        port = {port}
        security = "{security}"
        allow_plaintext = true
        username = "faults"
        password_file = "{pw}"
        ca_file = "{server.ca_file}"
        backfill = "40y"
        timeout = "20s"
        """,
    )


def kills_during_sync(tmp: Path, server: Dovecot, n: int, rng: random.Random) -> Row:
    row = Row("kill -9 during sync (IMAP)")
    work = tmp / "sync"
    work.mkdir()
    cfg = imap_config(work, server, server.tls_port)
    fresh_state(work)
    t = time.monotonic()
    done = kw(cfg, "sync")
    took = time.monotonic() - t
    assert done.returncode == 0, done.stderr
    ref = fingerprint(work / "state" / "kw.db")
    row.note(f"{done.stdout.strip()} in {took:.1f}s uninterrupted")
    kills = 0
    while kills < n:
        fresh_state(work)
        proc = spawn(cfg, "sync")
        if not kill_after(proc, rng.uniform(0.3, 0.98) * took):
            continue
        kills += 1
        if kills % 4 == 0:  # and a second kill in the resumed sync
            kill_after(spawn(cfg, "sync"), rng.uniform(0.2, 0.6) * took)
        again = kw(cfg, "sync")
        got = fingerprint(work / "state" / "kw.db")
        lost, dup = differences(ref, got)
        other = int(again.returncode != 0 or not got.ok)
        row.trial(lost=lost, duplicated=dup, tracebacks=traceback_in(again), other=other)
        if lost or dup or other:
            row.note(f"trial {kills}: lost {lost}, duplicated {dup}: {again.stderr[-200:]}")
    return row


# -- digests ----------------------------------------------------------------------------------------
def digest_world(tmp: Path, port: int, ca_file: Path) -> tuple[Path, Path]:
    """A template: the Enron mail imported into a maildir account that also holds an earlier
    digest (so it is an account that receives digests); SMTP delivery. Returns (work, db)."""
    work = tmp / "digest-template"
    inbox = work / "inbox"
    for sub in ("cur", "new", "tmp"):
        (inbox / sub).mkdir(parents=True)
    for i, f in enumerate(sorted((DATA / "enron-maildir-sample" / "allen-p").rglob("*"))):
        if f.is_file():
            (inbox / "cur" / f"{i}.M1.faults:2,S").write_bytes(f.read_bytes())
    earlier = (
        f"From: Phillip Allen (keepwarm) <{ME}>\nTo: {ME}\nSubject: keepwarm, earlier\n"
        f"Date: {format_datetime(datetime.now(UTC) - timedelta(days=3))}\n"
        "Message-ID: <digest.earlier@keepwarm.invalid>\nX-Keepwarm-Digest: 1\n"
        "Auto-Submitted: auto-generated\n\nearlier digest\n"
    )
    (inbox / "cur" / "earlier-digest.M1.faults:2,S").write_text(earlier)
    cfg = digest_config(work, port, ca_file)
    fresh_state(work)
    done = kw(cfg, "sync")
    assert done.returncode == 0, done.stderr
    return work, work / "state" / "kw.db"


def digest_config(work: Path, port: int, ca_file: Path) -> Path:
    return config(
        work,
        f"""\
        [digest]
        resend_after = "1s"
        [delivery]
        method = "smtp"
        [delivery.smtp]
        host = "127.0.0.1"
        port = {port}
        username = "{USER}"
        password_env = "KW_FAULTS_PASSWORD"
        ca_file = "{ca_file}"
        [[accounts]]
        name = "inbox"
        kind = "maildir"
        path = "{work / "inbox"}"
        """,
    )


def digest_trial_dir(
    template: Path, tmp: Path, n: int, port: int, ca_file: Path
) -> tuple[Path, Path]:
    work = tmp / f"digest-{n}"
    shutil.copytree(template / "inbox", work / "inbox", symlinks=True)
    (work / "state").mkdir(parents=True, mode=0o700)
    src = sqlite3.connect(template / "state" / "kw.db")
    dst = sqlite3.connect(work / "state" / "kw.db")
    src.backup(dst)
    src.close()
    dst.close()
    (work / "state" / "kw.db").chmod(0o600)
    return work, digest_config(work, port, ca_file)


def ledger_state(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT state FROM digests ORDER BY local_date DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return row[0] if row else "nothing"


class SlowHandler(Handler):
    """The SMTP server takes ``delay`` seconds to answer DATA, as a busy one does: the moment a
    kill most often lands in the handover."""

    delay = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def kills_during_delivery(tmp: Path, n: int, rng: random.Random) -> tuple[Row, Row]:
    row = Row("kill -9 during digest delivery")
    conc = Row("concurrent digest --send")
    with smtp_server(tmp, handler=SlowHandler()) as srv:
        template, _db = digest_world(tmp, srv.port, srv.ca_file)
        handler = srv.handler
        assert isinstance(handler, SlowHandler)
        work, cfg = digest_trial_dir(template, tmp, 0, srv.port, srv.ca_file)
        t = time.monotonic()
        first = kw(cfg, "digest", "--send")
        took = time.monotonic() - t
        assert first.returncode == 0 and len(srv.handler.received) == 1, first.stderr
        row.note(
            f"an uninterrupted digest --send takes {took:.1f}s (SMTP answers DATA after 0-1.5s)"
        )
        where: Counter[str] = Counter()
        kills = 0
        while kills < n:
            srv.handler.received.clear()
            handler.delay = rng.uniform(0, 1.5)
            work, cfg = digest_trial_dir(template, tmp, kills + 1, srv.port, srv.ca_file)
            db = work / "state" / "kw.db"
            window = took + handler.delay
            if not kill_after(spawn(cfg, "digest", "--send"), rng.uniform(0.5, 1.0) * window):
                shutil.rmtree(work)
                continue
            kills += 1
            where[ledger_state(db)] += 1
            # what a user's keepwarm then does: the next run, and the mailbox syncing
            again = kw(cfg, "digest", "--send")
            for i, env in enumerate(list(srv.handler.received)):
                (work / "inbox" / "new" / f"arrived-{i}.M1.faults").write_bytes(env.content)
            time.sleep(1.2)  # [digest] resend_after = "1s"
            synced = kw(cfg, "sync")
            for i, env in enumerate(list(srv.handler.received)[1:], 100):
                (work / "inbox" / "new" / f"arrived-{i}.M1.faults").write_bytes(env.content)
            confirm = kw(cfg, "sync")
            got = len(srv.handler.received)
            other = int(any(p.returncode != 0 for p in (again, synced, confirm)))
            other += int(ledger_state(db) != "sent")
            row.trial(
                lost=int(got == 0),
                duplicated=max(0, got - 1),
                tracebacks=traceback_in(again, synced, confirm),
                other=other,
            )
            if got != 1 or other:
                row.note(
                    f"trial {kills}: {got} received; {again.stderr[-160:]}{synced.stderr[-160:]}"
                )
            shutil.rmtree(work)
        words = {"nothing": "building", "intent": "connecting", "sending": "handing over"}
        row.note(
            "killed while "
            + ", ".join(f"{words.get(k, k)}: {v}" for k, v in sorted(where.items()))
            + " (the ledger at the kill)"
        )
        handler.delay = 0.2
        concurrent_sends(conc, template, tmp, srv)
    return row, conc


def concurrent_sends(row: Row, template: Path, tmp: Path, srv: object, trials: int = 20) -> None:
    handler = srv.handler  # type: ignore[attr-defined]
    lines = {
        "delivered",
        "was already delivered; use --force to send it again",
        "is already being delivered by another keepwarm process; not sending it twice",
    }
    senders = 0
    for n in range(trials):
        handler.received.clear()
        work, cfg = digest_trial_dir(template, tmp, 1000 + n, srv.port, srv.ca_file)  # type: ignore[attr-defined]
        k = 2 + n % 3
        senders += k
        procs = [
            subprocess.Popen(
                [KEEPWARM, "digest", "--send"],
                env=env_for(cfg),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(k)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        said = [o[0].strip().split(" ", 3)[-1] for o in outs]
        got = len(handler.received)
        other = sum(1 for p in procs if p.returncode != 0) + sum(1 for s in said if s not in lines)
        tracebacks = sum(1 for o in outs if TRACEBACK in o[0] + o[1])
        row.trial(
            lost=int(got == 0), duplicated=max(0, got - 1), tracebacks=tracebacks, other=other
        )
        if got != 1 or other:
            row.note(f"trial {n}: {got} received from {k} senders: {said}")
        shutil.rmtree(work)
    row.note(f"{senders} senders in {trials} trials of 2 to 4 at the same instant")


# -- fuzzed input -----------------------------------------------------------------------------------
ADDRESS = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def mutate_message(raw: bytes, rng: random.Random) -> bytes:
    head = header_block(raw)
    body = raw[len(head) : len(head) + 4096]
    kind = rng.randrange(12)
    if kind == 0:  # a control character inside an address
        m = ADDRESS.search(head)
        if m:
            at = m.start() + rng.randrange(1, max(2, m.group().find(b"@")))
            head = head[:at] + bytes([rng.choice([1, 8, 11, 20, 27, 127])]) + head[at:]
    elif kind == 1:  # encoded-word debris around an address
        m = ADDRESS.search(head)
        if m:
            head = head.replace(m.group(), b"=?utf-8?q?_" + m.group() + b"?=", 1)
    elif kind == 2:  # NUL bytes in the headers and the body
        at = rng.randrange(len(head) + 1)
        head, body = head[:at] + b"\x00" + head[at:], b"\x00" + body
    elif kind == 3:  # a huge header
        head += b"\nX-Huge: " + b"a" * rng.randrange(100_000, 400_000)
    elif kind == 4:  # truncated anywhere
        return (head + body)[: rng.randrange(len(head) + 1)]
    elif kind == 5:  # random bytes flipped in the header block
        b = bytearray(head)
        for _ in range(rng.randrange(1, 30)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        head = bytes(b)
    elif kind == 6:  # no Date, or an absurd one
        head = re.sub(
            rb"(?im)^date:.*$",
            rng.choice([b"", b"Date: Mon, 31 Dec 1979 16:00:00 -0800", b"Date: \xff\xfe"]),
            head,
        )
    elif kind == 7:  # mixed and bare line ends
        head = head.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\r"]), rng.randrange(1, 5))
    elif kind == 8:  # 8-bit junk in the subject
        head += b"\nSubject: " + bytes(rng.randrange(128, 256) for _ in range(40))
    elif kind == 9:  # a very long address list
        head += b"\nCc: " + b", ".join(b"p%d@x%d.example.com" % (i, i) for i in range(700))
    elif kind == 10:  # lines without a colon, a From line with only junk
        head = b"garbage line without colon\n" + head.replace(b"From:", b"From: <<<>>> \x01;;", 1)
    else:  # a file that is not mail at all
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    return head + b"\n\n" + body


def accounted(db: Path, account: str) -> tuple[int, int]:
    """(sources stored, records skipped) of an account's last run."""
    con = sqlite3.connect(db)
    try:
        stored = con.execute(
            "SELECT count(*) FROM message_sources WHERE account = ?", (account,)
        ).fetchone()[0]
        raw = con.execute("SELECT skipped FROM accounts WHERE name = ?", (account,)).fetchone()
    finally:
        con.close()
    skipped = json.loads(raw[0]) if raw and raw[0] else {}
    return int(stored), int(sum(skipped.values()))


def invalid_stored(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        emails = [e for (e,) in con.execute("SELECT email FROM addresses")]
    finally:
        con.close()
    return sum(1 for e in emails if normalize_address(e) != e)


def fuzzed_headers(tmp: Path, n: int, rng: random.Random) -> Row:
    row = Row("fuzzed headers")
    work = tmp / "fuzz"
    root = work / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    files = corpus_files()
    mbox = work / "fuzz.mbox"
    with open(mbox, "wb") as out:
        for i in range(n):
            data = mutate_message(rng.choice(files).read_bytes(), rng)
            (root / "cur" / f"{i}.M1.fuzz:2,S").write_bytes(data)
            out.write(
                b"From fuzz@example.com Mon Jan  1 00:00:00 2001\n"
                + data.replace(b"\nFrom ", b"\n>From ")
                + b"\n\n"
            )
    cfg = config(work)
    fresh_state(work)
    db = work / "state" / "kw.db"
    for kind, path in (("maildir", root), ("mbox", mbox)):
        first = kw(cfg, "import", kind, str(path), "--account", kind)
        stored, skipped = accounted(db, kind)
        second = kw(cfg, "import", kind, str(path), "--account", kind)
        tb = traceback_in(first, second)
        again = 0 if second.stdout.strip().startswith("0 imported") else 1
        if kind == "maildir":  # one file, one message: every file is stored or skipped once
            lost, dup = max(0, n - stored - skipped), max(0, stored + skipped - n)
        else:  # mbox boundaries may join a truncated message to the next one
            lost = dup = 0
        invalid = invalid_stored(db)
        for i in range(n):
            row.trial(
                lost=int(i < lost),
                duplicated=int(i < dup),
                tracebacks=tb if i == 0 else 0,
                other=(again + invalid + int(first.returncode != 0)) if i == 0 else 0,
            )
        row.note(f"{kind}: {first.stdout.strip()[:160]}")
        if invalid:
            row.note(f"{invalid} invalid addresses stored")
    ok = fingerprint(work / "state" / "kw.db").ok
    if not ok:
        row.other += 1
    return row


def mutate_ics(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    kind = rng.randrange(8)
    if kind == 0 and lines:  # an endless rule far faster than daily
        i = next((j for j, x in enumerate(lines) if x.startswith("DTSTART")), 0)
        lines.insert(
            i + 1,
            rng.choice(
                [
                    "RRULE:FREQ=MINUTELY",
                    "RRULE:FREQ=SECONDLY",
                    "RRULE:FREQ=HOURLY",
                    "RRULE:FREQ=DAILY;BYHOUR=1,2,3,4,5,6,7,8;BYMINUTE=0,15,30,45",
                ]
            ),
        )
    elif kind == 1:  # counts and intervals that make no sense
        lines = [
            x
            + rng.choice(
                [";COUNT=999999999", ";INTERVAL=0", ";UNTIL=99991231T000000Z", ";BYSETPOS=400"]
            )
            if x.startswith("RRULE")
            else x
            for x in lines
        ]
    elif kind == 2:  # lines dropped
        lines = [x for x in lines if rng.random() > 0.15]
    elif kind == 3:  # truncated
        return text[: rng.randrange(len(text) + 1)]
    elif kind == 4:  # junk bytes
        chars = list(text)
        for _ in range(rng.randrange(1, 40)):
            if chars:
                chars[rng.randrange(len(chars))] = chr(
                    rng.choice([0, 1, 0xFFFD, 0x202E, rng.randrange(32, 0x2FFF)])
                )
        return "".join(chars)
    elif kind == 5:  # time zones nobody has
        lines = [re.sub(r"TZID=[^:;]*", "TZID=Mars/Olympus_Mons", x) for x in lines]
    elif kind == 6:  # thousands of extra dates
        i = next((j for j, x in enumerate(lines) if x.startswith("DTSTART")), 0)
        lines.insert(
            i + 1,
            "RDATE:"
            + ",".join(
                f"2024{m:02d}{d:02d}T{h:02d}0000Z"
                for m in range(1, 13)
                for d in range(1, 28)
                for h in range(0, 24, 3)
            ),
        )
    else:  # attendees with hostile addresses
        lines = [
            x.replace("mailto:", "mailto:=?utf-8?q?\x14") if "ATTENDEE" in x else x for x in lines
        ]
    return "\r\n".join(lines) + "\r\n"


def fuzzed_ics(tmp: Path, rng: random.Random) -> Row:
    row = Row("fuzzed .ics")
    work = tmp / "ics"
    folder = work / "calendars"
    folder.mkdir(parents=True)
    files = sorted((DATA / "ics").rglob("*.ics"))
    for i, f in enumerate(files):
        text = f.read_bytes().decode("utf-8", "replace")
        (folder / f"{i}.ics").write_text(mutate_ics(text, rng), encoding="utf-8", errors="replace")
    cfg = config(work)
    fresh_state(work)
    first = kw(cfg, "import", "ics", str(folder), timeout=600)
    again = kw(cfg, "import", "ics", str(folder), timeout=600)
    tb = traceback_in(first, again)
    failed = int(first.returncode != 0) + int(again.returncode != 0)
    ok = fingerprint(work / "state" / "kw.db").ok
    for i in range(len(files)):
        row.trial(tracebacks=tb if i == 0 else 0, other=(failed + int(not ok)) if i == 0 else 0)
    row.note(f"{len(files)} files: {first.stdout.strip()[:200]}")
    return row


# -- broken configs ---------------------------------------------------------------------------------
GOOD = """\
[me]
name = "Jane"
addresses = ["jane@example.com"]
timezone = "Europe/Berlin"
[store]
path = "{db}"
"""


def broken_configs(db: Path) -> list[tuple[str, bytes | None, bool]]:
    """(what, file content (None: no file), valid)."""
    g = GOOD.format(db=db)
    cases: list[tuple[str, str, bool]] = [
        ("valid", g, True),
        ("digest time with seconds", g + '[digest]\ntime = "07:30:15"\n', True),
        ("empty address list", g.replace('["jane@example.com"]', "[]"), False),
        ("no [me]", g.split("[store]")[1].join(["[store]", ""]), False),
        ("bad TOML", g + "[digest\ntime=", False),
        ("unknown section", g + "[digets]\n", False),
        ("unknown key", g + "[digest]\ntiem = 1\n", False),
        ("zone unknown", g.replace("Europe/Berlin", "Mars/Olympus"), False),
        ("zone empty", g.replace("Europe/Berlin", ""), False),
        ("address invalid", g.replace("jane@example.com", "jane at example"), False),
        (
            "address with control char",
            g.replace("jane@example.com", "ja\\u0014ne@example.com"),
            False,
        ),
        ("addresses not a list", g.replace('["jane@example.com"]', '"jane@example.com"'), False),
        ("name empty", g.replace('"Jane"', '""'), False),
        ("name a number", g.replace('"Jane"', "7"), False),
        ("digest time 25:00", g + '[digest]\ntime = "25:00"\n', False),
        ("digest time words", g + '[digest]\ntime = "early"\n', False),
        ("max_items zero", g + "[digest]\nmax_items = 0\n", False),
        ("max_items string", g + '[digest]\nmax_items = "7"\n', False),
        ("duration negative", g + '[daemon]\nsync_interval = "-5m"\n', False),
        ("duration unitless", g + '[daemon]\nsync_interval = "15"\n', False),
        ("log level", g + '[daemon]\nlog_level = "loud"\n', False),
        (
            "tiers shrink outwards",
            g
            + '[[tiers]]\nname = "a"\nsize = 50\ncadence = "2w"\n[[tiers]]\nname = "b"\nsize = 5\ncadence = "8w"\n',
            False,
        ),
        (
            "tier cadences out of order",
            g
            + '[[tiers]]\nname = "a"\nsize = 5\ncadence = "20w"\n[[tiers]]\nname = "b"\nsize = 50\ncadence = "8w"\n',
            False,
        ),
        (
            "tiers duplicate",
            g
            + '[[tiers]]\nname = "a"\nsize = 5\ncadence = "2w"\n[[tiers]]\nname = "a"\nsize = 50\ncadence = "8w"\n',
            False,
        ),
        ("tiers empty list", g + "tiers = []\n", False),
        (
            "dormant below fading",
            g + "[engine]\nfading_factor = 4.0\ndormant_factor = 2.0\n",
            False,
        ),
        ("factor out of range", g + "[engine]\nfading_factor = 0.1\n", False),
        ("smtp without table", g + '[delivery]\nmethod = "smtp"\n', False),
        (
            "smtp plaintext remote",
            g
            + '[delivery]\nmethod = "smtp"\n[delivery.smtp]\nhost = "mail.example.com"\nsecurity = "none"\n',
            False,
        ),
        (
            "smtp two password sources",
            g
            + '[delivery]\nmethod = "smtp"\n[delivery.smtp]\nhost = "h"\npassword_env = "A"\npassword_file = "/x"\n',
            False,
        ),
        ("delivery method unknown", g + '[delivery]\nmethod = "pigeon"\n', False),
        ("gmail delivery without account", g + '[delivery]\nmethod = "gmail"\n', False),
        ("account without kind", g + '[[accounts]]\nname = "x"\n', False),
        ("account kind unknown", g + '[[accounts]]\nname = "x"\nkind = "fax"\n', False),
        (
            "account bad name",
            g + '[[accounts]]\nname = "a b/c"\nkind = "mbox"\npath = "/tmp/x"\n',
            False,
        ),
        (
            "accounts duplicate",
            g
            + '[[accounts]]\nname = "x"\nkind = "mbox"\npath = "/a"\n[[accounts]]\nname = "x"\nkind = "mbox"\npath = "/b"\n',
            False,
        ),
        (
            "imap without password source",
            g + '[[accounts]]\nname = "x"\nkind = "imap"\nhost = "h"\nusername = "u"\n',
            False,
        ),
        (
            "imap plaintext remote",
            g
            + '[[accounts]]\nname = "x"\nkind = "imap"\nhost = "imap.example.com"\nusername = "u"\npassword_env = "P"\nsecurity = "none"\n',
            False,
        ),
        ("accounts a table", g + '[accounts]\nname = "x"\n', False),
        ("regex invalid", g + '[exclude]\nregexes = ["(unclosed"]\n', False),
        ("birthday invalid", g + '[people]\nbirthdays = { "tom@example.com" = "13-45" }\n', False),
        (
            "greeting unknown tier",
            g + '[[greetings]]\nname = "New year"\ndate = "01-01"\ntiers = ["nope"]\n',
            False,
        ),
        ("section a value", g + "privacy = 3\n", False),
    ]
    out: list[tuple[str, bytes | None, bool]] = [(w, t.encode(), v) for w, t, v in cases]
    out += [
        ("not UTF-8", g.encode() + b"# \xff\xfe\n", False),
        ("NUL bytes", g.encode().replace(b"Jane", b"Ja\x00ne"), False),
        ("empty file", b"", False),
        ("missing file", None, False),
    ]
    return out


def broken_config_runs(tmp: Path) -> Row:
    row = Row("broken configs")
    work = tmp / "configs"
    work.mkdir()
    (work / "state").mkdir(mode=0o700)
    cases = broken_configs(work / "state" / "kw.db")
    for i, (what, content, valid) in enumerate(cases):
        cfg = work / f"c{i}.toml"
        if content is not None:
            cfg.write_bytes(content)
            cfg.chmod(0o600)
        runs = [kw(cfg, "status", timeout=60), kw(cfg, "doctor", "--timeout", "1", timeout=60)]
        if not valid:
            runs.append(kw(cfg, "run", timeout=30))
        tb = traceback_in(*runs)
        if valid:
            other = int(runs[0].returncode != 0)
        else:
            other = sum(
                1
                for p in runs
                if p.returncode not in (1, 2) or (not p.stderr.strip() and "FAIL" not in p.stdout)
            )
        row.trial(tracebacks=tb, other=other)
        if tb or other:
            row.note(f"{what}: exits {[p.returncode for p in runs]}: {runs[-1].stderr[-160:]}")
    row.note(f"{len(cases)} configs x status, doctor (and run for the broken ones)")
    return row


# -- a damaged and a read-only store ---------------------------------------------------------------
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("people",),
    ("digest",),
    ("sync",),
    ("snooze", "--list"),
)


def one_line(proc: subprocess.CompletedProcess[str], words: str) -> bool:
    """Worked, or failed with exit 2 and one line that says ``words``."""
    if proc.returncode == 0:
        return True
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 2 and len(lines) == 1 and words in lines[0]


def run_briefly(cfg: Path, seconds: float = 4) -> subprocess.CompletedProcess[str]:
    """``keepwarm run`` for a few seconds (SIGTERM if it keeps running)."""
    proc = subprocess.Popen(
        [KEEPWARM, "run"],
        env=env_for(cfg),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def store_world(tmp: Path, name: str) -> tuple[Path, Path]:
    work = tmp / name
    inbox = work / "inbox"
    shutil.copytree(DATA / "enron-maildir-sample" / "allen-p", inbox)
    cfg = config(
        work,
        f"""\
        [delivery]
        outbox = "{work / "outbox"}"
        [[accounts]]
        name = "mail"
        kind = "maildir"
        path = "{inbox}"
        """,
    )
    fresh_state(work)
    assert kw(cfg, "sync").returncode == 0
    return work, cfg


def damaged_store(tmp: Path, rng: random.Random, trials: int = 12) -> Row:
    row = Row("damaged database")
    work, cfg = store_world(tmp, "damaged")
    db = work / "state" / "kw.db"
    pristine = work / "pristine.db"
    shutil.copy(db, pristine)
    for n in range(trials):
        shutil.copy(pristine, db)
        for side in ("-wal", "-shm"):
            Path(f"{db}{side}").unlink(missing_ok=True)
        if n % 8 == 6:
            db.write_bytes(db.read_bytes()[: rng.randrange(100, 40_000)])
        elif n % 8 == 7:
            damage_text(db, b'"kind":"maildir"')
        else:
            damage_random_pages(db, rng, pages=rng.randrange(1, 6))
        new = work / "inbox" / f"new-{n}"  # new mail, so a sync writes
        new.write_bytes(
            b"From: a@example.com\nTo: " + ME.encode() + b"\nMessage-ID: <new%d@faults>\n"
            b"Date: Mon, 1 Oct 2001 10:00:00 -0500\nSubject: new\n\nhi\n" % n
        )
        runs = [kw(cfg, *args, timeout=120) for args in COMMANDS]
        doctor = kw(cfg, "doctor", "--timeout", "1", timeout=120)
        daemon = run_briefly(cfg)
        bad = sum(1 for p in runs if not one_line(p, "is damaged"))
        bad += int(daemon.returncode not in (0, 2))
        bad += int(doctor.returncode not in (0, 1))
        row.trial(tracebacks=traceback_in(*runs, doctor, daemon), other=bad)
        if bad:
            row.note(
                f"trial {n}: exits {[p.returncode for p in runs]}, run {daemon.returncode}: "
                + " | ".join(p.stderr.strip()[-120:] for p in runs if p.returncode)
            )
    row.note(f"{trials} damaged copies x {len(COMMANDS)} commands, doctor and the daemon")
    return row


def read_only_store(tmp: Path) -> Row:
    row = Row("read-only state directory")
    work, cfg = store_world(tmp, "readonly")
    state = work / "state"
    try:
        with read_only(state):
            for args in (
                *COMMANDS,
                ("digest", "--send"),
                ("import", "maildir", str(work / "inbox")),
            ):
                p = kw(cfg, *args, timeout=120)
                ok = (
                    one_line(p, f"cannot write to its state directory {state}")
                    and p.returncode == 2
                )
                row.trial(tracebacks=traceback_in(p), other=int(not ok))
                if not ok:
                    row.note(f"{' '.join(args)}: exit {p.returncode}: {p.stderr[-160:]}")
            daemon = run_briefly(cfg)
            ok = daemon.returncode == 2 and "cannot write to its state directory" in daemon.stderr
            row.trial(tracebacks=traceback_in(daemon), other=int(not ok))
            doctor = kw(cfg, "doctor", "--timeout", "1")
            ok = "[FAIL] database directory" in doctor.stdout
            row.trial(tracebacks=traceback_in(doctor), other=int(not ok))
    except subprocess.CalledProcessError as exc:
        row.note(f"could not mount the directory read-only ({exc}); run as root")
        row.other += 1
    return row


# -- IMAP cut mid-FETCH -------------------------------------------------------------------------------
def proxy_cuts(tmp: Path, server: Dovecot, rng: random.Random, trials: int = 20) -> Row:
    row = Row("IMAP cut mid-FETCH (proxy)")
    work = tmp / "proxy"
    work.mkdir()
    proxy = TcpProxy(server.port).start()
    try:
        cfg = imap_config(work, server, proxy.port, security="starttls")
        fresh_state(work)
        ref_run = kw(cfg, "sync")
        assert ref_run.returncode == 0, ref_run.stderr
        ref = fingerprint(work / "state" / "kw.db")
        for n in range(trials):
            fresh_state(work)
            cut = rng.randrange(2_000, 200_000)
            proxy.cut_after = cut
            proxy.keep_cutting = n % 2 == 1  # every connection, until healed
            cuts = proxy.cuts
            runs = [kw(cfg, "sync")]
            if proxy.keep_cutting:
                runs.append(kw(cfg, "sync"))
                proxy.keep_cutting, proxy.cut_after = False, None
            runs.append(kw(cfg, "sync"))
            got = fingerprint(work / "state" / "kw.db")
            lost, dup = differences(ref, got)
            said = "".join(p.stderr for p in runs)
            other = int(runs[-1].returncode != 0) + int(bool(PROTOCOL_TEXT.search(said)))
            row.trial(lost=lost, duplicated=dup, tracebacks=traceback_in(*runs), other=other)
            if lost or dup or other:
                row.note(f"trial {n}: lost {lost}, dup {dup}: {said[-200:]}")
            if proxy.cuts == cuts:
                row.note(f"trial {n}: the cut at byte {cut:,} came after the sync")
        row.note(f"{proxy.cuts} connections cut; errors shown, e.g.: {_worded(runs)}")
    finally:
        proxy.stop()
    return row


def _worded(runs: list[subprocess.CompletedProcess[str]]) -> str:
    for p in runs:
        for line in p.stderr.splitlines():
            if "imap" in line:
                return line.strip()[:160]
    return "(none)"


# -- main -----------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    head = f"{'fault':34} {'trials':>7} {'survived':>9} {'lost':>6} {'duplicated':>11} {'tracebacks':>11} {'other':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.name:34} {r.trials:>7,} {r.survived:>9,} {r.lost:>6} {r.duplicated:>11} {r.tracebacks:>11} {r.other:>6}"
        )
    total = Row(
        "total",
        trials=sum(r.trials for r in rows),
        survived=sum(r.survived for r in rows),
        lost=sum(r.lost for r in rows),
        duplicated=sum(r.duplicated for r in rows),
        tracebacks=sum(r.tracebacks for r in rows),
        other=sum(r.other for r in rows),
    )
    print("-" * len(head))
    print(
        f"{total.name:34} {total.trials:>7,} {total.survived:>9,} {total.lost:>6} {total.duplicated:>11} {total.tracebacks:>11} {total.other:>6}"
    )
    kills = sum(r.trials for r in rows if r.name.startswith("kill -9"))
    print(f"kill -9: {kills} (import, sync and digest delivery)")
    for r in rows:
        for n in r.notes:
            print(f"  {r.name}: {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--kills", type=int, default=110, help="kill -9 trials in all (import, sync, digest)"
    )
    ap.add_argument("--fuzz", type=int, default=2000, help="fuzzed messages")
    ap.add_argument("--imap-messages", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the shared corpora are missing: expected {DATA}")
    warnings.filterwarnings("ignore", message=".*login_data is deprecated")  # aiosmtpd
    rng = random.Random(args.seed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (Dovecot, files) too
    tmp = Path(tempfile.mkdtemp(prefix="keepwarm-faults-"))
    rows: list[Row] = []
    dovecot_root = Path(tempfile.mkdtemp(prefix="keepwarm-faults-imap-"))  # mail user reaches it
    server = Dovecot(dovecot_root, {"faults": "faults-pw"})
    started = time.monotonic()
    try:
        server.start()
        load(server, "faults", args.imap_messages)
        index(server, "faults")
        k_import = args.kills * 4 // 11
        k_sync = args.kills * 4 // 11
        k_digest = args.kills - k_import - k_sync
        steps: list[Callable[[], Row | tuple[Row, Row]]] = [
            lambda: kills_during_import(tmp, k_import, rng),
            lambda: kills_during_sync(tmp, server, k_sync, rng),
            lambda: kills_during_delivery(tmp, k_digest, rng),
            lambda: fuzzed_headers(tmp, args.fuzz, rng),
            lambda: fuzzed_ics(tmp, rng),
            lambda: broken_config_runs(tmp),
            lambda: damaged_store(tmp, rng),
            lambda: read_only_store(tmp),
            lambda: proxy_cuts(tmp, server, rng),
        ]
        for step in steps:
            t = time.monotonic()
            got = step()
            parts = got if isinstance(got, tuple) else (got,)
            for r in parts:
                r.note(
                    f"took {time.monotonic() - t:.0f}s"
                    + (" (with the row above)" if r is not parts[0] else "")
                )
                rows.append(r)
                print(
                    f"... {r.name}: {r.survived}/{r.trials} survived", file=sys.stderr, flush=True
                )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(dovecot_root, ignore_errors=True)
    print(f"keepwarm fault campaign (seed {args.seed}, {time.monotonic() - started:.0f}s)")
    print_table(rows)
    sys.exit(0 if all(r.clean for r in rows) else 1)


if __name__ == "__main__":
    main()
