"""Openness and documentation audit of a model release (OSI OSAID 1.0, MOF, licences, cards).

>>> from modelseal.audit import audit_release
>>> report = audit_release("path/to/model")             # doctest: +SKIP
>>> report.osaid.verdict, report.mof.label              # doctest: +SKIP
('open-weights', 'Unclassified')

Every verdict names the rule it applied and cites its source; see :mod:`modelseal.audit.model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["audit_release"]

if TYPE_CHECKING:
    from modelseal.audit.api import audit_release


def __getattr__(name: str) -> Any:
    if name == "audit_release":
        from modelseal.audit.api import audit_release

        return audit_release
    raise AttributeError(f"module 'modelseal.audit' has no attribute {name!r}")
