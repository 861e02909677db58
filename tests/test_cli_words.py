"""Names and addresses on screen: never cut, names from display names (X-From of Notes exports),
one vocabulary for kind/tier/stage, counts that agree with their noun, no raw internals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from keepwarm.connectors.base import Address, Attendee, Batch, EventMeta, MessageMeta
from keepwarm.connectors.headers import message_from_headers
from keepwarm.daemon.cli import cli
from keepwarm.daemon.store import Store
from keepwarm.daemon.words import plural, table

ME = "me@example.com"
LONG = "maximilian.alexander.von-und-zu-lichtenstein@subsidiary.example-holdings.com"
NOW = datetime.now(UTC).replace(microsecond=0)


def test_plural_and_table() -> None:
    assert (
        plural(1, "person", "people") == "1 person" and plural(2, "person", "people") == "2 people"
    )
    assert plural(1, "attendee") == "1 attendee" and plural(1200, "message") == "1,200 messages"
    lines = table(["name", "n"], [["a" * 50, "1"], ["b", "22"]], right=(1,))
    assert lines[1] == "a" * 50 + "   1" and lines[2].endswith(" 22")
    assert table(["name", "n"], [["a b", "1"]], plain=True) == ["name\tn", "a b\t1"]


@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(max_size=6), min_size=n, max_size=n),
            st.lists(st.lists(st.text(max_size=9), min_size=n, max_size=n), max_size=6),
            st.sets(st.integers(min_value=0, max_value=n - 1)),
        )
    )
)
@example((["{0}", "n"], [["{}", "%s"], ["", "é\u2028"]], {1}))
@example(([""], [[""]], set()))
def test_table_pads_cells_as_ljust_and_rjust_do(
    drawn: tuple[list[str], list[list[str]], set[int]],
) -> None:
    """table (a column's width at once, each line one str.format) writes the lines of the
    cell-by-cell ljust/rjust it replaced."""
    headers, rows, right = drawn
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    assert table(headers, rows, sorted(right)) == [line(headers), *(line(r) for r in rows)]


def test_x_from_gives_the_name_a_bare_from_lacks() -> None:
    base = {"to": [ME], "date": ["Mon, 23 Oct 2000 06:13:00 -0700"], "subject": ["x"]}
    cases = [
        ("phillip.allen@enron.com", "Phillip K Allen", "Phillip K Allen"),
        (
            "kenneth.lay@enron.com",
            "Lay, Kenneth </O=ENRON/OU=NA/CN=RECIPIENTS/CN=KLAY>",
            "Kenneth Lay",
        ),
        ("rob@x.org", "rob@x.org (Robert W. Tom)", "Robert W. Tom"),
        ("rob@x.org", "Somebody Else <other@x.org>", ""),  # another address: not their name
    ]
    for sender, x_from, name in cases:
        rec = message_from_headers(
            {**base, "from": [sender], "x-from": [x_from]}, account="a", provider_id="1"
        )
        assert not isinstance(rec, str) and rec.sender is not None
        assert rec.sender.name == name, x_from
    rec = message_from_headers(
        {**base, "from": ["Phil <phillip.allen@enron.com>"], "x-from": ["Other Name"]},
        account="a",
        provider_id="1",
    )
    assert not isinstance(rec, str) and rec.sender is not None and rec.sender.name == "Phil"


@pytest.mark.corpus
def test_enron_people_have_their_display_names(shared_data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[me]\nname = "Phillip Allen"\naddresses = ["phillip.allen@enron.com"]\n'
        f'timezone = "America/Chicago"\n[store]\npath = "{tmp_path / "kw.db"}"\n'
    )
    path = shared_data / "enron-maildir-sample" / "allen-p"
    res = CliRunner().invoke(cli, ["--config", str(cfg), "import", "maildir", str(path)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        cli, ["--config", str(cfg), "people", "--all", "--json", "--as-of", "2001-12-01"]
    )
    rows = {r["key"]: r for r in json.loads(res.output)}
    # the sample is his sent mail: recipients are named by X-To alone
    assert rows["keith.holst@enron.com"]["name"] == "Keith Holst"
    # his assistant sends from his Sent folder: she is him, not a contact
    assert rows["ina.rangel@enron.com"]["kind"] == "self"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    msgs = []
    for i, days in enumerate((40, 39, 10, 9)):
        mine = i % 2 == 1
        msgs.append(
            MessageMeta(
                account="a",
                provider_id=f"p{i}",
                date=NOW - timedelta(days=days),
                sender=Address(ME)
                if mine
                else Address(LONG, "Maximilian Alexander von und zu Lichtenstein"),
                to=(Address(LONG) if mine else Address(ME),),
                message_id=f"m{i}@x",
                subject=("Re: " if mine else "") + f"topic {i // 2}",
            )
        )
    meet = EventMeta(
        account="a",
        provider_id="e1",
        start=NOW - timedelta(days=5),
        end=NOW - timedelta(days=5, hours=-1),
        organizer=Address(ME),
        attendees=(
            Attendee(ME, response="accepted", is_self=True),
            Attendee(LONG, response="accepted"),
        ),
        my_response="accepted",
        title="Chat",
    )
    store = Store.open(tmp_path / "kw.db")
    store.apply_batch("a", "maildir", Batch(messages=msgs, events=[meet]))
    store.close()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[me]\nname = "Jane"\naddresses = ["{ME}"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp_path / "kw.db"}"\n'
    )
    return path


def run(cfg: Path, *args: str) -> str:
    res = CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_tables_never_cut_a_name_or_an_address(cfg: Path) -> None:
    for args in (("people",), ("people", "--all")):
        text = run(cfg, *args)
        assert LONG in text and "Maximilian Alexander von und zu Lichtenstein" in text
    assert "1 person (owed" in run(cfg, "people")
    plain = run(cfg, "people", "--plain").splitlines()
    assert plain[0].split("\t")[:2] == ["name", "address"]
    assert plain[1].split("\t")[1] == LONG and len(plain) == 2


def test_one_vocabulary_and_counts_that_agree(cfg: Path) -> None:
    text = run(cfg, "person", LONG, "--why")
    assert "kind: person, two-way: you have written to each other" in text
    assert "1 small meeting" in text and "(2 attendees; they accepted)" in text
    assert "in your network: tier inner, stage" in text
    assert "a relationship" not in text and "acquaintance" not in text
    assert "urgency" not in text and "facts:" not in text and "ratio" not in text
    row = run(cfg, "people").splitlines()[1]
    assert " inner " in row


def test_the_digest_counts_one_person(cfg: Path) -> None:
    assert "YOUR NETWORK (1 person)" in run(cfg, "digest")
