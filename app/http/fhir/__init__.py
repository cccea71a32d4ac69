"""The read-only FHIR R4 view of patients and appointments: mapping, search parameters, Bundles, OperationOutcomes."""
