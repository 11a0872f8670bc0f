"""The `/app` pages: thin routes that read through `data`, build view models with `views`, render Jinja2.

Every page is sent with a CSP (no inline script or style, `frame-ancestors 'none'`) and `Cache-Control:
no-store`; page titles and URLs carry no patient data beyond ids. State changes are POST forms with the
session's CSRF token and the Task's version (If-Match), and go through `execute_crud`'s update — the same path
as a FHIR PUT, so the workflow's state machine decides, and its refusal is shown on the page. Each page first
asks `guard` whether the session's grants allow it (403 page otherwise), and what it showed or changed is queued
on the API's audit trail, with the signed-in user as agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from carepath.api.state import app_state
from carepath.auth.audit import AuditTrail
from carepath.auth.dev import DEV_ISSUER
from carepath.auth.dev_issuer import DEV_CLIENT_ID
from carepath.auth.tokens import Principal
from carepath.errors import CarepathError, Forbidden, InvalidRequest, PreconditionFailed
from carepath.events.streams import Entry
from carepath.service.agent import request_agent
from carepath.service.interactions import Interaction, check_id, execute_crud
from carepath.web import data, guard
from carepath.web.session import COOKIE, DEV_SCOPE, DEV_USER, Session, Sessions, csrf_ok
from carepath.web.views import actions, task, worklist
from carepath.web.views.fhir import Resource, concept_text, due, label, patient_name, practitioner_name, reference_id
from carepath.web.views.i18n import Translator, format_date, negotiate
from carepath.web.views.live import live_message
from carepath.web.views.pathway import pathway_svg
from carepath.web.views.timeline import timeline_svg

log = logging.getLogger("carepath.web")
PACKAGE = Path(str(resources.files("carepath.web")))
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")  # fmt: skip

router = APIRouter(prefix="/app", include_in_schema=False)
templates = Environment(loader=FileSystemLoader(PACKAGE / "templates"), autoescape=select_autoescape(["html"]))


def static_files() -> StaticFiles:
    return StaticFiles(directory=PACKAGE / "static")


class Page:
    """One request's context: settings, session, language, clock."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.state = app_state(request)
        settings = self.state.settings
        self.sessions: Sessions = request.app.state.carepath_sessions
        self.tz = ZoneInfo(settings.timezone)
        self.now = datetime.now(UTC)
        loaded = self.sessions.load(request.cookies.get(COOKIE))
        self.dev_mode = settings.auth == "off"
        if loaded is None and self.dev_mode:
            loaded = self.sessions.new(DEV_USER, DEV_SCOPE)
        self.session: Session | None = loaded
        self.client_id = settings.app_oidc_client_id or DEV_CLIENT_ID
        self.issuer = {"dev": DEV_ISSUER, "jwt": settings.auth_issuer}.get(settings.auth, "urn:carepath:auth-off")
        self.t = Translator(negotiate(request.headers.get("accept-language"), loaded.lang if loaded else None))

    def date(self, moment: datetime | None, with_time: bool = True) -> str:
        return format_date(moment, self.t.lang, self.tz, with_time=with_time)

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        body = templates.get_template(template).render(
            t=self.t,
            lang=self.t.lang,
            page=self,
            session=self.session,
            dev_mode=self.dev_mode,
            path=self.request.url.path + (f"?{self.request.url.query}" if self.request.url.query else ""),
            **context,
        )
        return self.finish(HTMLResponse(body, status_code=status))

    def finish(self, response: Response) -> Response:
        """Security headers, and the session cookie re-signed (the idle timeout counts from now)."""
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        if self.session is not None:
            response.set_cookie(COOKIE, self.sessions.dump(self.session), max_age=self.sessions.idle_seconds,
                                path="/app", httponly=True, samesite="lax",
                                secure=self.request.url.scheme == "https")  # fmt: skip
        return response

    def refuse(self, error: CarepathError) -> Response:
        return self.render("error.html", status=error.status, message=str(error))

    def signed_out(self) -> Response:
        """A page asked for without a session goes to the sign-in, and comes back here afterwards; a form post
        or the event stream is told 401 (what it carried cannot follow the redirect)."""
        if self.request.method == "GET" and self.request.url.path != "/app/live":
            target = self.request.url.path + (f"?{self.request.url.query}" if self.request.url.query else "")
            return self.finish(RedirectResponse(f"/app/login?{urlencode({'next': target})}", status_code=303))
        return self.render("signed_out.html", status=401)

    @property
    def caller(self) -> Principal:
        assert self.session is not None
        return guard.principal(self.session, self.issuer, self.client_id)

    def forbidden(self) -> Response:
        return self.render("error.html", status=403, message=self.t("error.forbidden"))

    def audit(self, interaction: str, res_type: str, *, touched: list[str], patients: set[str],
              status: int = 200) -> None:  # fmt: skip
        """Queue the AuditEvent of what this page showed or changed (the API's trail, written in batches)."""
        if not self.state.settings.audit_enabled or self.session is None:
            return
        client = self.request.client
        event = guard.page_event(self.caller, client.host if client else "unknown", interaction, res_type,
                                 touched=touched, patients=patients, status=status,
                                 source=self.state.settings.base_url or "carepath")  # fmt: skip
        trail: AuditTrail = self.request.app.state.security.trail
        trail.record(self.state.repository, event)


def _signed_in(page: Page) -> bool:
    return page.session is not None


def local_target(target: str | None) -> str:
    """A redirect target inside the worklist: never an open redirect."""
    if not target or not target.startswith("/app") or target.startswith("//"):
        return "/app"
    return target


def callback_url(request: Request) -> str:
    """Where the issuer sends the browser back after sign-in: this server, as the browser reached it."""
    return f"{str(request.base_url).rstrip('/')}/app/callback"


def _patient_of(task: Resource) -> str | None:
    """A Task's patient: `Task.for`, the one parameter by which a Task is in a patient's compartment (read
    directly: the worklist lists 50 of them per page, the search index extraction costs ~30 µs each)."""
    return reference_id(task.get("for"), "Patient")


def _patients(tasks: list[Resource]) -> set[str]:
    return {p for p in map(_patient_of, tasks) if p}


@router.get("")
async def worklist_page(request: Request) -> Response:
    started = time.perf_counter()
    page = Page(request)
    if not _signed_in(page):
        return page.signed_out()
    if not guard.may_show(page.caller, guard.page_decision(page.caller, "worklist"), None):
        return page.forbidden()
    try:
        filters = worklist.parse_filters(dict(request.query_params))
        async with page.state.repository.reader() as tx:
            found = await data.worklist(tx, page.state.settings, filters, page.now, page.tz)
    except CarepathError as error:
        return page.refuse(error)
    read = time.perf_counter()
    assert page.session is not None
    page.audit("search-type", "Task", touched=[f"Task/{t['id']}" for t in found.tasks], patients=_patients(found.tasks))
    mine = page.session.user.reference.split("/")[-1]
    response = page.render("worklist.html", filters=filters, found=found, mine=mine,
                           rows=worklist.rows(found.tasks, found.related, page.now, page.tz),
                           statuses=worklist.STATUSES, priorities=worklist.PRIORITIES, windows=worklist.WINDOWS,
                           unassigned=worklist.UNASSIGNED, page_size=worklist.PAGE_SIZE)  # fmt: skip
    # Where the page's time goes (reading, then rendering): read by bench/bench_worklist.py and browser dev tools.
    took = [(moment - started) * 1000 for moment in (read, time.perf_counter())]
    response.headers["Server-Timing"] = f"read;dur={took[0]:.1f}, app;dur={took[1]:.1f}"
    return response


async def _task_response(page: Page, task_id: str, *, status: int = 200, **context: Any) -> Response:
    decision = guard.page_decision(page.caller, "task")
    if decision is None:
        return page.forbidden()
    async with page.state.repository.reader() as tx:
        found = await data.task_page(tx, page.state.settings, check_id(task_id))
    patient = _patient_of(found.task)
    if not guard.may_show(page.caller, decision, patient):
        return page.forbidden()
    page.audit("read", "Task", touched=[f"Task/{task_id}"], patients=_patients([found.task]))
    context.setdefault("form", {})
    return page.render(
        "task.html",
        status=status,
        found=found,
        title=label(found.task),
        reason=task.reason(found.task),
        waits=task.predecessors(found.task, found.others),
        waited_by=task.dependants(found.task, found.siblings),
        history=task.history(found.versions, found.provenances),
        offered=actions.offered(found.task),
        patient=patient_name(found.patient),
        owner=practitioner_name(found.owner) or (found.task.get("owner") or {}).get("display", ""),
        roles=", ".join(concept_text(c) for c in found.task.get("performerType", [])),
        due_state=worklist.due_state(found.task, page.now, page.tz),
        due_at=due(found.task),
        **context,
    )


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str) -> Response:
    page = Page(request)
    if not _signed_in(page):
        return page.signed_out()
    done = request.query_params.get("done")
    try:
        return await _task_response(page, task_id, done=done if done in actions.TARGET else None)
    except CarepathError as error:
        return page.refuse(error)


@router.post("/tasks/{task_id}")
async def task_action(request: Request, task_id: str) -> Response:
    page = Page(request)
    if not _signed_in(page):
        return page.signed_out()
    assert page.session is not None
    form = {k: str(v) for k, v in (await request.form()).items()}
    action = form.get("action", "")
    if not csrf_ok(page.session, form.get("csrf")):
        return page.render("error.html", status=403, message=page.t("error.csrf"))
    decision = guard.page_decision(page.caller, "action")
    if decision is None:
        return page.forbidden()
    try:
        check_id(task_id)
        version = form.get("version", "")
        if not version.isdigit():
            raise InvalidRequest("The form must carry the version of the task it was made from")
        async with page.state.repository.transaction() as tx:
            current = (await tx.read("Task", task_id)).json()
            if not guard.may_show(page.caller, decision, _patient_of(current)):
                raise Forbidden("task action")
            body = actions.changed_task(current, action, form, page.session.user, page.now)
            # the signed-in user is the author the workflow's Provenance names (who / when / why in the history)
            token = request_agent.set(page.session.user.as_reference())
            try:
                await execute_crud(tx, Interaction("update", "Task", task_id, body=body, if_match=int(version)))
            finally:
                request_agent.reset(token)
        page.audit("update", "Task", touched=[f"Task/{task_id}"], patients=_patients([current]))
    except Forbidden:
        return page.forbidden()
    except actions.MissingInput as missing:
        message = page.t(missing.key, action=page.t(f"action.{missing.action}").lower())
        return await _task_response(page, task_id, status=400, error=message, form=form)
    except PreconditionFailed:
        async with page.state.repository.reader() as tx:
            now_at = (await tx.read("Task", task_id)).version
        return await _task_response(page, task_id, status=409, error=page.t("error.conflict", version=now_at),
                                    form=form)  # fmt: skip
    except CarepathError as error:
        if error.status == 404:
            return page.refuse(error)
        return await _task_response(page, task_id, status=error.status, error=page.t("error.refused"),
                                    detail=str(error), form=form)  # fmt: skip
    return page.finish(RedirectResponse(f"/app/tasks/{task_id}?done={action}", status_code=303))


@router.get("/patients/{patient_id}")
async def patient_page(request: Request, patient_id: str) -> Response:
    page = Page(request)
    if not _signed_in(page):
        return page.signed_out()
    if not guard.may_show(page.caller, guard.page_decision(page.caller, "patient"), patient_id):
        return page.forbidden()
    try:
        async with page.state.repository.reader() as tx:
            patient, plans = await data.patient_page(tx, page.state.settings, check_id(patient_id))
    except CarepathError as error:
        return page.refuse(error)
    shown = [f"{r['resourceType']}/{r['id']}" for p in plans for r in (p.careplan, *p.tasks)]
    page.audit("read", "Patient", touched=shown, patients={patient_id})
    drawn = [
        {"careplan": p.careplan, "tasks": p.tasks, "timeline": Markup(timeline_svg(p.tasks, page.now, page.tz, page.t)),
         "diagram": Markup(pathway_svg(p.plan, p.tasks, page.now, page.t)) if p.plan else None,
         "plan": p.plan}
        for p in plans
    ]  # fmt: skip
    return page.render("patient.html", patient=patient, patient_label=patient_name(patient), plans=drawn,
                       label=label, due_state=lambda k: worklist.due_state(k, page.now, page.tz))  # fmt: skip


@router.get("/live")
async def live(request: Request) -> Response:
    """Server-sent events for the open pages, read from the outbound stream itself (XREAD from its end, not
    through the workers' consumer group), so every API process tells its own pages."""
    page = Page(request)
    if not _signed_in(page):
        return page.signed_out()
    if guard.page_decision(page.caller, "live") is None:
        return page.forbidden()
    streams = page.state.streams
    stream = page.state.settings.events_outbound_stream
    caller = page.caller

    def may_see(res_type: str, patient: str) -> bool:
        return guard.may_see_event(caller, res_type, patient)

    async def frames() -> AsyncIterator[str]:
        newest = cast(list[Entry], await streams.redis.xrevrange(stream, count=1) or [])
        last: bytes | str = newest[0][0] if newest else "0-0"
        yield "retry: 3000\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            if streams.blocking:
                reply = await streams.redis.xread({stream: last}, count=100, block=page.state.settings.events_block_ms)
            else:  # the in-process substitute does not block: poll
                reply = await streams.redis.xread({stream: last}, count=100)
                if not reply:
                    await asyncio.sleep(page.state.settings.events_poll_ms / 1000)
            for _, entries in cast(list[tuple[bytes, list[Entry]]], reply or []):
                for entry_id, fields in entries:
                    last = entry_id
                    frame = live_message(fields.get(b"event"), may_see)
                    if frame is not None:
                        quiet = 0.0
                        yield frame
            quiet += 1
            if quiet > 15:  # a comment now and then keeps proxies from closing an idle stream
                quiet = 0.0
                yield ": keep-alive\n\n"

    response = StreamingResponse(frames(), media_type="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return page.finish(response)


@router.get("/lang")
async def switch_language(request: Request) -> Response:
    """A preference, not a change of clinical data: a GET form, so it works without the CSRF token."""
    page = Page(request)
    target = local_target(request.query_params.get("next"))
    lang = request.query_params.get("lang", "")
    if page.session is not None and lang in ("en", "fr"):
        page.session = Sessions.with_lang(page.session, lang)
    return page.finish(RedirectResponse(target, status_code=303))


@router.post("/logout")
async def logout(request: Request) -> Response:
    page = Page(request)
    form = await request.form()
    if not csrf_ok(page.session, str(form.get("csrf") or "")):
        return page.render("error.html", status=403, message=page.t("error.csrf"))
    page.session = None
    response = page.render("signed_out.html")
    response.delete_cookie(COOKIE, path="/app")
    return response
