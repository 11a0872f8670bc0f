"""carepath: a FHIR R4 care-pathway microservice."""

__version__ = "0.1.0"
FHIR_VERSION = "4.0.1"
