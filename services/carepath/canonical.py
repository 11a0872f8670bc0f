"""carepath's own canonical base: every CodeSystem, extension, SearchParameter and pathway we define lives here."""

BASE = "https://fhir.carepath.dev"
CODESYSTEM_LOCAL = f"{BASE}/CodeSystem/cfp-local"


def extension_url(name: str) -> str:
    return f"{BASE}/StructureDefinition/{name}"
