"""The pure dialogue engine (public face): start/resume a conversation, get events back."""

from bot.engine.dialogue import DIALOGUES_DIR, Dialogue, DialogueError, Step, load_dialogues
from bot.engine.events import Event
from bot.engine.inputs import Input, Reply, WaitTimeout
from bot.engine.runner import Engine, NeedsAvailability, Rejected, Sprint
from bot.engine.state import AppointmentView, Availability, Ctx, State, Wait

__all__ = [
    "DIALOGUES_DIR",
    "AppointmentView",
    "Availability",
    "Ctx",
    "Dialogue",
    "DialogueError",
    "Engine",
    "Event",
    "Input",
    "NeedsAvailability",
    "Rejected",
    "Reply",
    "Sprint",
    "State",
    "Step",
    "Wait",
    "WaitTimeout",
    "load_dialogues",
]
