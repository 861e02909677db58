"""The CLI never leaves the user guessing: empty or old data is said with the command to run,
"up to date" only when an account really is, every account in the store is listed and can be
forgotten, the next digest is the real one, and doctor logs in and accepts every layout sync reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_imap import Mailbox, server  # noqa: F401  (the Dovecot fixture)

from keepwarm.connectors.base import Address, Batch, MessageMeta
from keepwarm.daemon.cli import cli
from keepwarm.daemon.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)


def write_config(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        '[me]\nname = "Jane"\naddresses = ["me@example.com"]\ntimezone = "UTC"\n'
        f'[store]\npath = "{tmp / "kw.db"}"\n[delivery]\noutbox = "{tmp / "out"}"\n' + extra
    )
    cfg.chmod(0o600)
    return cfg


def add_mail(tmp: Path, days_ago: float, account: str = "imported-one", n: int = 2) -> None:
    store = Store.open(tmp / "kw.db")
    msgs = []
    for i in range(n):
        sender, to = ("a@x.org", "me@example.com") if i % 2 == 0 else ("me@example.com", "a@x.org")
        msgs.append(
            MessageMeta(
                account=account,
                provider_id=f"{account}-{days_ago}-{i}",
                date=NOW - timedelta(days=days_ago, minutes=-i),
                sender=Address(sender, "Ann Lee" if sender == "a@x.org" else ""),
                to=(Address(to),),
                subject=f"s{i}",
            )
        )
    store.apply_batch(account, "maildir", Batch(messages=msgs))
    store.set_account_state(account, "maildir", "ok", ok=True, now=NOW.timestamp())
    store.close()


def run(cfg: Path, *args: str, code: int = 0) -> Any:
    res = CliRunner().invoke(cli, ["--config", str(cfg), *args])
    assert res.exit_code == code, res.output
    return res


def test_an_empty_store_says_what_to_run(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    people = run(cfg, "people").output
    assert "no relationships (two-way) yet" in people
    assert "keepwarm has no mail or calendar yet" in people and "keepwarm import maildir" in people
    digest = run(cfg, "digest").output
    assert "ACTION NEEDED" in digest and "keepwarm has no mail or calendar yet" in digest
    status = run(cfg, "status").output
    assert "note       keepwarm has no mail or calendar yet" in status
    assert "account    none: import files" in status


def test_old_mail_is_said_with_the_command_and_the_as_of_to_use(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    add_mail(tmp_path, 400)
    old = (NOW - timedelta(days=400)).date().isoformat()
    people = run(cfg, "people").output
    assert f"the newest mail or meeting keepwarm has is from {old}" in people
    assert "keepwarm sync" in people and f"--as-of {old}" in people
    assert "ACTION NEEDED" in run(cfg, "digest").output
    data = json.loads(run(cfg, "status", "--json").output)
    assert data["newest"].startswith(old) and "400 days before today" in data["data_problem"]
    # as of that time, nothing is old
    assert "note:" not in run(cfg, "people", "--as-of", old).output
    add_mail(tmp_path, 1)
    assert "note:" not in run(cfg, "people").output
    assert json.loads(run(cfg, "status", "--json").output)["data_problem"] is None


def test_status_lists_imported_accounts_and_up_to_date_means_recent(tmp_path: Path) -> None:
    md = tmp_path / "Mail"
    (md / "cur").mkdir(parents=True)
    cfg = write_config(
        tmp_path, f'[[accounts]]\nname = "archive"\nkind = "maildir"\npath = "{md}"\n'
    )
    add_mail(tmp_path, 1)  # an import, not in the config
    store = Store.open(tmp_path / "kw.db")
    store.set_account_state(
        "archive", "maildir", "ok", ok=True, now=(NOW - timedelta(days=2)).timestamp()
    )
    store.close()
    data = json.loads(run(cfg, "status", "--json").output)
    accounts = {a["name"]: a for a in data["accounts"]}
    assert accounts["archive"]["health"] == "out of date" and not accounts["archive"]["up_to_date"]
    assert accounts["archive"]["fix"].startswith("keepwarm sync archive")
    assert accounts["imported-one"]["configured"] is False
    assert accounts["imported-one"]["health"] == "imported"
    text = run(cfg, "status").output
    assert "account    imported-one (maildir, imported): imported" in text
    assert "account    archive (maildir): out of date" in text
    digest = run(cfg, "digest").output
    assert "archive (maildir) out of date: run keepwarm sync archive" in digest
    run(cfg, "sync")
    assert json.loads(run(cfg, "status", "--json").output)["accounts"][0]["health"] == "up to date"


def test_next_digest_is_tomorrows_once_todays_went_out(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[digest]\ntime = "23:59"\n')
    add_mail(tmp_path, 1)
    today = NOW.date()
    before = json.loads(run(cfg, "status", "--json").output)["next_digest"]
    run(cfg, "digest", "--send", "--as-of", today.isoformat())
    after = json.loads(run(cfg, "status", "--json").output)["next_digest"]
    assert after.startswith((today + timedelta(days=1)).isoformat())
    assert before != after or (NOW.hour == 23 and NOW.minute == 59)
    checks = {c["name"]: c for c in json.loads(run(cfg, "doctor", "--json").output)["checks"]}
    assert (
        f"next digest {(today + timedelta(days=1)).isoformat()} 23:59"
        in checks["schedule"]["detail"]
    )


def test_forget_removes_an_account_and_its_history(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    add_mail(tmp_path, 1, account="wrong-folder", n=3)
    add_mail(tmp_path, 2, account="right-folder", n=2)
    res = run(cfg, "forget", "wrong-folder", code=2)
    assert "needs --yes" in res.output
    out = run(cfg, "forget", "wrong-folder", "--yes").output
    assert "forgot wrong-folder (3 messages and 0 events" in out
    data = json.loads(run(cfg, "status", "--json").output)
    assert [a["name"] for a in data["accounts"]] == ["right-folder"] and data["messages"] == 2
    assert 'no account named "nope"' in run(cfg, "forget", "nope", "--yes", code=2).output


def test_sync_and_import_speak_json(tmp_path: Path) -> None:
    from localmail import make_message, write_maildir_message

    md = tmp_path / "Mail"
    write_maildir_message(md, "1", make_message(1, to="me@example.com").as_bytes())
    cfg = write_config(
        tmp_path, f'[[accounts]]\nname = "archive"\nkind = "maildir"\npath = "{md}"\n'
    )
    [synced] = json.loads(run(cfg, "sync", "--json").output)
    assert synced["account"] == "archive" and synced["state"] == "ok" and synced["added"] == 1
    imported = json.loads(run(cfg, "import", "maildir", str(md), "--json").output)
    assert imported["kind"] == "maildir" and imported["merged"] == 1 and imported["state"] == "ok"


def test_doctor_accepts_a_folder_of_message_files(tmp_path: Path) -> None:
    """The Enron layout (user/folder/N.) is what sync reads: doctor says so instead of failing."""
    from localmail import make_message

    root = tmp_path / "allen-p" / "sent_items"
    root.mkdir(parents=True)
    (root / "1.").write_bytes(make_message(1).as_bytes())
    cfg = write_config(
        tmp_path,
        f'[[accounts]]\nname = "enron"\nkind = "maildir"\npath = "{tmp_path / "allen-p"}"\n',
    )
    checks = {c["name"]: c for c in json.loads(run(cfg, "doctor", "--json").output)["checks"]}
    assert (
        checks["source of enron"]["ok"]
        and "a folder of message files" in checks["source of enron"]["detail"]
    )
    (root / "1.").unlink()
    res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(res.output)["checks"]}
    assert (
        not checks["source of enron"]["ok"]
        and "holds no message files" in checks["source of enron"]["detail"]
    )


@pytest.mark.corpus
def test_doctor_accepts_the_enron_archive(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "enron-maildir-sample" / "allen-p"
    cfg = write_config(
        tmp_path, f'[[accounts]]\nname = "enron"\nkind = "maildir"\npath = "{path}"\n'
    )
    checks = {c["name"]: c for c in json.loads(run(cfg, "doctor", "--json").output)["checks"]}
    assert checks["source of enron"]["ok"], checks["source of enron"]


def test_doctor_logs_in_to_imap(server: Any, tmp_path: Path) -> None:  # noqa: F811
    box = Mailbox(server, tmp_path)
    try:
        cfg = tmp_path / "config.toml"
        cfg.write_text(box.config_text() + f'\n[store]\npath = "{tmp_path / "kw.db"}"\n')
        res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor", "--json"])
        checks = {c["name"]: c for c in json.loads(res.output)["checks"]}
        login = checks["login to mail"]
        assert login["ok"] and login["detail"].startswith("login accepted"), login
        box.write_password("wrong")
        res = CliRunner().invoke(cli, ["--config", str(cfg), "doctor", "--json"])
        checks = {c["name"]: c for c in json.loads(res.output)["checks"]}
        login = checks["login to mail"]
        assert res.exit_code == 1 and not login["ok"]
        assert "rejected the login" in login["detail"] and str(box.password_file) in login["fix"]
    finally:
        box.close()


def test_the_default_outbox_follows_the_store(tmp_path: Path) -> None:
    from keepwarm.daemon.config import loads

    def outbox(store: str) -> Path:
        text = '[me]\nname = "J"\naddresses = ["j@x.org"]\ntimezone = "UTC"\n'
        return loads(text + f'[store]\npath = "{store}"\n').outbox

    assert outbox(f"{tmp_path}/keepwarm.db") == tmp_path / "outbox"
    assert outbox(f"{tmp_path}/work.db") == tmp_path / "work-outbox"
    assert outbox(f"{tmp_path}/home.db") == tmp_path / "home-outbox"
    # two configs side by side each deliver into their own outbox
    for name in ("work", "home"):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            '[me]\nname = "J"\naddresses = ["j@x.org"]\ntimezone = "UTC"\n'
            f'[store]\npath = "{tmp_path / name}.db"\n'
        )
        run(cfg, "digest", "--send", "--as-of", "2026-11-24")
    assert (tmp_path / "work-outbox" / "2026-11-24.eml").exists()
    assert (tmp_path / "home-outbox" / "2026-11-24.eml").exists()
