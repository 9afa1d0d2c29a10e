"""Authorization: an Oso (Polar) policy decides each request once per patient compartment.

The shipped policy (``policies/access.polar`` and ``policies/roles.polar``) combines:

* the SMART scope, which must grant the interaction on the type (``read`` needs ``r``,
  ``search`` ``s``, ``create`` ``c`` ...);
* the scope context: ``patient/`` scopes stay in the launch patient's compartment (a search
  without one is narrowed to it), ``user/`` scopes need a role that permits the action,
  ``system/`` scopes need the ``system`` role;
* population-level requests on clinical types, allowed only to
  ``PolicySettings.population_roles``; patient lookup is open to clinicians, nurses and
  ``system/`` clients, and reference data (Practitioner, Medication ...) to every role;
* for a named patient with ``user/`` scopes, the acting user on the patient's care team;
* the patient's consent opt-out, which denies every context;
* break-glass with a non-blank reason, by a clinician or nurse, which overrides care team and
  consent, never scopes, roles or launch context, and is flagged for the record.

Shipped roles: ``clinician`` (everything), ``nurse`` (reads and searches; records
Observation, Task, Communication), ``pharmacist`` (the medication record and its context),
``researcher`` (reads and searches), ``agent-readonly`` (reads and searches) and ``system``
(backend services). ``PolicySettings.files`` replaces the shipped files.
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
