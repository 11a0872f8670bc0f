"""The worklist's session: a signed cookie (itsdangerous) holding the user, a CSRF token and the language.

The cookie is HttpOnly, SameSite=Lax and Secure over https; it is re-signed on every page, and one older than the
idle timeout is refused, so an abandoned screen signs itself out. It holds no patient data.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from carepath.web.views.actions import Actor

COOKIE = "carepath_app"
# CAREPATH_AUTH=off: every visitor is this fixed development user (shown under a banner on every page).
DEV_USER = Actor("Practitioner/dev-coordinator", "Dev Coordinator (IDEC)")


@dataclass(frozen=True)
class Session:
    user: Actor
    csrf: str
    lang: str = ""  # "" = from Accept-Language


class Sessions:
    def __init__(self, secret: str, idle_seconds: int) -> None:
        # An empty secret gives a random one per process: sessions do not survive a restart (documented).
        self._serializer = URLSafeTimedSerializer(secret or secrets.token_urlsafe(32), salt="carepath-app")
        self.idle_seconds = idle_seconds

    def new(self, user: Actor) -> Session:
        return Session(user, secrets.token_urlsafe(24))

    def load(self, cookie: str | None) -> Session | None:
        """The session of a valid cookie younger than the idle timeout, else None."""
        if not cookie:
            return None
        try:
            data: dict[str, Any] = self._serializer.loads(cookie, max_age=self.idle_seconds)
            return Session(Actor(str(data["ref"]), str(data["name"])), str(data["csrf"]), str(data.get("lang", "")))
        except (BadSignature, KeyError, TypeError):
            return None

    def dump(self, session: Session) -> str:
        ref, name, csrf, lang = session.user.reference, session.user.display, session.csrf, session.lang
        return self._serializer.dumps({"ref": ref, "name": name, "csrf": csrf, "lang": lang})

    @staticmethod
    def with_lang(session: Session, lang: str) -> Session:
        return replace(session, lang=lang)


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    return session is not None and bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")
