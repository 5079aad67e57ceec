"""The shape of a safety scan; shared by the detector, the service and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["high", "moderate"]
About = Literal["self", "other"]


@dataclass(frozen=True)
class Scan:
    level: str | None = None  # "high" | "moderate" | None
    about: str | None = None  # "self" | "other" | None
    matched: tuple[str, ...] = field(default_factory=tuple)

    @property
    def crisis(self) -> bool:
        return self.level is not None
