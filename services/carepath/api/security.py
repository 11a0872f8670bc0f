"""The HTTP side of auth: bearer tokens in, 401/403/405/429 out, compartment checks, audit after the answer.

A pure ASGI middleware in front of every route. It classifies the request (`auth.access`), verifies the token,
checks the scopes before any work is done, narrows `patient/` searches to the compartment, checks bodies and
stored resources a `patient/` token would write or delete, and checks what a `patient/` read returns before it
leaves. Then it queues the AuditEvent. The routes themselves know nothing of tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carepath import jsonutil
from carepath.api.http import json_response
from carepath.auth import apply_access
from carepath.auth.access import Access, Decision, classify, classify_relative, decide
from carepath.auth.audit import AuditTrail, Request, access_event, failure_event
from carepath.auth.compartment import DEFINITION_TYPES, belongs_to, patients_of, restriction
from carepath.auth.config import build_verifier
from carepath.auth.limits import SlidingWindow
from carepath.auth.tokens import Principal
from carepath.errors import (
    CarepathError,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    TooManyRequests,
    Unauthorized,
    operation_outcome,
)
from carepath.service.parameters import OperationInput, from_parameters, from_query
from carepath.settings import Settings
from carepath.store.repository import Repository

log = logging.getLogger("carepath.auth")


_DENIED = "The access token does not grant this interaction"
_NOT_AUDITED = DEFINITION_TYPES | {"AuditEvent"}  # definitions are not patient data; AuditEvent reads not recursive
_DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})
_DOC_ASSETS = "/static-offline-docs/"  # Swagger UI's own files when served locally (fastapi-offline's default)


@dataclass
class _Call:
    """One request as the middleware sees it."""

    access: Access
    address: str
    principal: Principal | None = None
    decision: Decision | None = None
    body: bytes | None = None
    inputs: OperationInput | None = None  # $apply's
    touched: list[str] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)


class SecurityRuntime:
    """What the middleware keeps across requests; built with the app, closed by its lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(follow_redirects=False)
        self.verifier = build_verifier(settings, self.client)
        self.failures = SlidingWindow(settings.auth_failure_limit, 60.0)
        self.rate = SlidingWindow(settings.rate_limit_per_second, 1.0) if settings.rate_limit_per_second else None
        self.trail = AuditTrail()

    async def close(self) -> None:
        await self.trail.close()  # before the app disposes of the database engine
        await self.client.aclose()


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, runtime: SecurityRuntime) -> None:
        self.app = app
        self.settings = runtime.settings
        self.verifier = runtime.verifier
        self.failures = runtime.failures
        self.rate = runtime.rate
        self.trail = runtime.trail
        self.audit = runtime.settings.audit_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        conditional = "if-none-exist" in headers
        access = classify(scope["method"], scope["path"], scope["query_string"].decode("latin-1"), conditional)
        if self.settings.docs and (scope["path"] in _DOC_PATHS or scope["path"].startswith(_DOC_ASSETS)):
            access = Access("open")
        self._app_ref = scope.get("app")
        client = scope.get("client")
        call = _Call(access, client[0] if client else "unknown")
        try:
            if access.immutable_violation:
                raise MethodNotAllowed(f"{access.res_type} resources cannot be changed or deleted")
            # The worklist checks its own session cookie (and audits what its pages show); nothing else is open.
            if access.kind in ("open", "app") or (self.verifier is None and not self.audit):
                await self.app(scope, receive, send)  # nothing to check and nothing to record
                return
            if self.verifier is not None:
                await self._authenticate(call, headers)
            self._rate_limit(call)
            receive = await self._authorise(scope, receive, call)
        except CarepathError as exc:
            await _error(exc, send)
            if self.audit and exc.status != 401 and not isinstance(exc, TooManyRequests):
                self._record(scope, call, exc.status)
            return
        await self._forward(scope, receive, send, call)

    # -- authentication ----------------------------------------------------------------------------------------
    async def _authenticate(self, call: _Call, headers: dict[str, str]) -> None:
        assert self.verifier is not None
        if self.failures.exceeded(call.address):
            raise TooManyRequests("Too many failed authentications from this address; try again later")
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("An access token is required (Authorization: Bearer ...)", error=None)
        try:
            call.principal = await self.verifier.verify(token.strip())
        except Unauthorized:
            self.failures.record(call.address)
            if self.audit:
                self._queue(failure_event(call.address, 401, self._source()))
            raise

    def _rate_limit(self, call: _Call) -> None:
        key = call.principal.client_id if call.principal is not None else call.address
        if self.rate is not None and not self.rate.allow(key):
            raise TooManyRequests(f"More than {self.rate.limit} requests per second; slow down")

    # -- authorisation -------------------------------------------------------------------------------------------
    async def _authorise(self, scope: Scope, receive: Receive, call: _Call) -> Receive:
        access = call.access
        needs_body = access.kind in ("bundle", "apply") or (
            call.principal is not None and access.interaction in ("create", "update")
        )
        if needs_body and scope["method"] != "GET":
            call.body, receive = await _buffer_body(receive, self.settings.max_request_bytes)
        if access.kind == "apply":
            call.inputs = _apply_inputs(scope, call.body)
        if call.principal is None:  # auth off: nothing to check, only audit
            if access.kind == "bundle":
                self._bundle_audit_facts(call)
            return receive
        if access.kind == "unknown":
            raise Forbidden(_DENIED)
        if access.kind == "bundle":
            await self._authorise_bundle(call)
            return receive
        if access.kind == "apply":
            await self._authorise_apply(scope, call)
            return receive
        call.decision = decide(call.principal, access.needs)
        if call.decision is None:
            raise Forbidden(_DENIED)
        if call.decision == "patient":
            await self._patient_rest(scope, call)
        return receive

    async def _patient_rest(self, scope: Scope, call: _Call) -> None:
        """Before the work: writes and searches of a patient/ token stay inside its compartment."""
        access, principal = call.access, call.principal
        assert principal is not None and principal.patient is not None and access.res_type is not None
        patient = principal.patient
        if access.interaction == "search-type":
            # Narrow the search: the compartment criterion is ANDed with whatever the client asked.
            name, value = restriction(access.res_type, patient)
            query = scope["query_string"].decode("latin-1")
            scope["query_string"] = (query + ("&" if query else "") + urlencode({name: value})).encode("latin-1")
            return
        if access.interaction in ("create", "update"):
            body = _json(call.body)
            if body is None or not belongs_to(body, patient):
                raise Forbidden(_DENIED)
        if access.interaction in ("update", "delete") and access.res_id is not None:
            await self._stored_in_compartment(access.res_type, access.res_id, patient)
            return
        if access.interaction in ("patch", "history-type", "history-system") or (
            access.interaction in ("update", "delete") and access.res_id is None
        ):
            raise Forbidden(_DENIED)  # what they would touch cannot be checked before the work

    async def _stored_in_compartment(self, res_type: str, res_id: str, patient: str) -> None:
        try:
            async with self._repository().reader() as tx:
                stored = await tx.read(res_type, res_id)
        except CarepathError:
            return  # not there (or deleted): the interaction itself answers that
        if not belongs_to(stored.json(), patient):
            raise Forbidden(_DENIED)

    async def _authorise_bundle(self, call: _Call) -> None:
        assert call.principal is not None
        bundle = _json(call.body)
        entries = bundle.get("entry") if isinstance(bundle, dict) else None
        if not isinstance(entries, list):
            return  # not a batch/transaction: the service refuses it without touching data
        patient = call.principal.patient
        for entry in entries:
            request = entry.get("request") if isinstance(entry, dict) else None
            if not isinstance(request, dict) or not isinstance(request.get("url"), str):
                continue  # the service refuses a malformed entry before anything is written
            method = str(request.get("method", "GET")).upper()
            url = urlsplit(request["url"])
            access = classify_relative(
                method, url.path, tuple(parse_qsl(url.query, keep_blank_values=True)),
                conditional=bool(request.get("ifNoneExist")),
            )  # fmt: skip
            if access.immutable_violation:
                raise MethodNotAllowed(f"{access.res_type} resources cannot be changed or deleted")
            decision = decide(call.principal, access.needs) if access.kind == "rest" else None
            if decision is None:
                raise Forbidden(_DENIED)
            if decision == "patient":
                assert patient is not None and access.res_type is not None
                resource = entry.get("resource")
                if access.interaction not in ("create", "update", "delete"):
                    raise Forbidden(_DENIED)  # reads and searches inside a Bundle need system/ or user/ scopes
                if access.interaction != "delete" and not (
                    isinstance(resource, dict) and belongs_to(resource, patient)
                ):
                    raise Forbidden(_DENIED)
                if access.res_id is None and access.interaction != "create":
                    raise Forbidden(_DENIED)
                if access.res_id is not None:
                    await self._stored_in_compartment(access.res_type, access.res_id, patient)
        self._bundle_audit_facts(call)

    def _bundle_audit_facts(self, call: _Call) -> None:
        bundle = _json(call.body)
        if isinstance(bundle, dict):
            if bundle.get("type") == "transaction":
                call.access = replace(call.access, interaction="transaction")
            for entry in bundle.get("entry") or [] if isinstance(bundle.get("entry"), list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    call.patients |= patients_of(entry["resource"])

    async def _authorise_apply(self, scope: Scope, call: _Call) -> None:
        assert call.principal is not None
        inputs = call.inputs
        needs = await apply_access.apply_needs(self._repository(), call.access, inputs)
        call.decision = decide(call.principal, needs)
        if call.decision is None:
            raise Forbidden(_DENIED)
        subjects = apply_access.subjects(inputs)
        if call.decision == "patient" and (
            not subjects or any(s != f"Patient/{call.principal.patient}" for s in subjects)
        ):
            raise Forbidden(_DENIED)

    # -- the call and what it answered -------------------------------------------------------------------------
    async def _forward(self, scope: Scope, receive: Receive, send: Send, call: _Call) -> None:
        access = call.access
        audited = self.audit and _audited(access)
        inspect = call.decision == "patient" and access.interaction in (
            "read",
            "vread",
            "history-instance",
            "search-type",
        )
        if not (audited or inspect):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head and inspect:  # what a HEAD would return must be seen to be judged: run it as a GET, send no body
            scope = {**scope, "method": "GET"}
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        status = int(start.get("status", 500))
        answer = _json(body) if status < 300 else None
        if inspect and status < 300 and not self._inspection_passes(call, answer):
            await _error(Forbidden(_DENIED), send)
            status = 403
        else:
            await send(start)
            await send({"type": "http.response.body", "body": b"" if head else body})
        if audited:
            self._facts(
                call, answer, dict((k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", []))
            )
            self._record(scope, call, status)

    def _inspection_passes(self, call: _Call, answer: dict[str, Any] | None) -> bool:
        assert call.principal is not None and call.principal.patient is not None
        if answer is None:
            return False
        patient = call.principal.patient
        resources = [answer] if answer.get("resourceType") != "Bundle" else _entry_resources(answer)
        return all(
            r.get("resourceType") in DEFINITION_TYPES
            or r.get("resourceType") == "OperationOutcome"
            or belongs_to(r, patient)
            for r in resources
        )

    def _facts(self, call: _Call, answer: dict[str, Any] | None, headers: dict[str, str]) -> None:
        access = call.access
        if access.res_type and access.res_id:
            call.touched.append(f"{access.res_type}/{access.res_id}")
        location = headers.get("location")
        if location:
            parts = location.rstrip("/").split("/")
            ref = "/".join(parts[-4:-2]) if "_history" in parts else "/".join(parts[-2:])
            call.touched.append(ref)
        if answer is not None:
            if answer.get("resourceType") == "Bundle":
                for entry in answer.get("entry") or []:
                    resource = entry.get("resource") if isinstance(entry, dict) else None
                    if isinstance(resource, dict) and (entry.get("search") or {}).get("mode", "match") == "match":
                        call.patients |= patients_of(resource)
                    location = (entry.get("response") or {}).get("location") if isinstance(entry, dict) else None
                    if isinstance(location, str):
                        call.touched.append("/".join(location.split("/")[:2]))
            elif answer.get("resourceType") not in ("OperationOutcome", "Parameters"):
                call.patients |= patients_of(answer)
        if access.kind == "apply":
            call.patients |= {
                s.split("/", 1)[1] for s in apply_access.subjects(call.inputs) if s.startswith("Patient/")
            }
        body = _json(call.body) if access.interaction in ("create", "update") else None
        if body is not None:
            call.patients |= patients_of(body)

    def _record(self, scope: Scope, call: _Call, status: int) -> None:
        access = call.access
        if not _audited(access):
            return
        request = Request(call.address, access.interaction or "operation", access.res_type, status)
        self._queue(access_event(request, call.principal, touched=call.touched, patients=call.patients,
                                 source=self._source()))  # fmt: skip

    def _queue(self, event: dict[str, Any]) -> None:
        try:
            self.trail.record(self._repository(), event)
        except AttributeError:  # the app has not started (no repository yet): nothing to record into
            log.warning("audit before start-up: an AuditEvent was not recorded")

    def _source(self) -> str:
        return self.settings.base_url or "carepath"

    _app_ref: Any = None  # the Starlette app (scope["app"]), whose state holds the repository once started

    def _repository(self) -> Repository:
        repository: Repository = self._app_ref.state.carepath.repository
        return repository


def _audited(access: Access) -> bool:
    """Patient data and every $apply (its output is patient data, though its path names a definition)."""
    return access.kind == "apply" or access.res_type not in _NOT_AUDITED


def _entry_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry")
    return (
        [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
        if isinstance(entries, list)
        else []
    )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _json(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return jsonutil.loads(raw)
    except (InvalidRequest, ValueError):
        return None


def _apply_inputs(scope: Scope, body: bytes | None) -> OperationInput | None:
    try:
        if scope["method"] == "GET":
            return from_query(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        parsed = _json(body)
        return from_parameters(parsed) if isinstance(parsed, dict) else None
    except CarepathError:
        return None


async def _buffer_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole body (None when over the limit: the route refuses it then) and a receive that replays it."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request") if size <= limit else None

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay


async def _error(exc: CarepathError, send: Send) -> None:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"' if exc.error else "Bearer"
    elif isinstance(exc, Forbidden):
        headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'
    elif isinstance(exc, TooManyRequests):
        headers["Retry-After"] = "60"
    response = json_response(operation_outcome(exc.issues()), exc.status, headers)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
