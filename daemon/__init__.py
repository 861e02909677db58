"""keepwarm.daemon."""

from __future__ import annotations

from keepwarm.core import check_package_name

check_package_name(__name__, "keepwarm.daemon", __file__)
