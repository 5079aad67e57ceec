"""Storage (public face): tables, opening a database, and the store's queries."""

from storage import store
from storage.db import create_all, make_engine, normalize_url, resolve_url, transaction
from storage.tables import (
    Alert,
    Appointment,
    AuditLog,
    Client,
    Clinician,
    Conversation,
    Feedback,
    InboundSeen,
    Message,
    Outbox,
    Practice,
    Timer,
)

__all__ = [
    "Alert",
    "Appointment",
    "AuditLog",
    "Client",
    "Clinician",
    "Conversation",
    "Feedback",
    "InboundSeen",
    "Message",
    "Outbox",
    "Practice",
    "Timer",
    "create_all",
    "make_engine",
    "normalize_url",
    "resolve_url",
    "store",
    "transaction",
]
