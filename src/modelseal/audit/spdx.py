"""The SPDX licence list with OSI-approved and FSF-libre flags (offline, package data).

The table is the one the Model Openness Tool judges openness with (``data/spdx-licences.json``,
derived from lfai/model_openness_tool's ``licenses.json``, MIT; see ``data/LICENSE-MOT``), so our
MOF scores match the reference tool's, and it doubles as the offline answer to "is this SPDX id
OSI-approved?" for the OSAID verdict.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class SpdxLicence:
    id: str
    name: str
    osi_approved: bool
    fsf_libre: bool
    deprecated: bool


@dataclass(frozen=True)
class SpdxTable:
    version: str
    licences: dict[str, SpdxLicence]  # exact SPDX id -> entry
    _folded: dict[str, str]  # casefolded id -> exact id

    def get(self, licence_id: str | None) -> SpdxLicence | None:
        """The entry for ``licence_id``: exact match first, then case-insensitive."""
        if not licence_id:
            return None
        found = self.licences.get(licence_id)
        if found is None:
            exact = self._folded.get(licence_id.strip().casefold())
            found = self.licences.get(exact) if exact else None
        return found

    def canonical(self, licence_id: str | None) -> str | None:
        """The SPDX spelling of ``licence_id`` (``apache-2.0`` -> ``Apache-2.0``), or None."""
        entry = self.get(licence_id)
        return entry.id if entry else None

    def is_osi_approved(self, licence_id: str | None) -> bool:
        entry = self.get(licence_id)
        return bool(entry and entry.osi_approved)

    def is_fsf_libre(self, licence_id: str | None) -> bool:
        entry = self.get(licence_id)
        return bool(entry and entry.fsf_libre)


@functools.cache
def spdx_table() -> SpdxTable:
    """The shipped table (loaded once)."""
    raw = json.loads(
        resources.files("modelseal.audit").joinpath("data/spdx-licences.json").read_text("utf-8")
    )
    licences = {
        row[0]: SpdxLicence(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]))
        for row in raw["licences"]
    }
    folded = {k.casefold(): k for k in licences}
    return SpdxTable(str(raw["licenseListVersion"]), licences, folded)
