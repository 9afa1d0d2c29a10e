# Roles and what they may do with user/ scopes.
#
# A user/ scope grants an interaction only when one of the caller's roles (the token's roles
# claim) permits the action on the type here. Writes a role permits still pass the approval
# queue before anything reaches the EHR. Replace this file (policy.files) to fit a hospital.
#
#   clinician       every action on every type; may look up patients; may break glass
#   nurse           reads and searches everything; records Observation, Task, Communication;
#                   may look up patients; may break glass
#   pharmacist      reads and searches the medication record and the context it needs;
#                   records dispenses and administrations
#   researcher      reads and searches; population-level with PolicySettings.population_roles
#   agent-readonly  an autonomous agent that may only read and search
#   system          backend services; the role system/ scopes require

role_permits("clinician", _action, _type);

role_permits("nurse", action, _type) if action in ["read", "search"];
role_permits("nurse", action, resource_type) if
    action in ["create", "update"] and
    resource_type in ["Observation", "Task", "Communication"];

role_permits("pharmacist", action, resource_type) if
    action in ["read", "search"] and
    resource_type in [
        "Patient", "Practitioner", "PractitionerRole", "Organization", "Location",
        "Encounter", "Condition", "AllergyIntolerance", "Observation", "DiagnosticReport",
        "Medication", "MedicationRequest", "MedicationDispense",
        "MedicationAdministration", "MedicationStatement", "Task"
    ];
role_permits("pharmacist", action, resource_type) if
    action in ["create", "update"] and
    resource_type in ["MedicationDispense", "MedicationAdministration", "Task"];

role_permits("researcher", action, _type) if action in ["read", "search"];

role_permits("agent-readonly", action, _type) if action in ["read", "search"];

# Roles that may search Patient without naming one (lookup by identifier or name).
patient_lookup_role("clinician");
patient_lookup_role("nurse");

# Roles that may override care-team and consent checks in an emergency, with a reason.
break_glass_role("clinician");
break_glass_role("nurse");
