"""Resolve a password from where the config says it lives: a file, an environment variable or a
command. Passwords never go in the TOML file.

Every failure raises :class:`SecretError` (an :class:`AuthRequired`, so a sync parks the account
with the fix) whose message says what is wrong and what to do. A password file readable by other
users is refused, as ssh refuses a private key that others can read.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from keepwarm.daemon.config import Secret
from keepwarm.daemon.errors import SecretError as SecretError

COMMAND_TIMEOUT = 30.0


def resolve_secret(secret: Secret, what: str) -> str:
    """The password ``secret`` points to. ``what`` names its use in messages ("account "x"")."""
    if secret.file is not None:
        return _from_file(Path(secret.file).expanduser(), what)
    if secret.env:
        return _from_env(secret.env, what)
    if secret.command:
        return _from_command(secret.command, what)
    raise SecretError(
        f"{what}: no password source configured",
        fix="set password_file, password_env or password_command in the config",
    )


def _from_file(path: Path, what: str) -> str:
    fix = f"write the password on one line to {path}, then run: chmod 600 {path}"
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretError(f"{what}: the password file {path} does not exist", fix=fix) from None
    except PermissionError:
        raise SecretError(
            f"{what}: the password file {path} cannot be read (permission denied)",
            fix=f"make {path} readable by the user keepwarm runs as",
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"{what}: the password file {path} is not a regular file", fix=fix)
    if st.st_mode & 0o077:
        raise SecretError(
            f"{what}: the password file {path} is readable by other users "
            f"(permissions {stat.S_IMODE(st.st_mode):04o}); refusing to use it",
            fix=f"chmod 600 {path}",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{what}: cannot read the password file {path}: {exc}", fix=fix) from None
    password = _first_line(text)
    if not password:
        raise SecretError(f"{what}: the password file {path} is empty", fix=fix)
    return password


def _from_env(name: str, what: str) -> str:
    value = os.environ.get(name)
    fix = f"export {name}=... in the environment keepwarm runs in (or use password_file)"
    if value is None:
        raise SecretError(f"{what}: the environment variable {name} is not set", fix=fix)
    password = _first_line(value)
    if not password:
        raise SecretError(f"{what}: the environment variable {name} is empty", fix=fix)
    return password


def _from_command(command: str, what: str) -> str:
    fix = f"run the password_command yourself to check it prints the password: {command}"
    try:
        proc = subprocess.run(
            command,
            shell=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SecretError(
            f"{what}: the password_command did not finish within {COMMAND_TIMEOUT:.0f} seconds",
            fix=fix,
        ) from None
    except OSError as exc:
        raise SecretError(f"{what}: the password_command could not run: {exc}", fix=fix) from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {err[-1][:200]}" if err else ""
        raise SecretError(
            f"{what}: the password_command failed with exit status {proc.returncode}{detail}",
            fix=fix,
        )
    password = _first_line(proc.stdout.decode("utf-8", "replace"))
    if not password:
        raise SecretError(f"{what}: the password_command printed nothing", fix=fix)
    return password


def _first_line(text: str) -> str:
    """The first line without its line ending (``pass`` and friends print extra lines)."""
    lines = text.splitlines()
    return lines[0] if lines else ""
