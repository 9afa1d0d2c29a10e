"""EHR adapters: one subpackage per kind of legacy system (sql, hl7v2, fhir)."""
