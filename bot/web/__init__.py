"""The web app (public face): ``create_app`` builds it; ``bot.server`` runs it."""

from bot.web.app import create_app

__all__ = ["create_app"]
