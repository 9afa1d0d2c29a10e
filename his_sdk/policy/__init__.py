"""Authorization: an Oso (Polar) policy decides each request once per patient compartment.

The shipped policy (``policies/*.polar``) combines SMART scopes, roles, the patient launch
context, care-team membership, consent and break-glass; ``PolicySettings.files`` replaces it.
"""

from ._engine import REASON_CODES, PolicyEngine, shipped_policy_files
from ._model import AccessRequest, Decision

__all__ = [
    "REASON_CODES",
    "AccessRequest",
    "Decision",
    "PolicyEngine",
    "shipped_policy_files",
]
