"""Is the digest right on real mail? A judged evaluation on real mailboxes.

For every mailbox in ``tests/quality/mailboxes.toml`` (real corpora under ``../shared/data``) this
imports the mailbox into a fresh store with the real CLI, then runs
``keepwarm digest --json --send --as-of D`` for each of its dates in order (a file outbox: the
cooldowns apply as in daily use), and collects every suggested item.

Each item is matched against ``tests/quality/labels.jsonl``: verdicts (right / borderline / wrong)
given by reading the raw message files, never keepwarm's output. ``tests/quality/expected.jsonl``
lists what a careful assistant would have put in the digest on a date (labelled blind, from the
files alone); a *miss* is found when the digest of that date, or of a date shortly before, showed
that person for that reason.

Prints precision per kind and overall, misses found/expected, non-human items, crashes and the
number of unlabelled items (each is listed: label it before the change that made it lands).

Usage::

    .venv/bin/python bench/quality.py                  # run every mailbox, print the table
    .venv/bin/python bench/quality.py --only whalley-g # one mailbox
    .venv/bin/python bench/quality.py --save run.json  # keep the items (compare before/after)
    .venv/bin/python bench/quality.py --load run.json  # score a saved run again
    .venv/bin/python bench/quality.py --todo todo.jsonl  # unlabelled items, with evidence paths
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
QUALITY = ROOT / "tests" / "quality"
SPEC = QUALITY / "mailboxes.toml"
LABELS = QUALITY / "labels.jsonl"
EXPECTED = QUALITY / "expected.jsonl"
VERDICTS = ("right", "borderline", "wrong")
# What a careful assistant's item looks like in keepwarm's kinds.
MISS_KINDS: Mapping[str, frozenset[str]] = {
    "reply_owed": frozenset({"reply_owed"}),
    "reconnect": frozenset({"fading", "dormant"}),
    "follow_up": frozenset({"awaiting_reply", "meeting_followup"}),
    "return_favour": frozenset({"lopsided_them"}),
    "nurture": frozenset({"new", "growing"}),
    "occasion": frozenset(
        {"occasion_birthday", "occasion_anniversary", "occasion_job_change", "occasion_greeting"}
    ),
}
MISS_GRACE_DAYS = 14  # shown this recently counts: the cooldown keeps it from repeating
TARGETS = {"overall": 0.80, "kind": 0.70, "reply_owed": 0.85, "misses": 0.80}
_ADDRESS = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")


@dataclass(frozen=True)
class Mailbox:
    name: str
    path: str  # relative to ../shared/data
    owner: str
    addresses: tuple[str, ...]
    timezone: str
    dates: tuple[str, ...]
    expect: str = "relationships"  # relationships | quiet (never writes) | robust (damaged)
    extra: str = ""  # extra TOML appended to the config (e.g. [me] delegates)


@dataclass
class Item:
    """One suggestion shown in one digest."""

    mailbox: str
    date: str
    kind: str
    person: str
    addresses: list[str]
    name: str
    ref: str  # what makes the item this item: the owed message's path, or the other person
    action: str
    reasons: list[str]
    evidence: list[str] = field(default_factory=list)
    other: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.mailbox, self.date, self.kind, self.person, self.ref)


@dataclass
class Run:
    items: list[Item]
    crashes: list[str]
    quiet_days: dict[str, int]  # mailbox -> dates with no item at all


# -- the spec -------------------------------------------------------------------------------------
def load_spec(path: Path = SPEC) -> list[Mailbox]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    out: list[Mailbox] = []
    for m in raw["mailbox"]:
        out.append(
            Mailbox(
                name=m["name"],
                path=m["path"],
                owner=m["owner"],
                addresses=tuple(m["addresses"]),
                timezone=m.get("timezone", "America/Chicago"),
                dates=tuple(sorted(m["dates"])),
                expect=m.get("expect", "relationships"),
                extra=m.get("extra", ""),
            )
        )
    return out


def _config(box: Mailbox, work: Path) -> Path:
    addresses = ", ".join(json.dumps(a) for a in box.addresses)
    text = f"""[me]
name = {json.dumps(box.owner)}
addresses = [{addresses}]
timezone = {json.dumps(box.timezone)}

[store]
path = {json.dumps(str(work / "keepwarm.db"))}

[delivery]
method = "file"
outbox = {json.dumps(str(work / "outbox"))}
{box.extra}
"""
    path = work / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _keepwarm() -> list[str]:
    exe = Path(sys.executable).with_name("keepwarm")
    if not exe.exists():
        sys.exit(f"keepwarm is not installed next to {sys.executable}: run `make demo` first")
    return [str(exe)]


# -- running --------------------------------------------------------------------------------------
def run_mailbox(box: Mailbox, work: Path) -> tuple[list[Item], list[str], int]:
    """Import the mailbox into a fresh store, then one digest per date (sent to a file outbox)."""
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("keepwarm.db", "keepwarm.db-wal", "keepwarm.db-shm"):
        (work / stale).unlink(missing_ok=True)
    config = _config(box, work)
    env = {**os.environ, "KEEPWARM_CONFIG": str(config)}
    crashes: list[str] = []
    source = DATA / box.path
    imp = subprocess.run(
        [*_keepwarm(), "--config", str(config), "import", "maildir", str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if imp.returncode != 0 or "Traceback" in imp.stderr:
        crashes.append(f"{box.name}: import exited {imp.returncode}: {imp.stderr.strip()[-300:]}")
    items: list[Item] = []
    quiet = 0
    for day in box.dates:
        proc = subprocess.run(
            [*_keepwarm(), "--config", str(config), "digest", "--json", "--send", "--as-of", day],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0 or "Traceback" in proc.stderr:
            crashes.append(f"{box.name} {day}: exited {proc.returncode}: {proc.stderr[-300:]}")
            continue
        got = json.loads(proc.stdout)
        found = [_item(box, day, s) for s in got["suggestions"]]
        quiet += not found
        items.extend(found)
    _add_evidence(box, work / "keepwarm.db", items)
    return items, crashes, quiet


def _item(box: Mailbox, day: str, s: Mapping[str, Any]) -> Item:
    person = s["person"]
    facts = s.get("facts") or {}
    other = (s.get("other") or {}).get("key")
    return Item(
        mailbox=box.name,
        date=day,
        kind=s["kind"],
        person=person["key"],
        addresses=list(person.get("addresses") or [person.get("address") or person["key"]]),
        name=person.get("name") or "",
        ref=str(facts.get("message") or other or ""),  # a store id until _add_evidence maps it
        action=s.get("action", ""),
        reasons=list(s.get("reasons") or []),
        other=other,
        facts=dict(facts),
    )


def _add_evidence(box: Mailbox, db: Path, items: list[Item]) -> None:
    """Map the store ids of owed messages to their files (relative to ../shared/data)."""
    if not db.exists():
        return
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for it in items:
            if not it.ref.isdigit():
                continue
            rows = conn.execute(
                "SELECT provider_id FROM message_sources WHERE message = ? ORDER BY provider_id",
                (int(it.ref),),
            ).fetchall()
            paths = [f"{box.path}/{r[0]}" for r in rows]
            it.evidence = paths
            it.ref = paths[0] if paths else ""
    finally:
        conn.close()


def run_all(boxes: Sequence[Mailbox], work: Path) -> Run:
    items: list[Item] = []
    crashes: list[str] = []
    quiet: dict[str, int] = {}
    for box in boxes:
        got, bad, q = run_mailbox(box, work / box.name)
        items.extend(got)
        crashes.extend(bad)
        quiet[box.name] = q
        print(f"  {box.name}: {len(got)} items over {len(box.dates)} dates", file=sys.stderr)
    return Run(items, crashes, quiet)


# -- labels ---------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{n}: not JSON: {exc}")


def label_key(row: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    return (row["mailbox"], row["date"], row["kind"], row["person"], row.get("ref") or "")


def load_labels(path: Path = LABELS) -> dict[tuple[str, str, str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    for row in read_jsonl(path):
        if row.get("verdict") not in VERDICTS:
            sys.exit(f"{path}: bad verdict in {row}")
        out[label_key(row)] = row  # a later line overrides an earlier one
    return out


# -- scoring --------------------------------------------------------------------------------------
@dataclass
class Score:
    by_kind: dict[str, Counter[str]]
    unlabelled: list[Item]
    nonhuman: list[Item]
    invalid_addresses: list[Item]
    misses_found: int
    misses_total: int
    missed: list[dict[str, Any]]
    crashes: list[str]
    quiet: dict[str, int]
    boxes: dict[str, Counter[str]]

    def precision(self, kinds: Iterable[str] | None = None) -> tuple[float | None, int]:
        c: Counter[str] = Counter()
        for k, v in self.by_kind.items():
            if kinds is None or k in kinds:
                c.update(v)
        n = sum(c[v] for v in VERDICTS)
        return (c["right"] / n if n else None), n


def score(run: Run, boxes: Sequence[Mailbox]) -> Score:
    labels = load_labels()
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    per_box: dict[str, Counter[str]] = defaultdict(Counter)
    unlabelled: list[Item] = []
    nonhuman: list[Item] = []
    invalid: list[Item] = []
    for it in run.items:
        if not _ADDRESS.match(it.person):
            invalid.append(it)
        lab = labels.get(it.key)
        if lab is None:
            unlabelled.append(it)
            continue
        by_kind[it.kind][lab["verdict"]] += 1
        per_box[it.mailbox][lab["verdict"]] += 1
        if lab.get("human") is False:
            nonhuman.append(it)
    names = {b.name for b in boxes}
    expected = [e for e in read_jsonl(EXPECTED) if e["mailbox"] in names]
    found, missed = 0, []
    for e in expected:
        if _shown(e, run.items):
            found += 1
        else:
            missed.append(e)
    return Score(
        dict(by_kind),
        unlabelled,
        nonhuman,
        invalid,
        found,
        len(expected),
        missed,
        run.crashes,
        run.quiet_days,
        dict(per_box),
    )


def _shown(e: Mapping[str, Any], items: Sequence[Item]) -> bool:
    kinds = MISS_KINDS.get(e["kind"], frozenset({e["kind"]}))
    day = date.fromisoformat(e["date"])
    who = {e["person"], *e.get("addresses", ())}
    for it in items:
        if it.mailbox != e["mailbox"] or it.kind not in kinds:
            continue
        if not who.intersection((it.person, *it.addresses)):
            continue
        shown = date.fromisoformat(it.date)
        if day - timedelta(days=MISS_GRACE_DAYS) < shown <= day:
            return True
    return False


def _pct(x: float | None) -> str:
    return "   -" if x is None else f"{100 * x:3.0f}%"


def report(s: Score) -> bool:
    """Print the table; True when every target is met."""
    print(f"{'kind':22} {'items':>5} {'right':>5} {'border':>6} {'wrong':>5} {'prec':>5}")
    for kind in sorted(s.by_kind, key=lambda k: -sum(s.by_kind[k].values())):
        c = s.by_kind[kind]
        p, n = s.precision([kind])
        print(f"{kind:22} {n:5} {c['right']:5} {c['borderline']:6} {c['wrong']:5} {_pct(p):>5}")
    p_all, n_all = s.precision()
    tot: Counter[str] = Counter()
    for c in s.by_kind.values():
        tot.update(c)
    print(
        f"{'overall':22} {n_all:5} {tot['right']:5} {tot['borderline']:6} {tot['wrong']:5} "
        f"{_pct(p_all):>5}"
    )
    print()
    for box in sorted(s.boxes):
        c = s.boxes[box]
        n = sum(c.values())
        print(f"  {box:20} {n:4} items, {_pct(c['right'] / n if n else None)} right")
    miss_share = s.misses_found / s.misses_total if s.misses_total else None
    print(f"misses found: {s.misses_found}/{s.misses_total} ({_pct(miss_share).strip()})")
    for e in s.missed:
        print(f"  missed: {e['mailbox']} {e['date']} {e['kind']} {e['person']}: {e['reason']}")
    print(f"quiet days (no item): {sum(s.quiet.values())} " + str(dict(sorted(s.quiet.items()))))
    print(f"non-human items: {len(s.nonhuman)}")
    for it in s.nonhuman:
        print(f"  non-human: {it.mailbox} {it.date} {it.kind} {it.person}")
    print(f"invalid addresses: {len(s.invalid_addresses)}")
    print(f"crashes: {len(s.crashes)}")
    for c in s.crashes:
        print(f"  crash: {c}")
    print(f"unlabelled items: {len(s.unlabelled)}")
    for it in s.unlabelled[:50]:
        print(f"  unlabelled: {it.mailbox} {it.date} {it.kind} {it.person} {it.ref}")
    kinds_ok = all(
        (s.precision([k])[0] or 0) >= TARGETS["kind"] for k in s.by_kind if s.precision([k])[1]
    )
    owed = s.precision(["reply_owed"])[0]
    met = (
        (p_all or 0) >= TARGETS["overall"]
        and kinds_ok
        and (owed is None or owed >= TARGETS["reply_owed"])
        and (miss_share is None or miss_share >= TARGETS["misses"])
        and not s.nonhuman
        and not s.crashes
        and not s.invalid_addresses
        and not s.unlabelled
    )
    print(
        "targets (overall >= 80%, every kind >= 70%, reply owed >= 85%, misses >= 80%, "
        f"no non-human, no crash, 0 unlabelled): {'MET' if met else 'NOT MET'}"
    )
    return met


def write_todo(s: Score, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for it in s.unlabelled:
            f.write(json.dumps(asdict(it), ensure_ascii=False) + "\n")
    print(f"wrote {len(s.unlabelled)} unlabelled items to {path}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="run only this mailbox (repeatable)")
    ap.add_argument("--work", type=Path, help="keep the stores here (default: a temp dir)")
    ap.add_argument("--save", type=Path, help="write the run's items to this JSON file")
    ap.add_argument("--load", type=Path, help="score a run saved with --save instead of running")
    ap.add_argument("--todo", type=Path, help="write the unlabelled items to this JSONL file")
    ap.add_argument("--strict", action="store_true", help="exit 1 unless every target is met")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: the real-mail corpora are not at {DATA}")
        return 0
    boxes = [b for b in load_spec() if not args.only or b.name in args.only]
    if args.load:
        raw = json.loads(args.load.read_text(encoding="utf-8"))
        run = Run([Item(**i) for i in raw["items"]], raw["crashes"], raw["quiet"])
        run.items = [i for i in run.items if i.mailbox in {b.name for b in boxes}]
    elif args.work:
        run = run_all(boxes, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="keepwarm-quality-") as tmp:
            run = run_all(boxes, Path(tmp))
    if args.save:
        args.save.write_text(
            json.dumps(
                {
                    "items": [asdict(i) for i in run.items],
                    "crashes": run.crashes,
                    "quiet": run.quiet_days,
                },
                indent=1,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
    s = score(run, boxes)
    met = report(s)
    if args.todo:
        write_todo(s, args.todo)
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
