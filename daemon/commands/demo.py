"""keepwarm CLI commands: demo."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from keepwarm.daemon.commands.base import Ctx, UserError, cli, parse_as_of
from keepwarm.daemon.commands.status import sync_accounts
from keepwarm.daemon.demo import DEMO_SEED, DEMO_TODAY, DemoManifest, generate
from keepwarm.daemon.people_stats import load_view

__all__ = ["cli"]


def import_demo(obj: Ctx, manifest: DemoManifest) -> None:
    """Import the demo accounts through the real maildir and ics connectors."""
    if sync_accounts(obj, []):  # prints each account's summary line
        raise UserError(f"the demo import failed; see the messages above ({manifest.dir})")


@cli.command()
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the demo mail, calendar, config and database.",
)
@click.option("--seed", default=DEMO_SEED, show_default=True, help="Random seed.")
@click.option(
    "--today",
    default=DEMO_TODAY.isoformat(),
    show_default=True,
    help="The demo's today (YYYY-MM-DD); the year of history ends there.",
)
def demo(directory: Path, seed: int, today: str) -> None:
    """Generate a realistic year of demo mail and calendar, import it and show the result.

    Writes DIR/mail (a maildir), DIR/calendar.ics, DIR/contacts.vcf (an address book) and
    DIR/config.toml, imports them into
    DIR/keepwarm.db and prints your relationships as of the demo day. Explore further with
    `keepwarm --config DIR/config.toml people --all --as-of DAY`.
    """
    try:
        day = date.fromisoformat(today)
    except ValueError:
        raise UserError(f"--today: expected YYYY-MM-DD, found {today!r}") from None
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} is not empty; pass a new or empty directory")
    manifest = generate(directory, seed, day)
    click.echo(
        f"wrote {manifest.messages:,} messages to {manifest.mail_dir} and "
        f"{manifest.events:,} meetings to {manifest.ics_path}"
    )
    obj = Ctx(str(manifest.config_path))
    import_demo(obj, manifest)
    from keepwarm.daemon.commands.people import print_people  # a sibling command module

    config = obj.config
    when = parse_as_of(manifest.as_of, config.zone)
    with obj.store() as store:
        view = load_view(store, config, when)
    kinds: dict[str, int] = {}
    for p in view.identity.people.values():
        if view.stats[p.key].interactions:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
    shown = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    click.echo(f"address clusters as of {manifest.as_of}: {shown}\n")
    print_people(view, config.zone, all_kinds=False)
    click.echo(
        f"\nnext: keepwarm --config {manifest.config_path} people --all --as-of {manifest.as_of}"
    )
    click.echo(write_demo_digest(obj, day))


def write_demo_digest(obj: Ctx, day: date) -> str:
    """The demo morning's digest, delivered to the demo's file outbox; returns what to print."""
    from keepwarm.daemon.digest_job import digest_moment, run_digest
    from keepwarm.digests.deliver import FileOutbox

    config = obj.config
    with obj.store() as store:
        outcome = run_digest(config, store, now=digest_moment(config, day), send=True)
    if outcome.state not in ("sent", "already_sent"):
        raise UserError(f"the demo digest could not be written: {outcome.error}")
    eml, html = FileOutbox(config.outbox).paths(outcome.local_date)
    return (
        f"\ndigest for {day}: {outcome.subject}\n"
        f"the message as mailed: {eml}\nthe digest, to open in a browser:\n{html}"
    )
