"""The worklist's signed session cookie: round trip, tampering, another secret, the idle timeout, CSRF check, the
grants it carries and the pending sign-in cookie."""

from __future__ import annotations

import time

from carepath.auth.oidc import Pending
from carepath.web.session import DEV_USER, Sessions, csrf_ok


def test_session_round_trip_and_refusals() -> None:
    sessions = Sessions("secret-1", idle_seconds=60)
    session = Sessions.with_lang(sessions.new(DEV_USER), "fr")
    cookie = sessions.dump(session)
    assert sessions.load(cookie) == session
    assert sessions.load(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None  # tampered
    assert Sessions("secret-2", idle_seconds=60).load(cookie) is None  # signed with another secret
    assert sessions.load(None) is None and sessions.load("") is None


def test_idle_timeout() -> None:
    sessions = Sessions("secret", idle_seconds=1)
    cookie = sessions.dump(sessions.new(DEV_USER))
    time.sleep(2.1)  # itsdangerous counts whole seconds
    assert sessions.load(cookie) is None


def test_csrf() -> None:
    session = Sessions("s", 60).new(DEV_USER)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, "forged") and not csrf_ok(session, None) and not csrf_ok(None, session.csrf)


def test_session_carries_grants_and_patient_context() -> None:
    sessions = Sessions("secret-1", idle_seconds=60)
    session = sessions.new(DEV_USER, "patient/Task.rs user/Practitioner.r", patient="P1")
    loaded = sessions.load(sessions.dump(session))
    assert loaded == session and loaded.scope == "patient/Task.rs user/Practitioner.r" and loaded.patient == "P1"
    assert sessions.load(sessions.dump(sessions.new(DEV_USER))).patient is None  # type: ignore[union-attr]


def test_pending_sign_in_round_trip_and_refusals() -> None:
    sessions = Sessions("secret-1", idle_seconds=60)
    pending = Pending.new("/app/tasks/t1")
    cookie = sessions.dump_pending(pending)
    assert sessions.load_pending(cookie) == pending
    assert sessions.load(cookie) is None  # a pending sign-in is not a session (another salt)
    assert sessions.load_pending(sessions.dump(sessions.new(DEV_USER))) is None
    assert Sessions("secret-2", idle_seconds=60).load_pending(cookie) is None and sessions.load_pending(None) is None
