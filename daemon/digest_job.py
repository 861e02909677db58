"""One day's digest: engine report -> suggestions -> render -> deliver, exactly once per local day.

The ``digests`` table is the ledger (one row per local date):

``intent``   recorded, with the day's stable Message-ID, BEFORE any delivery attempt begins.
``sending``  recorded just before the point of no return (SMTP DATA; the outbox's final rename).
``sent``     recorded after the server accepted the message (or the file was written).
``failed``   the last attempt failed; ``last_error`` says why, ``attempts`` counts attempts.

On a restart the row decides:

- ``sent``: nothing to do (``already_sent``).
- ``intent`` or ``failed``: nothing reached the point of no return, so it is safe to (re)send.
- ``sending``: the process stopped (or the connection dropped) while the message was being handed
  over. The file outbox can check whether the file is there. SMTP cannot ask the server, so the
  row becomes ``sent`` and *unconfirmed* (``keepwarm status`` says so), and it is never resent
  blindly: the user must not get two. The digest goes to the user's own address, so
  :mod:`keepwarm.daemon.delivery_check` confirms it when a synced account receives its
  Message-ID, and resends it (the same bytes, the same Message-ID) only when it is still missing
  after an account that received earlier digests has synced well after it was sent; otherwise
  the next digest says it may not have arrived. ``--force`` sends again deliberately, with a new
  Message-ID.

Transient failures (4xx, refused connections, timeouts) are retried once in-process after a
short pause; the daemon then retries later the same day with its own backoff when it sees
``transient`` (at most MAX_ATTEMPTS_PER_DAY attempts a day). Permanent ones (5xx,
AUTH refused, bad TLS) stop at once and are shown by ``keepwarm status`` and in the next digest.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keepwarm.core.files import write_private
from keepwarm.core.specs import DIGEST_DEFAULTS
from keepwarm.daemon import decisions, freshness
from keepwarm.daemon.actions import digest_links
from keepwarm.daemon.config import Config
from keepwarm.daemon.errors import OutFileError as OutFileError
from keepwarm.daemon.lock import exclusive
from keepwarm.daemon.scheduler import digest_time_on
from keepwarm.daemon.store import Store, ledger
from keepwarm.daemon.store.ledger import LEDGER_COLUMNS as LEDGER_COLUMNS
from keepwarm.daemon.store.ledger import LedgerRow as LedgerRow
from keepwarm.digests.deliver import (
    POLICY,
    Delivery,
    DeliveryError,
    FileOutbox,
    SmtpDelivery,
    SmtpSettings,
    build_message,
    message_id_for,
)
from keepwarm.digests.render import (
    AccountHealth,
    DigestModel,
    RenderedDigest,
    TierHealth,
    render,
)
from keepwarm.digests.suggest import RankPolicy, Suggestion, build, rank

if TYPE_CHECKING:  # the engine loads when a digest runs
    from keepwarm.digests.cadence import NetworkReport, PersonReport

log = logging.getLogger(__name__)

MAX_ATTEMPTS_PER_DAY = 8
# One quick in-process retry after a transient failure covers a blip; longer backoff is the
# scheduler's job (the daemon retries a transient outcome later the same day).
RETRY_DELAYS: tuple[float, ...] = (3.0,)


# What one digest run did: sent it, found it sent already, failed, wrote it to a file (--out or
# a preview), or left it to another process that is sending it.
RunState = Literal["sent", "already_sent", "failed", "written", "in_progress"]


@dataclass
class DigestOutcome:
    """What one run did."""

    state: RunState
    local_date: date
    subject: str | None = None
    path: Path | None = None
    error: str | None = None
    transient: bool = False
    suggestions: tuple[Suggestion, ...] = ()
    rendered: RenderedDigest | None = None


ReportBuilder = Callable[[Config, Store, datetime], "NetworkReport"]


def _default_builder() -> ReportBuilder:
    from keepwarm.daemon.decisions import build_report

    def builder(config: Config, store: Store, now: datetime) -> NetworkReport:
        return build_report(config, store, now)  # your decisions applied

    return builder


# -- the ledger (its SQL: daemon/store/ledger.py) -------------------------------------------------
def ledger_row(store: Store, local_date: date) -> LedgerRow | None:
    return ledger.row(store, local_date)


def record_ledger(store: Store, local_date: date, **values: Any) -> None:
    ledger.update(store, local_date, **values)


def _record_intent(
    store: Store,
    local_date: date,
    message_id: str,
    method: str,
    subject: str,
    message: bytes,
) -> None:
    ledger.record_intent(store, local_date, message_id, method, subject, message)


UNCONFIRMED = (
    "unconfirmed: keepwarm stopped while handing the digest over; it is sent again only if it "
    "does not arrive in a mailbox keepwarm syncs"
)


def previous_problem(store: Store, local_date: date) -> str | None:
    """The newest failed or unconfirmed digest of the last week, as a sentence for the footer."""
    row = ledger.newest_problem(store, local_date, local_date - timedelta(days=7))
    if row is None:
        return None
    day, state, error, resent_at = row
    if state == "failed":
        return f"The digest of {day} was not delivered: {error or 'unknown error'}."
    if resent_at:
        return (
            f"The digest of {day} may not have reached you: keepwarm sent it again (the same "
            "message) and has not seen it arrive yet."
        )
    return (
        f"The digest of {day} may not have reached you: keepwarm stopped while handing it "
        "over and has not seen it arrive in your mail."
    )


# -- shown history ---------------------------------------------------------------------------------
def recently_shown(store: Store, today: date, cooldown: timedelta) -> dict[str, date]:
    return ledger.shown_since(store, today - timedelta(days=max(cooldown.days, 1)))


def record_shown(store: Store, local_date: date, suggestions: Iterable[Suggestion]) -> None:
    ledger.record_shown(store, local_date, suggestions)


# -- building the day's digest --------------------------------------------------------------------
NOTICE_WINDOW = timedelta(days=7)  # a digest repeats an account's notices for this long


def account_health(config: Config, store: Store, now: datetime) -> list[AccountHealth]:
    """Every enabled account (imported ones too) and how fresh it is as of ``now``."""
    since = (now - NOTICE_WINDOW).timestamp()
    return [
        AccountHealth(
            name=a.name,
            kind=a.kind,
            state=a.state,
            last_ok_at=a.last_ok_at,
            last_error=a.last_error,
            fix=a.fix,
            notices=tuple(n.text for n in store.notices(a.name, since)),
        )
        for a in freshness.accounts(config, store, now)
        if a.enabled
    ]


def choose(
    config: Config, store: Store, report: NetworkReport, now: datetime, local_date: date
) -> list[Suggestion]:
    people = {p.key: p for p in report.people}
    addresses = {p.key: (p.addresses[0] if p.addresses else p.key) for p in report.people}
    policy = RankPolicy(
        max_items=int(config.digest.get("max_items") or DIGEST_DEFAULTS.max_items),
        tiers=tuple(t.name for t in config.tiers),
    )
    cooldown: timedelta = config.digest.get("cooldown") or DIGEST_DEFAULTS.cooldown
    inputs = decisions.load_inputs(store, now)
    candidates = decisions.adjust(
        build(report.signals, people, policy, config.zone, addresses),
        report.people,
        inputs,
        now,
        cooldown,
    )
    chosen = rank(
        candidates,
        people,
        policy,
        today=local_date,
        shown=recently_shown(store, local_date, cooldown),
        cooldown_days=cooldown.days,
        snoozed=decisions.snoozed_keys(report.people, inputs),
    )
    meeting_today = {s.person_key for s in report.signals if s.kind == "meeting_today"}
    return decisions.with_notes(chosen, report.people, inputs, meeting_today)


def compose(
    config: Config, store: Store, report: NetworkReport, now: datetime, local_date: date
) -> tuple[DigestModel, list[Suggestion]]:
    suggestions = choose(config, store, report, now, local_date)
    model = DigestModel(
        local_date=local_date,
        generated_at=now,
        zone=config.timezone,
        owner_name=config.name,
        suggestions=suggestions,
        tiers=[
            TierHealth(t.name, t.size, t.members, t.warm, t.fading + t.dormant)
            for t in report.tiers
        ],
        accounts=account_health(config, store, now),
        warnings=[w.text for w in report.warnings],
        delivery_problem=previous_problem(store, local_date),
        extra_actions=[p for p in (freshness.data_problem(store, now, config),) if p],
        people_total=sum(1 for p in report.people if p.tier is not None),
        applied=decisions.applied_lines(store, _names(report.people), config.zone, local_date),
        links=[
            [(link.label, link.href) for link in item]
            for item in digest_links(config, suggestions, local_date)
        ],
    )
    return model, suggestions


def _names(people: Sequence[PersonReport]) -> dict[str, str]:
    """Display names by address (every address of each person)."""
    out: dict[str, str] = {}
    for p in people:
        for a in (p.key, *p.addresses):
            out.setdefault(a, p.name)
    return out


def digest_moment(config: Config, day: date) -> datetime:
    """The configured digest time ([digest].time) on ``day`` in the user's zone, as UTC."""
    return digest_time_on(day, str(config.digest.get("time") or "07:30"), config.zone)


# -- delivery -------------------------------------------------------------------------------------
# Delivery methods: method name -> "module:function" building a Delivery from the Config.
# The Gmail API send and Graph sendMail helpers add their entries here ("gmail", "microsoft");
# the function receives the Config (``config.delivery_account`` names the account to send as) and
# returns an object implementing keepwarm.digests.deliver.Delivery.
DELIVERIES: dict[str, str] = {
    "file": "keepwarm.daemon.digest_job:file_delivery",
    "smtp": "keepwarm.daemon.digest_job:smtp_delivery",
    "microsoft": "keepwarm.daemon.graph_delivery:graph_delivery",
    "gmail": "keepwarm.daemon.gmail_delivery:gmail_delivery",
}


def make_delivery(config: Config) -> Delivery:
    """The configured delivery method (see :data:`DELIVERIES`)."""
    import importlib

    target = DELIVERIES.get(config.delivery_method)
    if target is None:
        raise DeliveryError(
            f'delivery method "{config.delivery_method}" is not available in this build; '
            f"use one of {', '.join(sorted(DELIVERIES))} as [delivery].method",
            transient=False,
        )
    module, _, name = target.partition(":")
    factory: Callable[[Config], Delivery] = getattr(importlib.import_module(module), name)
    return factory(config)


@contextlib.contextmanager
def chosen_delivery(config: Config, given: Delivery | None) -> Iterator[Delivery]:
    """``given``, or the configured delivery, made for this use and closed after it."""
    if given is not None:
        yield given
        return
    made = make_delivery(config)
    try:
        yield made
    finally:
        made.close()


def file_delivery(config: Config) -> Delivery:
    return FileOutbox(config.outbox)


def smtp_delivery(config: Config) -> Delivery:
    if config.smtp is None:
        raise DeliveryError(
            'delivery method "smtp" needs a [delivery.smtp] table with at least host',
            transient=False,
        )
    return SmtpDelivery(smtp_settings(config))


def smtp_settings(config: Config) -> SmtpSettings:
    from keepwarm.daemon.secrets import SecretError, resolve_secret

    smtp = config.smtp
    assert smtp is not None

    def password() -> str:
        try:
            return resolve_secret(smtp.secret, "delivery.smtp")
        except SecretError as exc:
            fix = f" To fix: {exc.fix}" if exc.fix else ""
            raise DeliveryError(f"{exc}.{fix}", transient=False) from None

    return SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=password if smtp.secret.configured else None,
        timeout=smtp.timeout.total_seconds(),
        ca_file=smtp.ca_file,
    )


def _write_out(rendered: RenderedDigest, out: Path, message_bytes: bytes) -> None:
    """The digest as a file readable only by its owner (it names your relationships)."""
    suffix = out.suffix.lower()
    if suffix == ".eml":
        data = message_bytes
    elif suffix in (".html", ".htm"):
        data = rendered.html.encode("utf-8")
    else:
        data = rendered.text.encode("utf-8")
    try:
        write_private(out, data)
    except OSError as exc:
        raise OutFileError(f"cannot write {out}: {exc.strerror or exc}") from None


def run_digest(
    config: Config,
    store: Store,
    *,
    now: datetime,
    send: bool = True,
    out: Path | None = None,
    force: bool = False,
    report_builder: ReportBuilder | None = None,
    delivery: Delivery | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retry_delays: Sequence[float] = RETRY_DELAYS,
) -> DigestOutcome:
    """Build the digest for ``now``'s local day; write it to ``out`` and/or deliver it once.

    Delivering needs the database's delivery lock (one process at a time): a second sender at
    the same moment gets ``in_progress`` at once, before it builds or sends anything.
    """
    local_date = now.astimezone(config.zone).date()
    claim = delivery_claim(store) if send else contextlib.nullcontext(True)
    with claim as claimed:
        if not claimed:
            return DigestOutcome(
                "in_progress",
                local_date,
                error="already being delivered by another keepwarm process; not sending it twice",
                transient=True,
            )
        return _run_digest(
            config,
            store,
            local_date,
            now,
            send,
            out,
            force,
            report_builder,
            delivery,
            sleep,
            retry_delays,
        )


@contextlib.contextmanager
def delivery_claim(store: Store) -> Iterator[bool]:
    """The right to deliver: an exclusive lock beside the database, held while delivering."""
    if store.path is None:  # an in-memory store has one user
        yield True
        return
    with exclusive(store.path.with_name(store.path.name + ".delivery-lock")) as held:
        yield held


def _run_digest(
    config: Config,
    store: Store,
    local_date: date,
    now: datetime,
    send: bool,
    out: Path | None,
    force: bool,
    report_builder: ReportBuilder | None,
    delivery: Delivery | None,
    sleep: Callable[[float], None],
    retry_delays: Sequence[float],
) -> DigestOutcome:
    if send and not force:
        done = _settle_previous(config, store, local_date, delivery, now)
        if done is not None:
            return done
    report = (report_builder or _default_builder())(config, store, now)
    model, suggestions = compose(config, store, report, now, local_date)
    rendered = render(model)
    sender = str(config.digest.get("from") or config.digest_to)
    ledger = ledger_row(store, local_date)
    resend = (ledger.attempts + 1) if force and ledger and ledger.state == "sent" else 0
    message_id = message_id_for(local_date, config.digest_to, resend=resend)
    msg = build_message(
        rendered,
        sender=sender,
        sender_name=config.name,
        to=config.digest_to,
        message_id=message_id,
        when=now,
    )
    base = DigestOutcome(
        "written", local_date, rendered.subject, None, None, False, tuple(suggestions), rendered
    )
    if out is not None:
        _write_out(rendered, out, msg.as_bytes())
        base = _replace(base, path=out)
    if not send:
        return base
    try:
        chosen = delivery or make_delivery(config)
    except DeliveryError as exc:
        return _replace(base, state="failed", error=str(exc))
    try:
        return _deliver(store, chosen, msg, rendered, base, now, sleep, retry_delays)
    finally:
        if delivery is None:
            chosen.close()


def _replace(o: DigestOutcome, **changes: Any) -> DigestOutcome:
    from dataclasses import replace

    return replace(o, **changes)


def _settle_previous(
    config: Config, store: Store, local_date: date, delivery: Delivery | None, now: datetime
) -> DigestOutcome | None:
    """Resolve today's ledger row left by an earlier run; an outcome means "stop here"."""
    row = ledger_row(store, local_date)
    if row is None:
        return None
    if row.state == "sent":
        return DigestOutcome("already_sent", local_date, row.subject, error=row.last_error)
    if row.state == "sending":
        try:
            with chosen_delivery(config, delivery) as chosen:
                known = chosen.delivered(local_date, row.message_id)
        except DeliveryError:
            known = None
        if known is False:
            return None  # provably not delivered (outbox file missing): safe to deliver
        if known:
            record_ledger(store, local_date, state="sent", last_error=None, message=None)
            return DigestOutcome("already_sent", local_date, row.subject)
        record_ledger(
            store,
            local_date,
            state="sent",
            sent_at=row.sent_at or int(time.time()),
            unconfirmed=1,
            last_error=UNCONFIRMED,
        )
        return DigestOutcome("already_sent", local_date, row.subject, error=UNCONFIRMED)
    if row.attempts >= MAX_ATTEMPTS_PER_DAY:
        return DigestOutcome(
            "failed",
            local_date,
            row.subject,
            error=f"gave up after {row.attempts} attempts today: {row.last_error}",
        )
    return None  # intent / failed: nothing reached the point of no return


def _deliver(
    store: Store,
    delivery: Delivery,
    msg: Any,
    rendered: RenderedDigest,
    base: DigestOutcome,
    now: datetime,
    sleep: Callable[[float], None],
    retry_delays: Sequence[float],
) -> DigestOutcome:
    local_date = base.local_date
    message_id = str(msg["Message-ID"])
    _record_intent(
        store, local_date, message_id, delivery.method, rendered.subject, msg.as_bytes(POLICY)
    )
    delays = list(retry_delays)
    while True:
        row = ledger_row(store, local_date)
        attempts = (row.attempts if row else 0) + 1
        record_ledger(store, local_date, attempts=attempts)
        try:
            where = delivery.deliver(
                msg,
                local_date=local_date,
                html=rendered.html,
                before_data=lambda: record_ledger(
                    store, local_date, state="sending", sent_at=int(time.time())
                ),
            )
        except DeliveryError as exc:
            if exc.maybe_sent:
                note = f"unconfirmed: {exc}; it is sent again only if it does not arrive"
                record_ledger(store, local_date, state="sent", unconfirmed=1, last_error=note)
                record_shown(store, local_date, base.suggestions)
                log.warning("digest %s: delivery unconfirmed: %s", local_date, exc)
                return _replace(base, state="sent", error=note)
            record_ledger(store, local_date, state="failed", last_error=str(exc))
            if exc.transient and delays and attempts < MAX_ATTEMPTS_PER_DAY:
                log.warning("digest %s: transient delivery failure, retrying: %s", local_date, exc)
                sleep(delays.pop(0))
                continue
            log.error("digest %s: delivery failed: %s", local_date, exc)
            return _replace(base, state="failed", error=str(exc), transient=exc.transient)
        record_ledger(
            store, local_date, state="sent", sent_at=int(time.time()), last_error=None, message=None
        )
        record_shown(store, local_date, base.suggestions)
        log.info("digest %s delivered via %s", local_date, delivery.method)
        return _replace(base, state="sent", path=Path(where) if delivery.method == "file" else None)
