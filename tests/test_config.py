from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from keepwarm.connectors import registry
from keepwarm.daemon import config as c

EXAMPLE = Path(__file__).resolve().parent.parent / "daemon" / "data" / "config.example.toml"
MINIMAL = """
[me]
name = "Jane Doe"
addresses = ["jane@example.com", "jane.doe@gmail.com"]
timezone = "Europe/Berlin"
"""


def test_minimal_config_has_sane_defaults() -> None:
    cfg = c.loads(MINIMAL)
    assert cfg.addresses == ("jane@example.com", "janedoe@gmail.com")
    assert [t.name for t in cfg.tiers] == ["inner", "close", "active", "wider"]
    assert cfg.tiers[0].cadence == timedelta(weeks=2)
    assert cfg.delivery_method == "file"
    assert cfg.digest["max_items"] == 7


def test_example_config_loads() -> None:
    cfg = c.load(EXAMPLE)
    assert {a.kind for a in cfg.accounts} == set(registry.KINDS)


def test_the_example_shows_the_engine_defaults() -> None:
    """The example's [engine] values are the defaults (declared once, core/specs.py)."""
    import dataclasses

    from keepwarm.core.specs import ENGINE_DEFAULTS

    engine = c.load(EXAMPLE).engine
    for f in dataclasses.fields(ENGINE_DEFAULTS):
        assert engine[f.name] == getattr(ENGINE_DEFAULTS, f.name), f.name


def test_every_schema_key_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    keys: set[str] = set()
    for spec in (
        c.ME,
        c.STORE,
        c.PRIVACY,
        c.DAEMON,
        c.PEOPLE,
        c.EXCLUDE,
        c.TIER,
        c.ENGINE,
        c.GREETING,
        c.DIGEST,
        c.SMTP,
        c.DELIVERY,
        c.ACCOUNT_COMMON,
        *(c.account_fields(k) for k in registry.KINDS),
    ):
        keys |= set(spec)
    missing = [
        k for k in sorted(keys) if not re.search(rf"^\s*#?\s*{re.escape(k)}\s*=", text, re.M)
    ]
    assert not missing, f"undocumented config keys: {missing}"
    no_example = [k for k in registry.KINDS if not re.search(rf'^kind = "{k}"', text, re.M)]
    assert not no_example, f"kinds without an [[accounts]] example: {no_example}"


def test_all_problems_reported_at_once_with_did_you_mean() -> None:
    bad = """
[me]
name = "J"
addresses = ["not an address"]
timezone = "Mars/Olympus"
[engine]
half_lfe = "90d"
fading_factor = "two"
[[accounts]]
name = "x"
kind = "imap"
host = "imap.example.com"
username = "u"
security = "none"
"""
    with pytest.raises(c.ConfigError) as err:
        c.loads(bad)
    text = "\n".join(err.value.problems)
    assert "me.addresses" in text and "Mars/Olympus" in text
    assert 'did you mean "half_life"' in text
    assert "engine.fading_factor: expected a number" in text
    assert "password_file, password_env or password_command" in text
    assert "loopback" in text
    assert len(err.value.problems) >= 5


def test_wrong_types_and_bad_toml_are_clear() -> None:
    with pytest.raises(c.ConfigError, match="not valid TOML"):
        c.loads("[me\nname=")
    with pytest.raises(c.ConfigError, match=r"digest.time: expected a local time"):
        c.loads(MINIMAL + '[digest]\ntime = "7.30am"\n')
    with pytest.raises(c.ConfigError, match=r"unknown section; did you mean \"digest\""):
        c.loads(MINIMAL + "[digets]\n")


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("KEEPWARM_CONFIG", raising=False)
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    assert c.find_config(None) == tmp_path / "xdg" / "keepwarm" / "config.toml"
    monkeypatch.setenv("KEEPWARM_CONFIG", str(tmp_path / "env.toml"))
    assert c.find_config(None) == tmp_path / "env.toml"
    assert c.find_config(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"


def test_durations() -> None:
    assert c.parse_duration("90d") == timedelta(days=90)
    assert c.parse_duration("15m") == timedelta(minutes=15)
    with pytest.raises(ValueError):
        c.parse_duration("soon")


# -- values that load but cannot work (issue 15, item 5) ----------------------------------------
def test_an_empty_address_list_is_rejected() -> None:
    text = MINIMAL.replace(
        'addresses = ["jane@example.com", "jane.doe@gmail.com"]', "addresses = []"
    )
    with pytest.raises(c.ConfigError, match=r"me.addresses: .*at least one") as err:
        c.loads(text)
    assert len(err.value.problems) == 1


def test_tiers_out_of_order_are_rejected() -> None:
    tiers = """
[[tiers]]
name = "inner"
size = 50
cadence = "2w"
[[tiers]]
name = "outer"
size = 10
cadence = "26w"
"""
    with pytest.raises(c.ConfigError, match=r"tiers\[2\].size: outer tiers need a size at least"):
        c.loads(MINIMAL + tiers)
    cadences = tiers.replace('size = 50\ncadence = "2w"', 'size = 5\ncadence = "30w"')
    with pytest.raises(c.ConfigError, match=r"tiers\[2\].cadence: outer tiers need a cadence"):
        c.loads(MINIMAL + cadences)


def test_dormant_factor_below_fading_factor_is_rejected() -> None:
    with pytest.raises(c.ConfigError, match=r"engine.dormant_factor: .*fading_factor \(3.0\)"):
        c.loads(MINIMAL + "[engine]\nfading_factor = 3.0\ndormant_factor = 2.0\n")
    c.loads(MINIMAL + "[engine]\nfading_factor = 3.0\ndormant_factor = 3.0\n")
