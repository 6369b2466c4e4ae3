"""Source-system adapters: each system's own dialect mapped to canonical events.

Pure functions, like the rest of ``transforms``: raw bytes in, canonical event dicts,
dead-letter reasons or an ignore reason out; no I/O and no clock. The mapping tables
are in docs/adapters.md and, as data, in each module.
"""

from __future__ import annotations

from typing import Final

from transforms.adapters import ecom, edi856, erp, oms, tms, wms
from transforms.adapters.common import Adapter, Options, Result

ADAPTERS: Final[dict[str, Adapter]] = {
    module.ADAPTER.system: module.ADAPTER for module in (erp, wms, oms, ecom, tms, edi856)
}
"""Adapters by ``--system`` name."""

__all__ = ["ADAPTERS", "Adapter", "Options", "Result"]
