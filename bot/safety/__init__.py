"""Client safety: crisis-language detection, the crisis resource directory, the crisis reply.

Runs first on every inbound message (DESIGN.md §3-§5). The rest of Rapport calls only what is
exported here:

- :func:`scan` -- crisis language in a message, any language, with or without a hint;
- :func:`country_for`, :func:`resources_for`, :func:`emergency_number` -- the directory;
- :func:`crisis_reply` -- the reply text in the client's language;
- :func:`run_scan_cli` -- ``rapport safety scan``.
"""

from __future__ import annotations

from .cli import run_scan_cli
from .detector import scan
from .reply import crisis_reply
from .resources import Resource, country_for, emergency_number, resources_for
from .types import Scan

__all__ = [
    "Resource",
    "Scan",
    "country_for",
    "crisis_reply",
    "emergency_number",
    "resources_for",
    "run_scan_cli",
    "scan",
]
