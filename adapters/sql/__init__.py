"""SQL adapter: a legacy EHR database served as FHIR R4 resources through a YAML mapping.

``SqlAdapter`` implements :class:`his_sdk.adapter.Adapter` and
:class:`his_sdk.adapter.PatientFactsProvider`. ``seed_synthea`` fills the OpenEMR-like demo
schema from Synthea bundles. The mapping format is described in ``MAPPING.md`` beside this file.
"""

from ._adapter import SqlAdapter
from ._config import MappingError
from ._seed import SeedReport, create_schema, drop_schema, seed_synthea

__all__ = [
    "MappingError",
    "SeedReport",
    "SqlAdapter",
    "create_schema",
    "drop_schema",
    "seed_synthea",
]
