"""``python -m keepwarm.daemon``: the keepwarm command, for installs without the script on PATH."""

from __future__ import annotations

from keepwarm.daemon.cli import main

if __name__ == "__main__":
    main()
