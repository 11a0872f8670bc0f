"""Authentication, authorisation and audit: SMART on FHIR access tokens, scopes, the audit trail, abuse limits.

Transport-free: the api layer's middleware (`api/security.py`) turns HTTP into the values used here.
"""
