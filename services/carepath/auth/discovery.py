"""What carepath tells clients about its authorization: SMART's `.well-known/smart-configuration` and the
CapabilityStatement's `rest.security` (SMART App Launch 2.x, §Conformance)."""

from __future__ import annotations

from typing import Any

from carepath.auth.dev import DEV_ISSUER
from carepath.settings import Settings

_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SERVICE = {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR"}  # fmt: skip
SCOPES_SUPPORTED = ("system/*.cruds", "system/*.rs", "user/*.cruds", "user/*.rs", "patient/*.cruds", "patient/*.rs",
                    "system/*.read", "system/*.write", "user/*.read", "patient/*.read", "fhirUser")  # fmt: skip


def smart_configuration(settings: Settings) -> dict[str, Any]:
    issuer = DEV_ISSUER if settings.auth == "dev" else settings.auth_issuer
    document: dict[str, Any] = {
        "issuer": issuer or None,
        "token_endpoint": settings.auth_token_url or None,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }
    if settings.auth_jwks_url:
        document["jwks_uri"] = settings.auth_jwks_url
    if settings.auth_introspection_url:
        document["introspection_endpoint"] = settings.auth_introspection_url
    return {k: v for k, v in document.items() if v is not None}


def rest_security(settings: Settings) -> dict[str, Any]:
    """CapabilityStatement.rest.security for the configured mode."""
    if settings.auth == "off":
        return {"cors": bool(settings.cors_origin_list),
                "description": "Authentication is off (CAREPATH_AUTH=off): local development only."}  # fmt: skip
    security: dict[str, Any] = {
        "cors": bool(settings.cors_origin_list),
        "service": [{"coding": [_SERVICE], "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"}],
        "description": "SMART Backend Services: send `Authorization: Bearer <access token>`; scopes v1 and v2, "
        "see .well-known/smart-configuration.",
    }  # fmt: skip
    if settings.auth_token_url:
        security["extension"] = [
            {"url": _OAUTH_URIS, "extension": [{"url": "token", "valueUri": settings.auth_token_url}]}
        ]
    return security
