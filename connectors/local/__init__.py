"""Local files: mbox (``mbox``), maildir or a folder of message files (``maildir``), .ics
calendars and published calendar addresses (``ics``) and vCard address books (``vcard``), each a
kind with its options and declaration. The connectors are in the sibling modules;
:mod:`.common` holds what they share (walking files, skip counts, cursors)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from keepwarm.connectors.base import Connector, SourceError, TransientError
from keepwarm.connectors.registry import ConnectorKind, Context, option, reach


@dataclass(frozen=True)
class PathOptions:
    """``[[accounts]]`` of a kind that reads files: where they are."""

    path: Path = option(doc="the file or folder to read")


@dataclass(frozen=True)
class IcsOptions:
    """``[[accounts]] kind = "ics"``: a file or folder of .ics files, or a published calendar's
    https:// or webcal:// address."""

    path: Path | str = option(
        doc="a .ics file or folder, or a calendar's https:// address", check="path_or_url"
    )
    timeout: timedelta = option(timedelta(seconds=60), doc="network timeout of an address")
    window_past: timedelta = option(timedelta(days=730), doc="how far back events are read")
    window_future: timedelta = option(timedelta(days=14), doc="how far ahead events are read")


def readable(path: Path, account: str) -> str:
    """``PATH readable``; SourceError with the fix when it is missing or unreadable."""
    if not path.exists():
        raise SourceError(
            f"{path} does not exist",
            f'fix accounts "{account}" path in the config, or mount the disk that holds it',
        )
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise SourceError(
            f"{path} is not readable by this user",
            f"chmod u+r {shlex.quote(str(path))} (or run keepwarm as its owner)",
        )
    return f"{path} readable"


def _readable(o: PathOptions, ctx: Context, _timeout: float) -> str:
    return readable(Path(o.path), ctx.account)


def _maildir_probe(o: PathOptions, ctx: Context, _timeout: float) -> str:
    from keepwarm.connectors.local.maildir import layout

    path = Path(o.path)
    readable(path, ctx.account)
    if not path.is_dir():
        raise SourceError(f"{path} is a file", "point path at a folder of mail (a maildir)")
    found = layout(path)
    if found is None:
        raise SourceError(
            f"{path} holds no message files",
            "point path at a maildir (cur/ new/), a tree of them, or a folder of one-message "
            "files (the Enron archive)",
        )
    return f"{path} readable ({found})"


def _ics_probe(o: IcsOptions, ctx: Context, timeout: float) -> str:
    if isinstance(o.path, Path):
        return readable(o.path, ctx.account)
    url = o.path.replace("webcal://", "https://", 1)
    try:
        return reach(url, timeout, what=" (a published calendar)")
    except TransientError as exc:
        raise SourceError(str(exc), "check the address") from None


def _mbox(o: PathOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.local.mbox import MboxConnector

    return MboxConnector(ctx.account, o.path, keep_subjects=ctx.keep_subjects)


def _maildir(o: PathOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.local.maildir import MaildirConnector

    return MaildirConnector(ctx.account, o.path, keep_subjects=ctx.keep_subjects)


def _vcard(o: PathOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.local.vcard import VcardConnector

    return VcardConnector(ctx.account, o.path)


def _ics(o: IcsOptions, ctx: Context) -> Connector:
    from keepwarm.connectors.local.ics import IcsConnector

    return IcsConnector(
        ctx.account,
        o.path,
        zone=ctx.zone,
        self_addresses=ctx.me,
        window_past=o.window_past,
        window_future=o.window_future,
        keep_titles=ctx.keep_subjects,
        timeout=o.timeout.total_seconds(),
    )


MBOX = ConnectorKind(
    kind="mbox",
    options=PathOptions,
    build=_mbox,
    probe=_readable,
    summary="an mbox file (a Google Takeout export, Thunderbird)",
    importable=True,
)
MAILDIR = ConnectorKind(
    kind="maildir",
    options=PathOptions,
    build=_maildir,
    probe=_maildir_probe,
    summary="a maildir, a tree of them, or a folder of one-message files (Enron)",
    importable=True,
)
ICS = ConnectorKind(
    kind="ics",
    options=IcsOptions,
    build=_ics,
    probe=_ics_probe,
    summary="a .ics file or folder, or a published calendar's address",
    importable=True,
)
VCARD = ConnectorKind(
    kind="vcard",
    options=PathOptions,
    build=_vcard,
    probe=_readable,
    summary="a .vcf address book (file or folder)",
    importable=True,
)
