"""Identity resolution on small hand-built stores."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from leakcheck import close_after_test

from keepwarm.connectors.base import Address, Attendee, Batch, EventMeta, MessageMeta
from keepwarm.connectors.headers import _LIST_OR_ROOM_NAME, not_a_person
from keepwarm.daemon.config import Config, loads
from keepwarm.daemon.identity import (
    ROBOT_PREFIXES,
    ROBOT_SUFFIXES,
    ROBOT_WORDS,
    AddressActivity,
    Identity,
    Person,
    Rules,
    _best_name,
    _my_longest_word,
    _one_address_person,
    _robot_word_in,
    _two_way_reason,
    classify,
    is_two_way,
    local_tokens,
    machine_sender,
    merge_candidates,
    name_key,
    resolve,
    robot_word,
    role_word,
)
from keepwarm.daemon.store import Store

ME = "me@example.com"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
_counter = iter(range(10**9))


def config(extra: str = "") -> Config:
    return loads(
        f"""
[me]
name = "Jane Doe"
addresses = ["{ME}", "jane.doe@gmail.com"]
timezone = "Europe/Berlin"
{extra}
"""
    )


def mail(
    sender: str,
    to: list[str],
    *,
    days: float = 0,
    cc: list[str] = (),  # type: ignore[assignment]
    markers: tuple[str, ...] = (),
    list_id: str | None = None,
    name: str = "",
    subject: str = "hello",
) -> MessageMeta:
    n = next(_counter)
    return MessageMeta(
        account="a",
        provider_id=f"p{n}",
        date=T0 + timedelta(days=days, seconds=n),
        sender=Address(sender, name),
        to=tuple(Address(t) for t in to),
        cc=tuple(Address(c) for c in cc),
        message_id=f"m{n}@x",
        subject=f"{subject} {n}",
        list_id=list_id,
        markers=markers,
    )


def talk(addr: str, name: str = "", days: float = 0) -> list[MessageMeta]:
    """One message each way: a relationship."""
    return [mail(ME, [addr], days=days), mail(addr, [ME], days=days + 1, name=name)]


def build(
    messages: list[MessageMeta],
    events: list[EventMeta] = (),
    extra: str = "",  # type: ignore[assignment]
) -> tuple[Store, Config]:
    store = close_after_test(Store.memory())
    store.apply_batch("a", "maildir", Batch(messages=list(messages), events=list(events)))
    return store, config(extra)


def kind(identity: Identity, addr: str) -> str:
    return identity.people[identity.person_of[addr]].kind


def person(identity: Identity, addr: str) -> Person:
    return identity.people[identity.person_of[addr]]


def test_two_way_person_and_self() -> None:
    store, cfg = build(talk("bob@corp.com", "Bob Stone"))
    ident = resolve(store, cfg)
    bob = person(ident, "bob@corp.com")
    assert bob.kind == "person" and bob.two_way and bob.name == "Bob Stone"
    assert kind(ident, ME) == "self"
    assert ident.self_addresses == {ME, "janedoe@gmail.com"}
    # both configured addresses are one self cluster, even if only one was ever seen
    assert ident.person_of["janedoe@gmail.com"] == ident.person_of[ME]
    assert person(ident, ME).name == "Jane Doe"


def test_one_way_reader_and_one_way_writer_are_not_relationships() -> None:
    msgs = [mail("fan@corp.com", [ME], days=i) for i in range(5)]
    msgs += [mail(ME, ["ignored@corp.com"], days=i) for i in range(5)]
    store, cfg = build(msgs)
    ident = resolve(store, cfg)
    for addr in ("fan@corp.com", "ignored@corp.com"):
        p = person(ident, addr)
        assert p.kind == "person" and not p.two_way
        assert any("no two-way contact" in r for r in p.reasons)


def test_blast_to_forty_people_is_not_a_touch() -> None:
    crowd = [f"p{i}@corp.com" for i in range(40)]
    msgs = [mail(ME, crowd)] + [mail(a, [ME]) for a in crowd]
    store, cfg = build(msgs)
    ident = resolve(store, cfg)
    assert not any(person(ident, a).two_way for a in crowd)
    # ... but a message to a handful is
    store2, cfg2 = build([mail(ME, crowd[:5]), mail(crowd[0], [ME])])
    assert person(resolve(store2, cfg2), crowd[0]).two_way


def test_max_recipients_is_configurable() -> None:
    msgs = [mail(ME, ["a@corp.com", "b@corp.com", "c@corp.com"]), mail("a@corp.com", [ME])]
    store, cfg = build(msgs, extra="[engine]\nmax_recipients = 2")
    assert not person(resolve(store, cfg), "a@corp.com").two_way


def test_mass_inbound_does_not_count_as_their_half() -> None:
    msgs = [mail(ME, ["pat@corp.com"]), mail("pat@corp.com", [ME], markers=("precedence:bulk",))]
    store, cfg = build(msgs)
    assert not person(resolve(store, cfg), "pat@corp.com").two_way


def test_lists_by_sender_markers_and_by_list_address() -> None:
    msgs = [mail("news@shop.com", [ME], days=i, markers=("list-unsubscribe",)) for i in range(4)]
    msgs += [
        mail(
            "poster@corp.com",
            ["devs@lists.corp.com"],
            days=i,
            list_id="devs.lists.corp.com",
            markers=("list-id",),
        )
        for i in range(3)
    ]
    msgs += [
        mail("promo@deals.com", [ME], days=i, markers=("category:promotions",)) for i in range(3)
    ]
    msgs += talk("bob@corp.com")  # unmarked mail beside marked mail (NULL markers in SQL)
    store, cfg = build(msgs)
    ident = resolve(store, cfg)
    assert person(ident, "bob@corp.com").two_way
    assert kind(ident, "devs@lists.corp.com") == "list"
    assert kind(ident, "poster@corp.com") == "list"
    assert kind(ident, "promo@deals.com") == "list"
    # news@ is a robot word: still not a person
    assert kind(ident, "news@shop.com") in ("robot", "list")
    assert any("list" in r for r in person(ident, "devs@lists.corp.com").reasons)


def test_list_poster_with_direct_contact_stays_a_person() -> None:
    msgs = [
        mail("kim@corp.com", ["devs@lists.corp.com"], days=i, list_id="devs.lists.corp.com")
        for i in range(6)
    ]
    msgs += talk("kim@corp.com")
    store, cfg = build(msgs)
    kim = person(resolve(store, cfg), "kim@corp.com")
    assert kim.kind == "person" and kim.two_way


def test_mostly_rule_needs_most_mail() -> None:
    msgs = [*talk("lee@corp.com"), mail("lee@corp.com", [ME], markers=("list-id",))]
    msgs += [mail("lee@corp.com", [ME], days=3)]
    store, cfg = build(msgs)
    assert kind(resolve(store, cfg), "lee@corp.com") == "person"


@pytest.mark.parametrize(
    "addr",
    [
        "noreply@corp.com",
        "no-reply@corp.com",
        "do_not_reply@corp.com",
        "donotreply@corp.com",
        "mailer-daemon@corp.com",
        "postmaster@corp.com",
        "bounces+123-abc@mail.corp.com",
        "bounce@corp.com",
        "drive-shares-dm-noreply@google.com",
        "calendar-notification@google.com",
        "notifications@github.com",
    ],
)
def test_robots_by_local_part(addr: str) -> None:
    store, cfg = build(talk(addr))
    p = person(resolve(store, cfg), addr)
    assert p.kind == "robot", p.reasons


def test_auto_submitted_sender_is_a_robot() -> None:
    msgs = [
        mail("ops@corp.com", [ME], days=i, markers=("auto-submitted:auto-generated",))
        for i in range(3)
    ]
    store, cfg = build(msgs)
    p = person(resolve(store, cfg), "ops@corp.com")
    assert p.kind == "robot" and "automatic" in " ".join(p.reasons)


@pytest.mark.parametrize(
    "addr",
    [
        "info@corp.com",
        "support@corp.com",
        "billing@corp.com",
        "sales.emea@corp.com",
        "hello@corp.com",
        "team@corp.com",
        "contact@corp.com",
        "support-team@corp.com",
    ],
)
def test_role_accounts(addr: str) -> None:
    store, cfg = build(talk(addr))
    assert kind(resolve(store, cfg), addr) == "role"


_ROBOT_PARTS = sorted(ROBOT_WORDS | set(ROBOT_PREFIXES) | set(ROBOT_SUFFIXES))


@given(
    st.lists(
        st.one_of(
            st.sampled_from(_ROBOT_PARTS),
            st.sampled_from(["x", "jo", "hot", "daily", "mary", "12", "s", "ing", "er", "ly"]),
            st.text("abnoprelyitsdfm0-._+=", max_size=6),
        ),
        max_size=5,
    ).map("".join)
)
@example("")  # every robot word in a few frames
def test_robot_word_first_test_hides_no_rule(local: str) -> None:
    """robot_word answers first by one search for any robot word; the rules give the same."""
    for addr in (f"{local or 'x'}@example.com", *_robot_frames(local)):
        assert robot_word(addr) == _robot_word_in(local_tokens(addr)), addr


def _robot_frames(local: str) -> list[str]:
    """Each robot word alone, as a token, a prefix and a suffix (the draws may miss some)."""
    if local:
        return []
    frames = ("{}", "x.{}", "hot{}", "{}-12345", "a-{}-b", "daily{}")
    return [f.format(w) + "@example.com" for w in _ROBOT_PARTS for f in frames]


@given(
    email=st.sampled_from(
        [ME, "bob@corp.com", "noreply@shop.com", "info@corp.com", "x@lists.corp.com", "jd@x.org"]
    ),
    name=st.sampled_from(["", "Bob Stone", "Jane Doe", "bob@corp.com", "Shop Team"]),
    counts=st.lists(st.integers(0, 3), min_size=7, max_size=7),
    in_mail=st.booleans(),
)
def test_one_address_person_is_what_the_rules_of_any_cluster_give(
    email: str, name: str, counts: list[int], in_mail: bool
) -> None:
    """The fast path for a cluster of one address: its classification, the two-way test and
    reason of its figures, its best name (mine when it is me), as for a cluster of several."""
    sent, sent_direct, sent_auto, out, out_direct, meetings, accepted = counts
    act = AddressActivity(
        1,
        email,
        name,
        sent=sent + sent_direct,
        sent_direct=sent_direct,
        sent_auto=sent_auto,
        out=out + out_direct,
        out_direct=out_direct,
        meetings=meetings + accepted,
        meetings_accepted=accepted,
    )
    acts = {email: act} if in_mail else {}
    rules = Rules.from_config(config())
    p = _one_address_person(email, acts, rules, "Jane Doe")
    kind, why = classify(email, acts.get(email), rules)
    figures = list(acts.values())
    assert (p.key, p.addresses, p.kind) == (email, (email,), kind)
    assert p.two_way == is_two_way(figures)
    assert p.reasons == (*why, _two_way_reason(figures, p.two_way))
    assert p.name == ("Jane Doe" if kind == "self" else _best_name([email], email, acts))


def test_token_matching_not_substring() -> None:
    for addr in (
        "newsom@corp.com",
        "information.desk.jo@x.com",
        "noreplyson@x.com",
        "bobby.infoson@x.com",
        "teamster@x.com",
        "salesky@x.com",
    ):
        assert robot_word(addr) is None and role_word(addr) is None, addr
    assert local_tokens("A.b-c_d+e@x.com") == ["a", "b", "c", "d", "e"]
    store, cfg = build(talk("newsom@corp.com") + talk("mary.sales@corp.com"))
    ident = resolve(store, cfg)
    assert kind(ident, "newsom@corp.com") == "person"
    assert kind(ident, "mary.sales@corp.com") == "person"


def test_config_role_accounts_and_not_roles() -> None:
    extra = '[people]\nrole_accounts = ["Invoices"]\nnot_roles = ["info@tiny.example"]'
    store, cfg = build(talk("invoices@corp.com") + talk("info@tiny.example"), extra=extra)
    ident = resolve(store, cfg)
    assert kind(ident, "invoices@corp.com") == "role"
    assert kind(ident, "info@tiny.example") == "person"


@pytest.mark.parametrize(
    ("extra", "addr"),
    [
        ('[exclude]\naddresses = ["Boss.Assistant@corp.com"]', "boss.assistant@corp.com"),
        ('[exclude]\ndomains = ["vendor.com"]', "sam@vendor.com"),
        ('[exclude]\ndomains = ["vendor.com"]', "sam@eu.mail.vendor.com"),
        ('[exclude]\nglobs = ["*@*.salesforce.com"]', "x@na1.salesforce.com"),
        ('[exclude]\nregexes = ["^alerts?[-+.]"]', "alert-pager@corp.com"),
    ],
)
def test_exclusions(extra: str, addr: str) -> None:
    store, cfg = build(talk(addr) + talk("keep@corp.com") + talk("sam@notvendor.com"), extra=extra)
    ident = resolve(store, cfg)
    p = person(ident, addr)
    assert p.kind == "excluded" and p.reasons[0].startswith(("listed", "domain", "matches"))
    assert kind(ident, "keep@corp.com") == "person"
    assert kind(ident, "sam@notvendor.com") == "person"  # suffix without a dot is not a subdomain


def test_aliases_merge_and_key_is_most_used_address() -> None:
    msgs = talk("maria@oldcorp.com", "Maria Lopez") + talk("maria@newcorp.io", "Maria Lopez")
    msgs += talk("maria@newcorp.io", days=5)
    extra = '[people]\naliases = [["maria@oldcorp.com", "Maria@NewCorp.io"]]'
    store, cfg = build(msgs, extra=extra)
    ident = resolve(store, cfg)
    p = person(ident, "maria@oldcorp.com")
    assert p.key == "maria@newcorp.io"
    assert set(p.addresses) == {"maria@oldcorp.com", "maria@newcorp.io"}
    assert ident.person_of["maria@oldcorp.com"] == ident.person_of["maria@newcorp.io"]
    assert not merge_candidates(ident)


def test_alias_groups_chain_and_keep_addresses_without_mail() -> None:
    """Two alias groups that share an address are one person, and an alias never seen in mail
    still belongs to it; my addresses are one cluster; everyone else stays alone."""
    msgs = talk("al@old.com", "Al Ray") + talk("al@new.com") + talk("bo@corp.com")
    extra = (
        "[people]\naliases = ["
        '["al@old.com", "al@new.com"], ["al@new.com", "al@home.example"], ["x@solo.example"]]'
    )
    store, cfg = build(msgs, extra=extra)
    ident = resolve(store, cfg)
    al = person(ident, "al@home.example")
    assert set(al.addresses) == {"al@old.com", "al@new.com", "al@home.example"}
    assert {ident.person_of[a] for a in al.addresses} == {al.key}
    assert al.name == "Al Ray" and al.two_way
    assert person(ident, "bo@corp.com").addresses == ("bo@corp.com",)
    assert "x@solo.example" not in ident.person_of  # a group of one joins nothing
    assert set(person(ident, ME).addresses) == {ME, "janedoe@gmail.com"}  # mine: one cluster


def test_alias_of_one_way_halves_is_two_way() -> None:
    msgs = [mail(ME, ["al@old.com"]), mail("al@new.com", [ME])]
    store, cfg = build(msgs)
    assert not person(resolve(store, cfg), "al@old.com").two_way
    store, cfg = build(msgs, extra='[people]\naliases = [["al@old.com", "al@new.com"]]')
    assert person(resolve(store, cfg), "al@old.com").two_way


def test_same_full_display_name_is_one_person_unless_distinct() -> None:
    msgs = talk("maria@oldcorp.com", "Maria Lopez") + talk("mlopez@newcorp.io", "Lopez, Maria")
    msgs += talk("sam@a.com", "Sam") + talk("sam@b.com", "Sam")  # one-word names are too weak
    store, cfg = build(msgs)
    ident = resolve(store, cfg)
    maria = person(ident, "maria@oldcorp.com")
    assert set(maria.addresses) == {"maria@oldcorp.com", "mlopez@newcorp.io"}
    assert any("same display name" in r for r in maria.reasons)
    assert person(ident, "sam@a.com").addresses == ("sam@a.com",)
    extra = '[people]\ndistinct = [["maria@oldcorp.com", "mlopez@newcorp.io"]]'
    store, cfg = build(msgs, extra=extra)
    assert person(resolve(store, cfg), "maria@oldcorp.com").addresses == ("maria@oldcorp.com",)


def test_same_name_merge_does_not_depend_on_the_order_addresses_come_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sets are walked in a per-process hash order: the merged person (name, key, reasons) is
    the same whichever order the addresses come in."""
    import keepwarm.daemon.identity as identity

    msgs = talk("steve@corp.com", "Steven J. Kean") + talk("skean@home.net", "Steven J Kean")
    msgs += talk("skean@home.net")
    store, cfg = build(msgs)
    original = identity._merge_same_names
    seen = []
    for flip in (False, True):
        monkeypatch.setattr(
            identity,
            "_merge_same_names",
            lambda made, *a, flip=flip: original(list(reversed(made)) if flip else made, *a),
        )
        p = person(resolve(store, cfg), "steve@corp.com")
        seen.append((p.key, p.name, p.addresses, p.reasons))
    assert seen[0] == seen[1] and len(seen[0][2]) == 2


def test_merge_candidates_similar_names() -> None:
    msgs = talk("jeff@oldcorp.com", "Jeff Shankman") + talk(
        "a..shankman@x.com", "Shankman, Jeffrey A."
    )
    msgs += talk("ann.shankman@y.com", "Ann Shankman")  # a relative, not a candidate
    store, cfg = build(msgs)
    cands = merge_candidates(resolve(store, cfg))
    pairs = {frozenset((a.key, b.key)) for a, b, _ in cands}
    assert pairs == {frozenset(("jeff@oldcorp.com", "a..shankman@x.com"))}
    assert "similar names" in cands[0][2] and "oldcorp.com" in cands[0][2]


def test_my_full_name_at_another_address_is_me_unless_distinct() -> None:
    msgs = [mail("jane@home.example", [ME], name="Jane Doe"), mail("jd@x.example", [ME])]
    store, cfg = build(msgs)
    ident = resolve(store, cfg)
    assert kind(ident, "jane@home.example") == "self"
    assert "jane@home.example" in ident.self_addresses
    assert kind(ident, "jd@x.example") == "person"
    store, cfg = build(msgs, extra=f'[people]\ndistinct = [["{ME}", "jane@home.example"]]')
    ident = resolve(store, cfg)
    assert kind(ident, "jane@home.example") == "person"
    cands = merge_candidates(ident)  # still worth asking: same name as mine
    assert any(a.kind == "self" and b.key == "jane@home.example" for a, b, _ in cands)


def test_delegates_configured_or_filed_in_sent_are_me() -> None:
    sent = MessageMeta(
        account="a",
        provider_id="s1",
        date=T0,
        sender=Address("liz.taylor@corp.com", "Liz Taylor"),
        to=(Address("bob@other.com"),),
        markers=("sent-folder",),
    )
    msgs = [sent, *talk("bob@other.com")]
    store, cfg = build(msgs)
    ident = resolve(store, cfg)
    assert kind(ident, "liz.taylor@corp.com") == "self"
    assert "liz.taylor@corp.com" in ident.self_addresses
    assert any("delegate" in r for r in person(ident, "liz.taylor@corp.com").reasons)
    store, cfg = build(talk("pa@corp.com"), extra="")
    assert kind(resolve(store, cfg), "pa@corp.com") == "person"
    cfg = replace(config(), delegates=("pa@corp.com",))
    assert kind(resolve(store, cfg), "pa@corp.com") == "self"


@pytest.mark.parametrize(
    "addr",
    ["straw@yahoogroups.com", "dev@lists.example.org", "x-users@googlegroups.com"],
)
def test_list_hosts_are_lists(addr: str) -> None:
    store, cfg = build(talk(addr))
    assert kind(resolve(store, cfg), addr) == "list"


def test_small_accepted_meeting_is_two_way_large_one_is_not() -> None:
    def ev(n: int, response: str, attendees: int) -> EventMeta:
        others = [Attendee(f"x{i}@corp.com", response=response) for i in range(attendees - 1)]
        return EventMeta(
            account="a",
            provider_id=f"e{n}",
            start=T0 + timedelta(days=n),
            end=T0 + timedelta(days=n, hours=1),
            ical_uid=f"u{n}",
            attendees=(Attendee(ME, response="accepted", is_self=True), *others),
        )

    store, cfg = build([], [ev(1, "accepted", 3)])
    assert person(resolve(store, cfg), "x0@corp.com").two_way
    store, cfg = build([], [ev(1, "accepted", 20)])
    assert not person(resolve(store, cfg), "x0@corp.com").two_way
    store, cfg = build([], [ev(1, "needsAction", 3)])
    assert not person(resolve(store, cfg), "x0@corp.com").two_way
    cancelled = replace(ev(1, "accepted", 3), status="cancelled")
    store, cfg = build([], [cancelled])
    assert not person(resolve(store, cfg), "x0@corp.com").two_way


def test_digest_mail_is_never_an_interaction() -> None:
    msgs = [mail(ME, ["bob@corp.com"], markers=("keepwarm-digest",)), mail("bob@corp.com", [ME])]
    store, cfg = build(msgs)
    assert not person(resolve(store, cfg), "bob@corp.com").two_way


def test_as_of_sees_only_earlier_history() -> None:
    msgs = [mail(ME, ["bob@corp.com"], days=0), mail("bob@corp.com", [ME], days=10)]
    store, cfg = build(msgs)
    assert not person(resolve(store, cfg, as_of=T0 + timedelta(days=5)), "bob@corp.com").two_way
    assert person(resolve(store, cfg, as_of=T0 + timedelta(days=11)), "bob@corp.com").two_way


def test_name_key() -> None:
    assert name_key("Lopez, Maria (OldCorp)") == name_key("maria  LOPEZ") == "lopez maria"
    assert name_key("Lopez  Maria") == name_key("Maria Lopez")  # PST exports: "Last  First"
    assert name_key("Support") is None and name_key("a@b.com") is None and name_key("") is None


@given(
    st.text(max_size=12)
    | st.text("aB ()[]_-.,\u00a0\u2003\u0301\u00df\u0130\u2163\u00bd1", max_size=12)
)
@example("Lopez_Maria x")
@example("Ann\u00a0Lee")
def test_name_key_first_look_hides_no_rule(name: str) -> None:
    """name_key skips its regexes for names of plain words; any name gives what they give."""
    if not name or "@" in name:
        return
    words = re.sub(r"[^\w\s]+", " ", re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", name).casefold()).split()
    assert name_key(name) == (" ".join(sorted(words)) if len(words) >= 2 else None)


@given(
    words=st.lists(
        st.text("aAjJnNeEdDoOßẞİı (),.[]-_'0", min_size=1, max_size=6), min_size=1, max_size=4
    ),
    mine=st.sampled_from(["Jane Doe", "Doe Jane", "Strasse Anna", "İpek Ak", "Jo Ann-Doe"]),
)
@example(words=["DOE, JANE", "(Home)"], mine="Jane Doe")
@example(words=["Straẞe", "ANNA"], mine="Strasse Anna")
def test_my_name_first_look_hides_no_match(words: list[str], mine: str) -> None:
    """Identity looks for my name's longest word in a display name before comparing name_keys
    (most names are not mine): every name with my name_key has that word in it."""
    name = " ".join(words)
    key = name_key(mine)
    assert key is not None
    if name_key(name) == key:
        assert _my_longest_word(key) in name.casefold()
    rules = Rules.from_config(
        loads(f'[me]\nname = "{mine}"\naddresses = ["{ME}"]\ntimezone = "UTC"\n')
    )
    kind, _ = classify("x@else.example", AddressActivity(1, "x@else.example", name), rules)
    assert (kind == "self") is (name_key(name) == key and "@" not in name)


@pytest.mark.parametrize(
    ("email", "name", "expected"),
    [
        ("dl-sales@acme.com", "", True),
        ("dl_sales@acme.com", "", True),
        ("dl.sales@acme.com", "", True),
        ("dlsales@acme.com", "", False),
        ("sales@dl-acme.com", "", False),
        ("c_123@resource.calendar.google.com", "", True),
        ("x@group.v.calendar.google.com", "", True),
        ("resource.calendar.google.com@acme.com", "", False),
        ("ann@acme.com", "DL-Sales", True),
        ("ann@acme.com", "Distribution List all", True),
        ("ann@acme.com", "Boardroom 3", True),
        ("ann@acme.com", "Conf Rm 2", True),
        ("ann@acme.com", "Ann Lee", False),
        ("ann@acme.com", "", False),
    ],
)
def test_not_a_person(email: str, name: str, expected: bool) -> None:
    assert not_a_person(email, name) is expected


@given(
    st.text("dlistrbuonc fegmaRDOMLI_-.\u0130\u0131\u017f\u212a\t", max_size=20)
    | st.text(max_size=12)
)
@example("DL-all")
@example("Conf. Rm 3")
@example("BOARDROOM")
def test_list_or_room_name_first_look_hides_no_match(name: str) -> None:
    """not_a_person searches a display name only when it could match; the search decides."""
    assert not_a_person("ann@acme.com", name) is bool(_LIST_OR_ROOM_NAME.search(name))


def _corpus() -> list[MessageMeta]:
    msgs = talk("bob@corp.com", "Bob") + talk("ann@corp.com", "Ann Lee")
    msgs += [mail("news@shop.com", [ME], markers=("list-unsubscribe",))]
    msgs += [mail("noreply@corp.com", [ME]), mail("info@corp.com", [ME])]
    msgs += [mail(ME, [f"p{i}@corp.com" for i in range(20)])]
    msgs += [mail("ann.lee@other.org", [ME], name="Ann Lee")]
    return msgs


def _snapshot(ident: Identity) -> tuple[object, ...]:
    return (
        sorted(
            (p.key, p.kind, p.two_way, tuple(sorted(p.addresses)), p.name)
            for p in ident.people.values()
        ),
        sorted(ident.person_of.items()),
        sorted((a.key, b.key, w) for a, b, w in merge_candidates(ident)),
    )


@given(seed=st.integers(0, 2**32), dupes=st.integers(0, 5))
def test_resolve_is_stable_under_order_and_duplicates(seed: int, dupes: int) -> None:
    msgs = _corpus()
    base_store, cfg = build(msgs)
    expected = _snapshot(resolve(base_store, cfg))
    rng = random.Random(seed)
    shuffled = msgs[:]
    rng.shuffle(shuffled)
    # duplicates: the same messages seen again through another account
    copies = [
        replace(m, account="b", provider_id="b" + m.provider_id) for m in rng.sample(msgs, dupes)
    ]
    with Store.memory() as store:
        for m in shuffled:
            store.apply_batch("a", "maildir", Batch(messages=[m]))
        if copies:
            store.apply_batch("b", "maildir", Batch(messages=copies))
        assert _snapshot(resolve(store, cfg)) == expected


def test_empty_store_has_only_me() -> None:
    store, cfg = build([])
    ident = resolve(store, cfg)
    assert [p.kind for p in ident.people.values()] == ["self"]
    assert merge_candidates(ident) == []


def test_my_posts_to_a_list_do_not_make_it_a_person() -> None:
    msgs = [mail(ME, ["devs@lists.corp.com"], days=i) for i in range(3)]
    msgs += [
        mail("kim@corp.com", ["devs@lists.corp.com"], days=i, list_id="devs.lists.corp.com")
        for i in range(5)
    ]
    store, cfg = build(msgs)
    assert kind(resolve(store, cfg), "devs@lists.corp.com") == "list"


@pytest.mark.parametrize("marker", ["x-autoreply", "precedence:auto_reply", "return-path-null"])
def test_other_automatic_markers(marker: str) -> None:
    msgs = [mail("ops@corp.com", [ME], days=i, markers=(marker,)) for i in range(2)]
    store, cfg = build(msgs)
    assert kind(resolve(store, cfg), "ops@corp.com") == "robot"


@pytest.mark.parametrize(
    ("email", "name", "machine"),
    [
        ("theindividualinvestor@tdwaterhouse.com", "TD Waterhouse", True),  # its domain's name
        ("enron.expertfinder@enron.com", "Enron Expertfinder", True),  # org.service@org
        ("enron.announcements@enron.com", "Enron Announcements", True),
        ("john@johnsmith.com", "John Smith", False),  # a person at their own domain
        ("mail@vipul.net", "Vipul Ved Prakash", False),
        ("sidney@sidney.com", "Sidney Markowitz", False),
        ("john.smith@smith.com", "Smith, John", False),  # an archive's "Last, First"
        ("ann.lee@acme.com", "Ann Lee", False),
        ("scott.josey@enron.com", "scott.josey@enron.com", False),  # an address as its name
        ("scott.josey@enron.com", "'scott.josey@enron.com'", False),
        ("jhess75671@aol.com", "Jim Hess", False),  # a person's number at a free-mail provider
        ("chjohnson98@hotmail.com", "chris johnson", False),
        ("tgh09998cf@restructuringtoday.com", "US Publishing", True),  # generated
        ("msnhomeadvisor_037630@msnnewsletters.customer-email.com", "MSN HomeAdvisor", True),
        ("42.8997.6e-2aajoy2t2bp.1@e-mailprograms.delta.com", "Delta Air Lines", True),
    ],
)
def test_machine_senders_told_from_people_at_unusual_addresses(
    email: str, name: str, machine: bool
) -> None:
    assert (machine_sender(email, name) is not None) is machine
