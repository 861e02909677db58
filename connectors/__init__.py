"""keepwarm.connectors."""

from __future__ import annotations

from keepwarm.core import check_package_name

check_package_name(__name__, "keepwarm.connectors", __file__)
