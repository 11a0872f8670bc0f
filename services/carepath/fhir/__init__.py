"""FHIR R4 plumbing: models, validation, OperationOutcome, Bundles, search parameters."""
