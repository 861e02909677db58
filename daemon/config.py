"""Load and validate the one TOML file the user edits.

One schema (the ``Field`` tables below) drives validation, defaults and the documentation test:
every key in it must appear in ``daemon/data/config.example.toml`` (``keepwarm init --example``).
Loading reports *all* problems at once, each with its key path, what was found and what is
allowed; unknown keys get a "did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keepwarm.connectors import registry
from keepwarm.connectors.headers import normalize_address
from keepwarm.connectors.registry import is_loopback_host
from keepwarm.core.specs import DIGEST_DEFAULTS, ENGINE_DEFAULTS, GreetingSpec, TierSpec
from keepwarm.daemon.errors import ConfigError as ConfigError

APP = "keepwarm"


# -- paths ----------------------------------------------------------------------------------------
def xdg_config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def default_config_path() -> Path:
    return xdg_config_home() / APP / "config.toml"


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (systemd ``StateDirectory=``), else ``$XDG_STATE_HOME/keepwarm``."""
    sd = os.environ.get("STATE_DIRECTORY")
    if sd:
        return Path(sd.split(":")[0])
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / APP


def default_outbox(store_path: Path) -> Path:
    """The file outbox follows the database: ``outbox`` beside ``keepwarm.db``, and
    ``NAME-outbox`` beside any other ``NAME.db``, so two configs never share an outbox."""
    if store_path.stem == APP:
        return store_path.with_name("outbox")
    return store_path.with_name(f"{store_path.stem}-outbox")


def find_config(explicit: str | Path | None) -> Path:
    """``--config``, then ``$KEEPWARM_CONFIG``, then ``/etc/keepwarm`` via ``$CONFIGURATION_DIRECTORY``, then XDG."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("KEEPWARM_CONFIG")
    if env:
        return Path(env).expanduser()
    conf_dir = os.environ.get("CONFIGURATION_DIRECTORY")
    if conf_dir:
        return Path(conf_dir.split(":")[0]) / "config.toml"
    return default_config_path()


# -- value parsers --------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w|mo|y)\s*$", re.IGNORECASE)
_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "mo": 30 * 86400,
    "y": 365 * 86400,
}


def parse_duration(value: str) -> timedelta:
    """``"90d"``, ``"2w"``, ``"15m"``, ``"6h"``, ``"30s"``, ``"6mo"``, ``"3y"`` -> timedelta."""
    m = _DURATION.match(value)
    if not m:
        raise ValueError(value)
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])


class _Invalid(Exception):
    pass


Check = Callable[[Any], Any]


def _type(t: type | tuple[type, ...], allowed: str) -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, bool) and t is not bool and (not isinstance(t, tuple) or bool not in t):
            raise _Invalid(allowed)
        if not isinstance(v, t):
            raise _Invalid(allowed)
        return v

    return check


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Invalid("a string")
    return v


def _nonempty_str(v: Any) -> str:
    s = _str(v).strip()
    if not s:
        raise _Invalid("a non-empty string")
    return s


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Invalid("true or false")
    return v


def _int_range(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _Invalid(f"a whole number from {lo} to {hi}")
        return v

    return check


def _float_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise _Invalid(f"a number from {lo} to {hi}")
        return float(v)

    return check


def _duration(v: Any) -> timedelta:
    try:
        d = parse_duration(_str(v))
    except (ValueError, _Invalid):
        raise _Invalid(
            'a duration such as "30s", "15m", "6h", "90d", "2w", "6mo" or "3y"'
        ) from None
    if d.total_seconds() <= 0:
        raise _Invalid("a positive duration")
    return d


def _path(v: Any) -> Path:
    return Path(_nonempty_str(v)).expanduser()


def _choice(*options: str) -> Check:
    def check(v: Any) -> str:
        if v not in options:
            raise _Invalid("one of " + ", ".join(f'"{o}"' for o in options))
        return str(v)

    return check


def _email(v: Any) -> str:
    e = normalize_address(_str(v))
    if e is None:
        raise _Invalid("an email address such as jane@example.com")
    return e


def _list_of(item: Check, what: str, *, at_least: int = 0) -> Check:
    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list):
            raise _Invalid(f"a list of {what}")
        if len(v) < at_least:
            raise _Invalid(f"a list of at least {'one' if at_least == 1 else at_least} of {what}")
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except _Invalid as exc:
                raise _Invalid(f"a list of {what} (item {i + 1}: expected {exc})") from None
        return tuple(out)

    return check


def _timezone(v: Any) -> str:
    s = _nonempty_str(v)
    try:
        ZoneInfo(s)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Invalid(
            'an IANA time zone name such as "Europe/Berlin" or "America/New_York"'
        ) from None
    return s


def _clock(v: Any) -> str:
    s = _str(v)
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", s.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        raise _Invalid('a local time "HH:MM" such as "07:30" (or "HH:MM:SS")')
    secs = f":{m.group(3)}" if m.group(3) else ""
    return f"{int(m.group(1)):02d}:{m.group(2)}{secs}"


def _month_day(v: Any) -> str:
    s = _str(v).strip()
    m = re.fullmatch(r"(?:\d{4}-)?(\d{2})-(\d{2})", s)
    if not m or not (1 <= int(m.group(1)) <= 12 and 1 <= int(m.group(2)) <= 31):
        raise _Invalid('a date "MM-DD" (or "YYYY-MM-DD")')
    return f"{m.group(1)}-{m.group(2)}"


def _dav_url(v: Any) -> str:
    s = _nonempty_str(v)
    parts = urlsplit(s)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _Invalid('the server\'s address, such as "https://caldav.fastmail.com/dav/"')
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise _Invalid(
            "an https:// address (http:// would send your password in clear text; "
            "it is allowed only towards a loopback address)"
        )
    return s


def _path_or_url(v: Any) -> Path | str:
    """A local path, or the https:// (or webcal://) address of a published calendar."""
    s = _nonempty_str(v)
    if re.match(r"(?i)^(https?|webcal)://", s):
        parts = urlsplit(s)
        if not parts.hostname:
            raise _Invalid("a path, or a calendar's https:// address")
        if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
            raise _Invalid(
                "an https:// or webcal:// address (http:// would show the calendar's secret "
                "address to the network; it is allowed only towards a loopback address)"
            )
        return s
    return Path(s).expanduser()


def _regex(v: Any) -> str:
    s = _str(v)
    try:
        re.compile(s)
    except re.error as exc:
        raise _Invalid(f"a valid regular expression ({exc})") from None
    return s


@dataclass(frozen=True)
class Field:
    check: Check
    default: Any = None
    required: bool = False
    doc: str = ""


_UNSET = object()


def _validate_table(
    data: Any,
    spec: Mapping[str, Field],
    where: str,
    problems: list[str],
    *,
    extra_ok: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a table, found {type(data).__name__}")
        return {k: f.default for k, f in spec.items()}
    out: dict[str, Any] = {}
    for key in data:
        if key in spec or key in extra_ok:
            continue
        close = difflib.get_close_matches(key, list(spec), n=1, cutoff=0.6)
        hint = (
            f'; did you mean "{close[0]}"?'
            if close
            else f"; allowed keys: {', '.join(sorted(spec))}"
        )
        problems.append(f"{where}.{key}: unknown key{hint}")
    for key, f in spec.items():
        path = f"{where}.{key}" if where else key
        if key not in data:
            if f.required:
                problems.append(f"{path}: missing (required{': ' + f.doc if f.doc else ''})")
            out[key] = f.default
            continue
        try:
            out[key] = f.check(data[key])
        except _Invalid as exc:
            found = data[key]
            shown = (
                repr(found)
                if not isinstance(found, dict | list) or len(repr(found)) < 60
                else type(found).__name__
            )
            problems.append(f"{path}: expected {exc}, found {shown}")
            out[key] = f.default
    return out


# -- schema ---------------------------------------------------------------------------------------
ME = {
    "name": Field(_nonempty_str, required=True, doc="your name, used in the digest"),
    "addresses": Field(
        _list_of(_email, "email addresses", at_least=1),
        required=True,
        doc="every address you send from",
    ),
    "timezone": Field(_timezone, required=True, doc="IANA zone the digest is rendered in"),
    "delegates": Field(
        _list_of(_email, "email addresses"),
        (),
        doc="assistants who send and answer mail for you: their mail counts as yours",
    ),
}
STORE = {"path": Field(_path, None)}
PRIVACY = {"store_subjects": Field(_bool, True), "forget_deleted": Field(_bool, False)}
DAEMON = {
    "sync_interval": Field(_duration, timedelta(minutes=15)),
    "jitter": Field(_duration, timedelta(minutes=2)),
    "max_backoff": Field(_duration, timedelta(hours=6)),
    "log_level": Field(_choice("debug", "info", "warning", "error"), "info"),
}
PEOPLE = {
    "aliases": Field(_list_of(_list_of(_email, "email addresses"), "lists of addresses"), ()),
    "role_accounts": Field(_list_of(_nonempty_str, 'local parts such as "billing"'), ()),
    "not_roles": Field(_list_of(_email, "email addresses"), ()),
    "distinct": Field(_list_of(_list_of(_email, "email addresses"), "lists of addresses"), ()),
    "birthdays": Field(_type(dict, 'a table of address = "MM-DD"'), {}),
}
EXCLUDE = {
    "addresses": Field(_list_of(_email, "email addresses"), ()),
    "domains": Field(_list_of(_nonempty_str, "domains"), ()),
    "globs": Field(_list_of(_nonempty_str, 'glob patterns such as "*@*.example.com"'), ()),
    "regexes": Field(_list_of(_regex, "regular expressions"), ()),
}
TIER = {
    "name": Field(_nonempty_str, required=True),
    "size": Field(_int_range(1, 5000), required=True),
    "cadence": Field(_duration, required=True),
    "members": Field(_list_of(_nonempty_str, "addresses, @domains or globs"), ()),
}
DEFAULT_TIERS: tuple[dict[str, Any], ...] = (
    {"name": "inner", "size": 5, "cadence": "2w"},
    {"name": "close", "size": 15, "cadence": "4w"},
    {"name": "active", "size": 50, "cadence": "12w"},
    {"name": "wider", "size": 150, "cadence": "26w"},
)
E = ENGINE_DEFAULTS  # the engine's knobs and their defaults, declared once (core/specs.py)
ENGINE = {
    "half_life": Field(_duration, E.half_life),
    "max_attendees": Field(_int_range(2, 1000), E.max_attendees),
    "max_recipients": Field(_int_range(1, 1000), E.max_recipients),
    "fading_factor": Field(_float_range(1.0, 100.0), E.fading_factor),
    "dormant_factor": Field(_float_range(1.0, 1000.0), E.dormant_factor),
    "reciprocity_window": Field(_duration, E.reciprocity_window),
    "reply_grace": Field(_duration, E.reply_grace),
    "reply_max_age": Field(_duration, E.reply_max_age),
    "outreach_wait": Field(_duration, E.outreach_wait),
    "max_growing": Field(_int_range(0, 50), E.max_growing),
    "new_window": Field(_duration, E.new_window),
    "lopsided_share": Field(_float_range(0.5, 1.0), E.lopsided_share),
    "lopsided_min_threads": Field(_int_range(2, 1000), E.lopsided_min_threads),
}
GREETING = {
    "name": Field(_nonempty_str, required=True),
    "date": Field(_month_day, required=True),
    "tiers": Field(_list_of(_nonempty_str, "tier names"), ()),
}
DIGEST = {
    "time": Field(_clock, "07:30"),
    "max_items": Field(_int_range(1, 50), DIGEST_DEFAULTS.max_items),
    "to": Field(_email, None),
    "from": Field(_email, None),
    "cooldown": Field(_duration, DIGEST_DEFAULTS.cooldown),
    "catch_up_window": Field(_duration, timedelta(hours=12)),
    "resend_after": Field(_duration, timedelta(minutes=30)),
}
SECRET = {
    "password_file": Field(_path, None),
    "password_env": Field(_nonempty_str, None),
    "password_command": Field(_nonempty_str, None),
}
SMTP = {
    "host": Field(_nonempty_str, required=True),
    "port": Field(_int_range(1, 65535), None),
    "security": Field(_choice("tls", "starttls", "none"), "starttls"),
    "username": Field(_nonempty_str, None),
    "timeout": Field(_duration, timedelta(seconds=30)),
    "ca_file": Field(_path, None),
    **SECRET,
}
DELIVERY = {
    "method": Field(_choice("file", "smtp", "gmail", "microsoft"), "file"),
    "outbox": Field(_path, None),
    "account": Field(_nonempty_str, None),
}


def _kind(v: Any) -> str:
    return str(_choice(*registry.KINDS)(v))  # the registry as it is now


ACCOUNT_COMMON = {
    "name": Field(_nonempty_str, required=True),
    "kind": Field(_kind, required=True),
    "enabled": Field(_bool, True),
    "sync_interval": Field(_duration, None),
}
_SPECIAL_CHECKS: dict[str, Check] = {"url": _dav_url, "path_or_url": _path_or_url}


def _check_of(hint: Any, meta: Mapping[str, Any]) -> Check:
    """The check of an options field, from its type (``X | None`` checks X) and metadata."""
    if meta.get("check"):
        return _SPECIAL_CHECKS[meta["check"]]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is Literal:
        return _choice(*typing.get_args(hint))
    if origin is tuple:
        return _list_of(_nonempty_str, meta.get("items") or "names")
    if hint is int:
        lo, hi = meta["range"]
        return _int_range(int(lo), int(hi))
    simple: dict[Any, Check] = {bool: _bool, timedelta: _duration, Path: _path, str: _nonempty_str}
    return simple[hint]


def option_fields(options: type) -> dict[str, Field]:
    """The config schema of a connector's options dataclass (see ``connectors/registry.py``)."""
    hints = typing.get_type_hints(options)
    out: dict[str, Field] = {}
    for f in dataclasses.fields(options):
        required = f.default is dataclasses.MISSING
        default = None if required else f.default
        doc = str(f.metadata.get("doc", ""))
        out[f.name] = Field(_check_of(hints[f.name], f.metadata), default, required, doc)
    return out


def account_fields(kind: str) -> dict[str, Field]:
    """Every key of an ``[[accounts]]`` table of ``kind`` besides the common ones."""
    spec = registry.get(kind)
    fields = option_fields(spec.options)
    return {**fields, **SECRET} if spec.login == "password" else fields


TOP = (
    "me",
    "store",
    "privacy",
    "daemon",
    "people",
    "exclude",
    "tiers",
    "engine",
    "greetings",
    "digest",
    "delivery",
    "accounts",
)


# -- typed result ---------------------------------------------------------------------------------
# The config's tiers and greetings are the engine's own specs (one type each, in keepwarm.core).
Tier = TierSpec
Greeting = GreetingSpec


@dataclass(frozen=True)
class Secret:
    """Where a password comes from: a file, an environment variable or a command. Never inline."""

    file: Path | None = None
    env: str | None = None
    command: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.file or self.env or self.command)


@dataclass(frozen=True)
class Account:
    """One ``[[accounts]]`` table: ``options`` is its kind's options dataclass (see
    ``connectors/registry.py``), ``secret`` where its password comes from (password kinds)."""

    name: str
    kind: str
    enabled: bool
    sync_interval: timedelta
    options: object
    secret: Secret = Secret()

    @property
    def spec(self) -> registry.ConnectorKind[Any]:
        return registry.get(self.kind)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str | None
    secret: Secret
    timeout: timedelta
    ca_file: Path | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None
    name: str
    addresses: tuple[str, ...]
    timezone: str
    store_path: Path
    state_dir: Path
    store_subjects: bool
    daemon: Mapping[str, Any]
    people: Mapping[str, Any]
    exclude: Mapping[str, Any]
    tiers: tuple[Tier, ...]
    engine: Mapping[str, Any]
    greetings: tuple[Greeting, ...]
    digest: Mapping[str, Any]
    delivery_method: str
    outbox: Path
    delivery_account: str | None
    smtp: SmtpConfig | None
    accounts: tuple[Account, ...] = field(default_factory=tuple)
    delegates: tuple[str, ...] = ()
    address_book: Any = None  # daemon.address_book.AddressBook, once applied (address_book.apply)
    forget_deleted: bool = False  # [privacy]: mail deleted at its source leaves the history

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def digest_to(self) -> str:
        return str(self.digest.get("to") or self.addresses[0])

    def account(self, name: str) -> Account:
        for a in self.accounts:
            if a.name == name:
                return a
        names = ", ".join(a.name for a in self.accounts) or "(none)"
        raise ConfigError(self.path, [f'no account named "{name}"; configured accounts: {names}'])

    def token_path(self, account: Account) -> Path:
        configured = getattr(account.options, "token_file", None)
        return (
            Path(configured) if configured else self.state_dir / "tokens" / f"{account.name}.json"
        )


# -- loading --------------------------------------------------------------------------------------
def load(path: str | Path | None = None) -> Config:
    """Find, read and validate the config. Raises :class:`ConfigError` listing every problem."""
    p = find_config(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            p,
            [
                f"config file not found: {p}. Create one with 'keepwarm init' (or pass --config PATH)"
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, [f"cannot read {p}: {exc}"]) from None
    return loads(text, p)


def loads(text: str, path: Path | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    return from_dict(data, path)


def from_dict(data: Mapping[str, Any], path: Path | None = None) -> Config:
    problems: list[str] = _unknown_sections(data)
    if "me" not in data:
        problems.append("me: missing section [me] (name, addresses, timezone)")
    me = _validate_table(data.get("me", {}), ME, "me", problems)
    store = _validate_table(data.get("store", {}), STORE, "store", problems)
    privacy = _validate_table(data.get("privacy", {}), PRIVACY, "privacy", problems)
    daemon = _validate_table(data.get("daemon", {}), DAEMON, "daemon", problems)
    people = _validate_table(data.get("people", {}), PEOPLE, "people", problems)
    exclude = _validate_table(data.get("exclude", {}), EXCLUDE, "exclude", problems)
    engine = _load_engine(data.get("engine", {}), problems)
    digest = _validate_table(data.get("digest", {}), DIGEST, "digest", problems)
    delivery_raw = data.get("delivery", {})
    smtp_raw = delivery_raw.get("smtp") if isinstance(delivery_raw, dict) else None
    delivery = _validate_table(
        delivery_raw, DELIVERY, "delivery", problems, extra_ok=frozenset({"smtp"})
    )
    people["birthdays"] = _load_birthdays(people.get("birthdays"), problems)
    tiers = _load_tiers(data.get("tiers"), problems)
    greetings = _load_greetings(data.get("greetings", []), tiers, problems)
    accounts = _load_accounts(data.get("accounts", []), problems, daemon["sync_interval"])

    state_dir = default_state_dir()
    store_path = store["path"] or state_dir / "keepwarm.db"
    outbox = delivery["outbox"] or default_outbox(Path(store_path))
    smtp = _load_smtp(smtp_raw, problems) if smtp_raw is not None else None
    _check_delivery(delivery, smtp, accounts, problems)
    if problems:
        raise ConfigError(path, problems)
    return Config(
        path=path,
        name=me["name"],
        addresses=tuple(me["addresses"]),
        timezone=me["timezone"],
        store_path=Path(store_path),
        state_dir=Path(state_dir),
        store_subjects=privacy["store_subjects"],
        forget_deleted=privacy["forget_deleted"],
        daemon=daemon,
        people=people,
        exclude=exclude,
        tiers=tiers,
        engine=engine,
        greetings=tuple(greetings),
        digest=digest,
        delivery_method=delivery["method"],
        outbox=Path(outbox),
        delivery_account=delivery["account"],
        smtp=smtp,
        accounts=tuple(accounts),
        delegates=tuple(me["delegates"]),
    )


def _unknown_sections(data: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in data:
        if key not in TOP:
            close = difflib.get_close_matches(key, TOP, n=1, cutoff=0.6)
            hint = (
                f'; did you mean "{close[0]}"?'
                if close
                else f"; allowed sections: {', '.join(TOP)}"
            )
            problems.append(f"{key}: unknown section{hint}")
    return problems


def _load_engine(raw: Any, problems: list[str]) -> dict[str, Any]:
    engine = _validate_table(raw, ENGINE, "engine", problems)
    if engine["dormant_factor"] < engine["fading_factor"]:
        problems.append(
            f"engine.dormant_factor: expected a number at least fading_factor "
            f"({engine['fading_factor']}): a tie turns dormant after it fades, "
            f"found {engine['dormant_factor']}"
        )
    return engine


def _load_birthdays(raw: Any, problems: list[str]) -> dict[str, str]:
    birthdays: dict[str, str] = {}
    for addr, day in dict(raw or {}).items():
        try:
            birthdays[_email(addr)] = _month_day(day)
        except _Invalid as exc:
            problems.append(f"people.birthdays.{addr}: expected {exc}, found {day!r}")
    return birthdays


def _load_greetings(raw: Any, tiers: tuple[Tier, ...], problems: list[str]) -> list[Greeting]:
    greetings: list[Greeting] = []
    if not isinstance(raw, list):
        problems.append("greetings: expected a list of [[greetings]] tables")
        raw = []
    tier_names = {t.name for t in tiers}
    for i, g in enumerate(raw):
        v = _validate_table(g, GREETING, f"greetings[{i + 1}]", problems)
        for t in v["tiers"] or ():
            if t not in tier_names:
                problems.append(
                    f'greetings[{i + 1}].tiers: unknown tier "{t}"; tiers are {", ".join(sorted(tier_names))}'
                )
        if v["name"] and v["date"]:
            greetings.append(Greeting(v["name"], v["date"], tuple(v["tiers"] or ())))
    return greetings


def _load_smtp(raw: Any, problems: list[str]) -> SmtpConfig | None:
    s = _validate_table(raw, SMTP, "delivery.smtp", problems)
    secret = Secret(s["password_file"], s["password_env"], s["password_command"])
    _check_secret(s, "delivery.smtp", problems)
    if not s["host"]:
        return None
    if s["security"] == "none" and not is_loopback_host(s["host"]):
        problems.append(
            'delivery.smtp.security: "none" sends your password in clear text; allowed only towards a loopback address (use "starttls" or "tls")'
        )
    port = s["port"] or {"tls": 465, "starttls": 587, "none": 25}[s["security"]]
    return SmtpConfig(
        s["host"], port, s["security"], s["username"], secret, s["timeout"], s["ca_file"]
    )


def _check_delivery(
    delivery: Mapping[str, Any],
    smtp: SmtpConfig | None,
    accounts: list[Account],
    problems: list[str],
) -> None:
    method = delivery["method"]
    if method == "smtp" and smtp is None and "delivery.smtp" not in " ".join(problems):
        problems.append('delivery.method: "smtp" needs a [delivery.smtp] table with at least host')
    if method not in ("gmail", "microsoft"):
        return
    acct = delivery["account"]
    login = {"gmail": "google", "microsoft": "microsoft"}[method]
    wanted = registry.kinds_where(lambda k: k.login == login)
    if not acct:
        problems.append(
            f'delivery.account: method "{method}" needs the name of a {"/".join(wanted)} account to send through'
        )
    elif not any(a.name == acct and a.kind in wanted for a in accounts):
        problems.append(f'delivery.account: no {"/".join(wanted)} account named "{acct}"')


def _check_secret(values: Mapping[str, Any], where: str, problems: list[str]) -> None:
    given = [k for k in ("password_file", "password_env", "password_command") if values.get(k)]
    if len(given) > 1:
        problems.append(
            f"{where}: set only one of password_file, password_env, password_command (found {', '.join(given)})"
        )


def _load_tiers(raw: Any, problems: list[str]) -> tuple[Tier, ...]:
    if raw is None:
        raw = [dict(t) for t in DEFAULT_TIERS]
    if not isinstance(raw, list) or not raw:
        problems.append("tiers: expected one or more [[tiers]] tables, inner to outer")
        return ()
    tiers: list[Tier] = []
    seen: set[str] = set()
    for i, t in enumerate(raw):
        v = _validate_table(t, TIER, f"tiers[{i + 1}]", problems)
        if not v["name"] or not v["size"] or not v["cadence"]:
            continue
        if v["name"] in seen:
            problems.append(f'tiers[{i + 1}].name: duplicate tier name "{v["name"]}"')
        seen.add(v["name"])
        if tiers and v["size"] < tiers[-1].size:
            problems.append(
                f"tiers[{i + 1}].size: outer tiers need a size at least as large as inner ones "
                f"({v['name']} has {v['size']}, {tiers[-1].name} {tiers[-1].size}); list tiers inner to outer"
            )
        if tiers and v["cadence"] < tiers[-1].cadence:
            problems.append(
                f"tiers[{i + 1}].cadence: outer tiers need a cadence at least as long as inner ones ({v['name']} is shorter than {tiers[-1].name})"
            )
        tiers.append(Tier(v["name"], v["size"], v["cadence"], tuple(v["members"] or ())))
    return tuple(tiers)


def _load_accounts(raw: Any, problems: list[str], default_interval: timedelta) -> list[Account]:
    if not isinstance(raw, list):
        problems.append("accounts: expected a list of [[accounts]] tables")
        return []
    out: list[Account] = []
    names: set[str] = set()
    for i, a in enumerate(raw):
        if not isinstance(a, dict):
            problems.append(f"accounts[{i + 1}]: expected a table")
            continue
        account = _load_account(a, i, names, problems, default_interval)
        if account is not None:
            out.append(account)
    return out


def _load_account(
    a: dict[str, Any], i: int, names: set[str], problems: list[str], default_interval: timedelta
) -> Account | None:
    """One ``[[accounts]]`` table (its problems appended); None when it has no name or kind."""
    kind = a.get("kind")
    fields = account_fields(kind) if isinstance(kind, str) and kind in registry.KINDS else {}
    where = (
        f'accounts[{i + 1}] ("{a["name"]}")'
        if isinstance(a.get("name"), str)
        else f"accounts[{i + 1}]"
    )
    v = _validate_table(a, {**ACCOUNT_COMMON, **fields}, where, problems)
    if not v["name"] or not v["kind"]:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", v["name"]):
        problems.append(
            f"{where}.name: use letters, digits, '.', '_' or '-' (it names files and log lines)"
        )
    if v["name"] in names:
        problems.append(f'{where}.name: duplicate account name "{v["name"]}"')
    names.add(v["name"])
    spec = registry.get(v["kind"])
    secret = _account_secret(v, where, problems) if spec.login == "password" else Secret()
    options = spec.options(**{k: v[k] for k in option_fields(spec.options)})
    if spec.problems is not None:
        problems += [f"{where}.{p}" for p in spec.problems(options)]
    interval = v["sync_interval"] or default_interval
    return Account(v["name"], v["kind"], v["enabled"], interval, options, secret)


def _account_secret(v: Mapping[str, Any], where: str, problems: list[str]) -> Secret:
    _check_secret(v, where, problems)
    secret = Secret(v["password_file"], v["password_env"], v["password_command"])
    if not secret.configured:
        problems.append(
            f"{where}: set password_file, password_env or password_command (passwords never go in this file)"
        )
    return secret
