"""The one base of every error a user can meet: a sentence, what to do about it, an exit code.

Each package keeps its errors in one module (``connectors/base.py``, ``daemon/errors.py``,
``digests/deliver.py``), all derived from :class:`KeepwarmError`. Commands do not translate them:
the CLI's group turns any of them into one line with its fix (``daemon/cli.py``), and the daemon
records an account's error with its fix for ``status``, ``doctor`` and the digest.
"""

from __future__ import annotations

EXIT_FAIL = 1  # something failed: the network, a source, the disk
EXIT_USER = 2  # the user's input or config is wrong


class KeepwarmError(Exception):
    """``str()`` is a sentence a user can act on; ``fix`` says what to do when the sentence alone
    does not (a command to run, a key to change); ``exit_code`` is the command's exit status."""

    exit_code = EXIT_FAIL

    def __init__(self, message: str = "", fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix
