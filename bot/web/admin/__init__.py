"""The practice's admin pages (server-rendered, no build step) and their static assets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bot.service import Service
from bot.settings import Settings

STATIC = Path(__file__).resolve().parents[1] / "static"


def mount(app: FastAPI, svc: Service, settings: Settings, run: Callable[..., Awaitable[Any]]) -> None:
    """Add ``/admin`` and ``/static`` to the app."""
    from bot.web.admin.routes import router

    app.include_router(router(svc, settings, run))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
