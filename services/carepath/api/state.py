"""What the routes share: settings and the repository, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from carepath.events.streams import Streams
from carepath.settings import Settings
from carepath.store.repository import Repository


@dataclass
class AppState:
    settings: Settings
    repository: Repository
    streams: Streams  # the event streams (a real Redis, or the in-process substitute)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.carepath
    return state
