"""What every keepwarm package may import (``connectors``, ``daemon`` and ``digests`` alike): the
base error and the shared vocabulary. Imports nothing of keepwarm itself."""

from __future__ import annotations
