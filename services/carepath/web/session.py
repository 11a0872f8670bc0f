"""The worklist's session: a signed cookie (itsdangerous) holding the user, their grants, a CSRF token and the
language; and, between `/app/login` and `/app/callback`, the pending sign-in (state, nonce, PKCE verifier).

The cookie is HttpOnly, SameSite=Lax and Secure over https; it is re-signed on every page, and one older than the
idle timeout is refused, so an abandoned screen signs itself out. It holds no patient data: the grants are the
access token's scopes (SMART v2 letters) and the patient id of a `patient/` launch context, if any.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from carepath.auth.oidc import Pending
from carepath.web.views.actions import Actor

COOKIE = "carepath_app"
PENDING_COOKIE = "carepath_signin"
PENDING_MAX_AGE_S = 600  # time allowed at the issuer's sign-in page
# CAREPATH_AUTH=off: every visitor is this fixed development user (shown under a banner on every page).
DEV_USER = Actor("Practitioner/dev-coordinator", "Dev Coordinator (IDEC)")
DEV_SCOPE = "user/*.cruds"


@dataclass(frozen=True)
class Session:
    user: Actor
    csrf: str
    lang: str = ""  # "" = from Accept-Language
    scope: str = ""  # the granted scopes (space-separated)
    patient: str | None = None  # the patient/ launch context: the session sees this patient only


class Sessions:
    def __init__(self, secret: str, idle_seconds: int) -> None:
        # An empty secret gives a random one per process: sessions do not survive a restart (documented).
        self.secret = secret or secrets.token_urlsafe(32)
        self._serializer = URLSafeTimedSerializer(self.secret, salt="carepath-app")
        self._pending = URLSafeTimedSerializer(self.secret, salt="carepath-app-signin")
        self.idle_seconds = idle_seconds

    def new(self, user: Actor, scope: str = "", patient: str | None = None) -> Session:
        return Session(user, secrets.token_urlsafe(24), scope=scope, patient=patient)

    def load(self, cookie: str | None) -> Session | None:
        """The session of a valid cookie younger than the idle timeout, else None."""
        if not cookie:
            return None
        try:
            data: dict[str, Any] = self._serializer.loads(cookie, max_age=self.idle_seconds)
            return Session(Actor(str(data["ref"]), str(data["name"])), str(data["csrf"]), str(data.get("lang", "")),
                           str(data.get("scope", "")), data.get("patient") or None)  # fmt: skip
        except (BadSignature, KeyError, TypeError):
            return None

    def dump(self, session: Session) -> str:
        ref, name, csrf, lang = session.user.reference, session.user.display, session.csrf, session.lang
        return self._serializer.dumps({"ref": ref, "name": name, "csrf": csrf, "lang": lang, "scope": session.scope,
                                       "patient": session.patient})  # fmt: skip

    def dump_pending(self, pending: Pending) -> str:
        return self._pending.dumps(asdict(pending))

    def load_pending(self, cookie: str | None) -> Pending | None:
        if not cookie:
            return None
        try:
            return Pending(**self._pending.loads(cookie, max_age=PENDING_MAX_AGE_S))
        except (BadSignature, TypeError):
            return None

    @staticmethod
    def with_lang(session: Session, lang: str) -> Session:
        return replace(session, lang=lang)


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    return session is not None and bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")
