"""The application event log of an Exchange 2003 server (what Event Viewer shows).

One JSON object a line in the server's folder (``eventlog/Application.jsonl``):
the fields of an Event Viewer entry (Type, Date/Time, Source, Category,
Event ID, Description).  The System Attendant writes to it; the
troubleshooter and ``sitemail esm`` read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

__all__ = ["EventEntry", "EventLog", "EventType"]

LOG_FILE = Path("eventlog") / "Application.jsonl"


class EventType(StrEnum):
    INFORMATION = "Information"
    WARNING = "Warning"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class EventEntry:
    time: datetime
    type: EventType
    source: str
    category: str
    event_id: int
    description: str

    def text(self) -> str:
        """As Event Viewer's copy of an event reads."""
        return (
            f"Event Type:\t{self.type.value}\nEvent Source:\t{self.source}\n"
            f"Event Category:\t{self.category}\nEvent ID:\t{self.event_id}\n"
            f"Date:\t\t{self.time:%m/%d/%Y}\nTime:\t\t{self.time:%I:%M:%S %p}\n"
            f"Description:\n{self.description}\n"
        )


class EventLog:
    def __init__(self, home: Path) -> None:
        self.path = home / LOG_FILE

    def write(
        self,
        time: datetime,
        type_: EventType,
        source: str,
        category: str,
        event_id: int,
        description: str,
    ) -> None:
        row = {
            "time": time.isoformat(),
            "type": type_.value,
            "source": source,
            "category": category,
            "event_id": event_id,
            "description": description,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def read(self) -> list[EventEntry]:
        """Every entry, oldest first (lines that do not parse are left out)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out: list[EventEntry] = []
        for line in text.splitlines():
            try:
                row = json.loads(line)
                out.append(
                    EventEntry(
                        datetime.fromisoformat(row["time"]),
                        EventType(row["type"]),
                        str(row["source"]),
                        str(row["category"]),
                        int(row["event_id"]),
                        str(row["description"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out
