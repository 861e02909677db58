"""The connector registry: every kind declares itself completely, and every daemon screen that
lists kinds reads the registry (doctor checks an account of each kind without a crash)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keepwarm.connectors import registry
from keepwarm.daemon import config as cfgmod
from keepwarm.daemon import doctor

EVERY_KIND = """
[me]
name = "Me"
addresses = ["me@example.com"]
timezone = "Europe/Berlin"

[[accounts]]
name = "box"
kind = "mbox"
path = "{tmp}/all.mbox"

[[accounts]]
name = "dir"
kind = "maildir"
path = "{tmp}/Maildir"

[[accounts]]
name = "cal"
kind = "ics"
path = "{tmp}/cal.ics"

[[accounts]]
name = "feed"
kind = "ics"
path = "http://127.0.0.1:{port}/team.ics"

[[accounts]]
name = "book"
kind = "vcard"
path = "{tmp}/book.vcf"

[[accounts]]
name = "imap"
kind = "imap"
host = "127.0.0.1"
port = {port}
username = "me@example.com"
password_env = "KW_TEST_PASSWORD"

[[accounts]]
name = "gmail"
kind = "gmail"
api_endpoint = "http://127.0.0.1:{port}"

[[accounts]]
name = "gcal"
kind = "gcal"
api_endpoint = "http://127.0.0.1:{port}"

[[accounts]]
name = "people"
kind = "gcontacts"
api_endpoint = "http://127.0.0.1:{port}"

[[accounts]]
name = "work"
kind = "microsoft"
client_id = "00000000-0000-0000-0000-000000000000"
graph_endpoint = "http://127.0.0.1:{port}"

[[accounts]]
name = "dav"
kind = "caldav"
url = "http://127.0.0.1:{port}/dav/"
username = "me"
password_env = "KW_TEST_PASSWORD"

[[accounts]]
name = "cards"
kind = "carddav"
url = "http://127.0.0.1:{port}/dav/"
username = "me"
password_env = "KW_TEST_PASSWORD"
"""


@pytest.mark.parametrize("kind", list(registry.KINDS))
def test_every_kind_declares_itself(kind: str) -> None:
    spec = registry.get(kind)
    assert spec.kind == kind
    assert dataclasses.is_dataclass(spec.options)
    assert spec.options.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert spec.summary
    fields = cfgmod.account_fields(kind)  # every field has a check derived from its type
    for f in dataclasses.fields(spec.options):
        assert f.metadata.get("doc"), f"{kind}.{f.name} has no doc"
        assert f.name in fields


def test_doctor_checks_every_registered_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed loopback port: every network kind fails with a reason and a fix, every local kind
    says what is wrong with its path, none crashes (a kind missing from this config fails)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    monkeypatch.setenv("KW_TEST_PASSWORD", "secret")
    path = tmp_path / "config.toml"
    path.write_text(EVERY_KIND.format(tmp=tmp_path, port=port))
    config = cfgmod.load(path)
    assert {a.kind for a in config.accounts} == set(registry.KINDS)
    checks = {c.name: c for c in doctor.check_sources(config, timeout=2)}
    assert len(checks) == len(config.accounts)
    for check in checks.values():
        assert not check.ok, check.line()
        assert check.fix, check.line()
    assert "does not exist" in checks["source of box"].detail
    assert "cannot connect to 127.0.0.1" in checks["reachability of gmail"].detail
    (tmp_path / "all.mbox").write_bytes(b"")
    assert doctor.check_source(config.account("box"), config, 2).ok


def test_doctor_lists_tokens_of_every_oauth_kind(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EVERY_KIND.format(tmp=tmp_path, port=9))
    config = cfgmod.load(path)
    names = {c.name for c in doctor.check_tokens(config)}
    oauth = registry.kinds_where(lambda k: k.oauth)
    assert set(oauth) == {"gmail", "gcal", "gcontacts", "microsoft"}
    assert names == {f"token of {a.name}" for a in config.accounts if a.kind in oauth}
    fixes = {c.fix for c in doctor.check_tokens(config)}
    assert "keepwarm auth google gmail" in fixes and "keepwarm auth microsoft work" in fixes
    assert list(doctor.run_checks(config, datetime(2026, 1, 5, tzinfo=UTC), timeout=1))


def test_an_unknown_kind_is_a_config_error_listing_the_kinds() -> None:
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.loads(
            '[me]\nname = "M"\naddresses = ["m@example.com"]\ntimezone = "UTC"\n'
            '[[accounts]]\nname = "x"\nkind = "pop3"\n'
        )
    assert "caldav" in str(err.value) and "pop3" in str(err.value)


def test_options_are_typed_attributes() -> None:
    config = cfgmod.loads(
        '[me]\nname = "M"\naddresses = ["m@example.com"]\ntimezone = "UTC"\n'
        '[[accounts]]\nname = "x"\nkind = "imap"\nhost = "imap.example.com"\n'
        'username = "m@example.com"\npassword_file = "/run/pw"\nfolders = ["INBOX"]\n'
    )
    from keepwarm.connectors.imap import ImapOptions

    options = config.account("x").options
    assert isinstance(options, ImapOptions)
    assert options.folders == ("INBOX",) and options.port is None and options.security == "tls"
    assert config.account("x").secret.file == Path("/run/pw")
