"""Use cases shared by every transport: FHIR interactions, Bundles, search, operations, capability statement."""
