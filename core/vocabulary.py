"""keepwarm's shared words: what the markers of a message mean, the roles of its addresses and
the prefixes of a subject line. Connectors report markers (``connectors/base.py``); identity
(``daemon/identity.py``) and the engine (``digests/cadence/touches.py``) read them from here, so
the two can never disagree on what a marker says."""

from __future__ import annotations

import re

# -- markers --------------------------------------------------------------------------------------
# A list or a bulk sender said so in the headers (RFC 2369 List-*, Precedence, the mailer) or in
# the subject (prices, "% off").
LIST_MARKERS = frozenset(
    {
        "list-id",
        "list-unsubscribe",
        "list-post",
        "precedence:bulk",
        "precedence:list",
        "precedence:junk",
        "bulk-mailer",
        "subject:promo",
    }
)
CATEGORY_PREFIX = "category:"  # Gmail's tabs (CATEGORY_PROMOTIONS ... as labels)
CATEGORY_MARKERS = frozenset(
    f"{CATEGORY_PREFIX}{c}" for c in ("promotions", "social", "updates", "forums")
)
# List or bulk mail: identity counts these per sender to tell lists and bulk senders from people.
BULK_MARKERS = LIST_MARKERS | CATEGORY_MARKERS
OTHER_INBOX_MARKER = "inference:other"  # Outlook's Focused Inbox filed it under "Other"
DIGEST_MARKER = "keepwarm-digest"  # keepwarm's own digest, read back from a mailbox
# Automatic mail (RFC 3834 and its unofficial cousins), besides any ``auto-submitted:*`` marker.
AUTO_PREFIX = "auto-submitted:"
AUTO_MARKERS = frozenset(
    {
        "return-path-null",
        "x-autoreply",
        "precedence:auto_reply",
        "subject:autoreply",
        "subject:response",
        "subject:reference",
    }
)
# Never contact for the engine: bulk or automatic mail, Outlook's "Other" and keepwarm's own
# digest. (Identity does not count "Other" as bulk: Focused Inbox files people there too.)
NOT_CONTACT_MARKERS = BULK_MARKERS | {OTHER_INBOX_MARKER, DIGEST_MARKER}


def is_auto(marker: str) -> bool:
    return marker in AUTO_MARKERS or marker.startswith(AUTO_PREFIX)


def not_contact(marker: str) -> bool:
    """Does this one marker make a message something other than contact (for the engine)?"""
    return marker in NOT_CONTACT_MARKERS or marker.startswith(CATEGORY_PREFIX) or is_auto(marker)


# -- the roles of a message's addresses (stored as small integers) ---------------------------------
ROLE_FROM, ROLE_TO, ROLE_CC, ROLE_BCC, ROLE_REPLY_TO = 0, 1, 2, 3, 4

# -- subject lines --------------------------------------------------------------------------------
# Reply and forward prefixes in common languages ("Re:", "AW:", "SV:", "Fwd:", "WG:", "TR:" ...),
# with an optional count ("Re[2]:", "Re(3):"), and a list's "[tag]".
REPLY_WORDS = frozenset({"re", "aw", "sv", "vs", "antw", "odp", "vb", "atb", "rif", "ref", "r"})
FORWARD_WORDS = frozenset({"fw", "fwd", "wg", "tr", "rv", "i", "doorst"})
SUBJECT_PREFIXES = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|wg|sv|vs|antw|tr|rif|ref|r|odp|vb|atb)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*"
    r"|\[[^\]]{1,40}\]\s*)+",
    re.IGNORECASE,
)
FIRST_PREFIX = re.compile(r"^\s*([a-z]{1,6})\s*(?:\[\d+\]|\(\d+\))?\s*[:：]", re.IGNORECASE)


# -- addresses -----------------------------------------------------------------------------------
# Free-mail providers: an address there is a person's own, not an organisation's.
FREEMAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "proton.me",
        "protonmail.com",
        "fastmail.com",
        "hey.com",
        "mail.com",
        "yandex.ru",
        "qq.com",
        "163.com",
    }
)
