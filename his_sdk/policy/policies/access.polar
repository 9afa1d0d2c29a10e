# Access to FHIR data: SMART scope, scope context, population searches, care team, consent
# and break-glass. One decision per request and patient compartment.
#
# The engine (his_sdk.policy.PolicyEngine) asks
#     decision(who, req, result)
# once and takes every result: one per scope context that grants the interaction, either
#     ["allow", context, via, required_patient]
# with the granting context ("patient", "user", "system"), via "policy" or "break_glass"
# and the patient a search must be narrowed to ("" for none), or
#     ["deny", context, code]
# with the first facet that failed for that context ("" context when no scope grants the
# interaction at all). allow(who, req, grant) and deny_reason(who, req, denial) below are
# the same answer split in two, for tools and the Polar REPL.
#
# who    the caller, a dictionary:
#          principal    his_sdk.auth.Principal (registered class); its method
#                       scope_contexts_for(type, letter) lists the contexts of the SMART
#                       scopes granting an interaction, broadest first
#          roles        list of roles
#          patient      SMART launch context patient id, "" when none
#          acting_user  practitioner to check the care team against, "" when none
# req    the request, a dictionary:
#          action, resource_type
#          patient_id   the patient compartment, "" for none (population-level or data
#                       outside every patient compartment)
#          break_glass  "" when not requested, "empty" without a reason, "justified"
#          facts        {known, care_team, consent_opt_out}; known is false when the
#                       gateway has no facts for the patient
#
# POPULATION_ROLES is PolicySettings.population_roles; roles are defined in roles.polar.
#
# Polar spends microseconds on every rule call, argument, dictionary lookup and negation
# (which copies the query state), and a decision has to stay well under a millisecond. So
# the inputs are taken apart once, facets answer true or false instead of being negated,
# and each context walks its facets once, in order.

decision(who, req, result) if
    req = {
        action: action, resource_type: resource_type, patient_id: patient_id,
        break_glass: break_glass, facts: facts
    } and
    interaction(action, letter) and
    cut and
    who = {principal: principal, roles: roles, patient: launch_patient, acting_user: user} and
    contexts = principal.scope_contexts_for(resource_type, letter) and
    (
        (contexts = [] and result = ["deny", "", "insufficient_scope"]) or
        (context in contexts and
         holds_context(
             context, roles, launch_patient, action, resource_type, patient_id,
             required_patient, context_ok
         ) and
         (
             (context_ok = false and
              context_denial(context, launch_patient, code) and
              result = ["deny", context, code]) or
             (context_ok = true and
              holds_population(context, roles, resource_type, patient_id, population_ok) and
              (
                  (population_ok = false and
                   result = ["deny", context, "population_search_not_permitted"]) or
                  (population_ok = true and patient_id = "" and
                   result = ["allow", context, "policy", required_patient]) or
                  (population_ok = true and patient_id != "" and
                   patient_access(context, roles, user, break_glass, facts, result))
              ))
         ))
    );
decision(_who, _req, ["deny", "", "unsupported_action"]);

allow(who, req, [context, via, required_patient]) if
    decision(who, req, result) and
    result = ["allow", context, via, required_patient];

deny_reason(who, req, [context, code]) if
    decision(who, req, result) and
    result = ["deny", context, code];

interaction("read", "r");
interaction("search", "s");
interaction("create", "c");
interaction("update", "u");
interaction("delete", "d");

# Facet 1: a SMART scope of the context grants the interaction on the type
# (Principal.scope_contexts_for, above).

# Facet 2: the scope context's own condition.
holds_context(
    context, roles, launch_patient, action, resource_type, patient_id, required_patient, holds
) if
    (context_permits(
         context, roles, launch_patient, action, resource_type, patient_id, required_patient
     ) and
     cut and
     holds = true) or
    holds = false;

# patient/ scopes reach only the launch patient's compartment ...
context_permits("patient", _roles, launch_patient, _action, _type, patient_id, "") if
    launch_patient != "" and
    patient_id = launch_patient;
# ... a search without a compartment is narrowed to the launch patient ...
context_permits("patient", _roles, launch_patient, "search", resource_type, "", launch_patient) if
    launch_patient != "" and
    in_patient_compartment(resource_type);
# ... and data outside every patient compartment (Practitioner, Medication) is shared.
context_permits("patient", _roles, launch_patient, _action, resource_type, "", "") if
    launch_patient != "" and
    holds_patient_compartment(resource_type, false);
# user/ scopes need a role that permits the action on the type.
context_permits("user", roles, _launch_patient, action, resource_type, _patient_id, "") if
    role in roles and
    role_permits(role, action, resource_type);
# system/ scopes are for backend services.
context_permits("system", roles, _launch_patient, _action, _type, _patient_id, "") if
    "system" in roles;

context_denial("patient", "", "patient_context_missing");
context_denial("patient", launch_patient, "patient_context_mismatch") if launch_patient != "";
context_denial("user", _launch_patient, "role_not_permitted");
context_denial("system", _launch_patient, "system_role_required");

# Facet 3: requests without a patient compartment.
holds_population(context, roles, resource_type, patient_id, holds) if
    (
        (patient_id != "" or population_permits(context, roles, resource_type)) and
        cut and
        holds = true
    ) or
    holds = false;

# Narrowed to the launch patient by facet 2.
population_permits("patient", _roles, _type);
# Reference data outside every patient compartment.
population_permits(_context, _roles, resource_type) if
    holds_patient_compartment(resource_type, false);
# Finding a patient by identifier or name.
population_permits("user", roles, "Patient") if
    role in roles and
    patient_lookup_role(role);
population_permits("system", _roles, "Patient");
# Clinical data across patients.
population_permits(_context, roles, _type) if
    population_role(roles);

# Facet 4: a named patient compartment. In order: the facts must be known; the relationship
# to the patient and the patient's consent allow; else break-glass with a reason, by a role
# that may break glass, overrides both (never scopes, roles or context); else the first
# failure is the reason.
patient_access(context, roles, user, break_glass, facts, result) if
    facts = {known: known, care_team: care_team, consent_opt_out: opted_out} and
    (
        (known = false and
         cut and
         result = ["deny", context, "patient_facts_unavailable"]) or
        (opted_out = false and
         relationship(context, roles, user, care_team) and
         cut and
         result = ["allow", context, "policy", ""]) or
        (break_glass = "justified" and
         role in roles and
         break_glass_role(role) and
         cut and
         result = ["allow", context, "break_glass", ""]) or
        (break_glass = "empty" and
         cut and
         result = ["deny", context, "break_glass_reason_required"]) or
        (break_glass = "justified" and
         cut and
         result = ["deny", context, "break_glass_role_not_permitted"]) or
        (relationship(context, roles, user, care_team) and
         cut and
         result = ["deny", context, "consent_opt_out"]) or
        (user = "" and
         cut and
         result = ["deny", context, "no_acting_user"]) or
        result = ["deny", context, "not_on_care_team"]
    );

# The authorization server already tied a patient/ token to its launch patient, and system/
# clients serve whole populations.
relationship("patient", _roles, _user, _care_team);
relationship("system", _roles, _user, _care_team);
# The user the agent acts for treats the patient ...
relationship("user", _roles, user, care_team) if
    user != "" and
    user in care_team;
# ... or holds a role that may see every patient's data anyway.
relationship("user", roles, _user, _care_team) if
    population_role(roles);

population_role(roles) if
    role in roles and
    role in POPULATION_ROLES;

holds_patient_compartment(resource_type, holds) if
    (in_patient_compartment(resource_type) and cut and holds = true) or
    holds = false;

# The FHIR R4 Patient compartment, plus Task: the types that hold one patient's data.
in_patient_compartment("Account");
in_patient_compartment("AdverseEvent");
in_patient_compartment("AllergyIntolerance");
in_patient_compartment("Appointment");
in_patient_compartment("AppointmentResponse");
in_patient_compartment("AuditEvent");
in_patient_compartment("Basic");
in_patient_compartment("BodyStructure");
in_patient_compartment("CarePlan");
in_patient_compartment("CareTeam");
in_patient_compartment("ChargeItem");
in_patient_compartment("Claim");
in_patient_compartment("ClaimResponse");
in_patient_compartment("ClinicalImpression");
in_patient_compartment("Communication");
in_patient_compartment("CommunicationRequest");
in_patient_compartment("Composition");
in_patient_compartment("Condition");
in_patient_compartment("Consent");
in_patient_compartment("Coverage");
in_patient_compartment("CoverageEligibilityRequest");
in_patient_compartment("CoverageEligibilityResponse");
in_patient_compartment("DetectedIssue");
in_patient_compartment("DeviceRequest");
in_patient_compartment("DeviceUseStatement");
in_patient_compartment("DiagnosticReport");
in_patient_compartment("DocumentManifest");
in_patient_compartment("DocumentReference");
in_patient_compartment("Encounter");
in_patient_compartment("EnrollmentRequest");
in_patient_compartment("EpisodeOfCare");
in_patient_compartment("ExplanationOfBenefit");
in_patient_compartment("FamilyMemberHistory");
in_patient_compartment("Flag");
in_patient_compartment("Goal");
in_patient_compartment("Group");
in_patient_compartment("ImagingStudy");
in_patient_compartment("Immunization");
in_patient_compartment("ImmunizationEvaluation");
in_patient_compartment("ImmunizationRecommendation");
in_patient_compartment("Invoice");
in_patient_compartment("List");
in_patient_compartment("MeasureReport");
in_patient_compartment("Media");
in_patient_compartment("MedicationAdministration");
in_patient_compartment("MedicationDispense");
in_patient_compartment("MedicationRequest");
in_patient_compartment("MedicationStatement");
in_patient_compartment("MolecularSequence");
in_patient_compartment("NutritionOrder");
in_patient_compartment("Observation");
in_patient_compartment("Patient");
in_patient_compartment("Person");
in_patient_compartment("Procedure");
in_patient_compartment("Provenance");
in_patient_compartment("QuestionnaireResponse");
in_patient_compartment("RelatedPerson");
in_patient_compartment("RequestGroup");
in_patient_compartment("ResearchSubject");
in_patient_compartment("RiskAssessment");
in_patient_compartment("Schedule");
in_patient_compartment("ServiceRequest");
in_patient_compartment("Specimen");
in_patient_compartment("SupplyDelivery");
in_patient_compartment("SupplyRequest");
in_patient_compartment("Task");
in_patient_compartment("VisionPrescription");
