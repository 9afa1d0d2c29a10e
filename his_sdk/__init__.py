"""AI-native HIS middleware SDK: FHIR-shaped gRPC gateway and client over legacy EHRs."""
