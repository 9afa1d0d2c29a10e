# Risk tiers of proposed writes, and who may decide them. Replace this file with
# approvals.policy_files to fit a hospital; the engine (approval_service.ApprovalPolicy) asks:
#
#   risk(interaction, resource_type, resource, tier, reason)
#       interaction: "create" | "update" | "delete"; resource: the proposed resource (the
#       current one for a delete) as a ResourceFacts with value(path) and has_code(path, code).
#       Every rule that matches proposes a tier ("low", "medium", "high"); the highest wins,
#       so content rules can only raise a tier. A write no rule matches is "high".
#   approvals_required(tier, count)
#       distinct approvers a tier needs; the engine never lets the highest tier need fewer
#       than two.
#   allow(reviewer, action, request)
#       reviewer: {roles: [...]}; action: "view" | "approve" | "reject" | "extend" |
#       "escalate"; request: {tier, resource_type}. Who may do what at which tier.
#
# Nobody may decide a request they proposed or that was proposed on their behalf; the engine
# enforces that whatever this file says.

# -- tiers -----------------------------------------------------------------------------------

risk("create", "MedicationRequest", _r, "high", "a new medication order");
risk("update", "MedicationRequest", _r, "high", "a changed medication order");

risk("create", "ServiceRequest", _r, "medium", "a new service order");
risk("update", "ServiceRequest", _r, "medium", "a changed service order");
risk(_i, "ServiceRequest", r, "high", "an urgent (stat or asap) order") if
    r.value("priority") in ["stat", "asap"];

risk("create", "Observation", _r, "medium", "a new observation in the record");
risk("update", "Observation", _r, "medium", "a corrected observation");
risk(_i, "Observation", r, "high", "a critical observation (interpretation critical)") if
    r.has_code("interpretation", "HH") or r.has_code("interpretation", "LL") or
    r.has_code("interpretation", "AA");

risk("create", "Condition", _r, "medium", "a new problem-list entry");
risk("update", "Condition", _r, "medium", "a changed problem-list entry");

risk("create", "AllergyIntolerance", _r, "medium", "a new allergy");
risk("update", "AllergyIntolerance", _r, "medium", "a changed allergy");
risk(_i, "AllergyIntolerance", r, "high", "a high-criticality allergy") if
    r.value("criticality") = "high";

risk(interaction, resource_type, _r, "low", "a workflow record") if
    interaction in ["create", "update"] and
    resource_type in ["Task", "Communication", "Flag"];

risk("delete", _type, _r, "high", "deleting from the record");
risk(_i, "Patient", _r, "high", "patient demographics");

# -- approvers -------------------------------------------------------------------------------

approvals_required("low", 1);
approvals_required("medium", 1);
approvals_required("high", 2);

# Clinicians decide everything.
may("clinician", _action, _tier, _type);

# Pharmacists decide medication writes at any tier, and anything low-risk.
may("pharmacist", _action, _tier, resource_type) if
    resource_type in [
        "MedicationRequest", "MedicationDispense", "MedicationAdministration",
        "MedicationStatement"
    ];
may("pharmacist", _action, "low", _type);

# Nurses decide low-risk writes and medium-risk nursing records.
may("nurse", _action, "low", _type);
may("nurse", _action, "medium", resource_type) if
    resource_type in ["Observation", "Task", "Communication"];

# Compliance staff see every request and may reject, extend or escalate; never approve.
may("compliance", action, _tier, _type) if action in ["view", "reject", "extend", "escalate"];

# Everyone who may decide something at a tier may see the queue at that tier.
may(role, "view", tier, resource_type) if
    may(role, "approve", tier, resource_type);

allow(reviewer, action, request) if
    role in reviewer.roles and
    may(role, action, request.tier, request.resource_type);

# Roles that make someone a reviewer at all (for listing the queue).
reviewer_role("clinician");
reviewer_role("pharmacist");
reviewer_role("nurse");
reviewer_role("compliance");
