"""The care coordinator's worklist: server-rendered pages under `/app` on the same services as the FHIR API.

`views/` builds what a page shows from FHIR JSON and is pure (no I/O, time is an input); `data.py` gathers the
resources through the service layer; `routes.py` is the thin HTTP transport; `session.py` the signed cookie.
"""
