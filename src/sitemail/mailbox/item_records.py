"""The typed records of the items that are not mail: calendar items, contacts and tasks.

A typed item is a message of the store (it has a message id, a folder, a
UID and a modification sequence, and moves, copies and deletes like any
message) whose content the store generated from a typed record: an
iCalendar VEVENT, a vCard, a plain text task.  The record is what Exchange
Web Services, OWA and the availability service read; the generated content
is what IMAP clients see.  The record is kept beside the content (one per
content, so a copy carries it), and an update writes both anew.

Times are aware datetimes in UTC; ``time_zone`` is the Windows time zone
id the client gave (EWS speaks Windows ids), which recurrence expansion
needs to repeat a meeting at the same wall-clock time across DST changes.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from sitemail.mailbox.records import Address, Record

#: Bounds on what one typed item holds, so that a record stays small.  A text property
#: (location, a contact's names) is sitemail's bound, not Exchange's: 255 refused what
#: clients write (exchangelib's own tests write 400-character locations and names).
MAX_TEXT = 4096
MAX_BODY = 256 * 1024
MAX_ATTENDEES = 500
MAX_EXCEPTIONS = 999
#: E-mail addresses or phone numbers of a contact: EWS names 19 phone number keys
#: (AssistantPhone ... TtyTddPhone) and 3 e-mail address keys.
MAX_ENTRIES = 19
#: Most occurrences of a numbered recurrence (Outlook's and Exchange's cap; unverified for EWS).
MAX_OCCURRENCES = 999
#: Members of one private distribution list (Outlook's practical limit; unverified for EWS).
MAX_MEMBERS = 1000
#: Properties of a typed item kept as the client gave them (:data:`Props`): how many, and
#: the longest one (as XML text; four 4,000-character children fit).
MAX_PROPS = 100
MAX_PROP = 32 * 1024

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Body = Annotated[str, Field(max_length=MAX_BODY)]
#: The properties of an item its record has no field of its own for (categories,
#: sensitivity, a contact's birthday ...): EWS property path -> the element the client
#: sent, as XML text, which EWS gives back as it was set.
Props = Annotated[
    dict[Text, Annotated[str, Field(max_length=MAX_PROP)]], Field(max_length=MAX_PROPS)
]


class ItemKind(StrEnum):
    """What a typed item is, named as the EWS element that carries it."""

    CALENDAR = "CalendarItem"
    CONTACT = "Contact"
    TASK = "Task"
    DISTRIBUTION_LIST = "DistributionList"

    @property
    def item_class(self) -> str:
        """PR_MESSAGE_CLASS, what EWS calls ItemClass."""
        return {
            ItemKind.CALENDAR: "IPM.Appointment",
            ItemKind.CONTACT: "IPM.Contact",
            ItemKind.TASK: "IPM.Task",
            ItemKind.DISTRIBUTION_LIST: "IPM.DistList",
        }[self]


class FreeBusy(StrEnum):
    """LegacyFreeBusyStatus, and the BusyType of the availability service."""

    FREE = "Free"
    TENTATIVE = "Tentative"
    BUSY = "Busy"
    OOF = "OOF"
    NO_DATA = "NoData"


class ResponseType(StrEnum):
    UNKNOWN = "Unknown"
    ORGANIZER = "Organizer"
    TENTATIVE = "Tentative"
    ACCEPT = "Accept"
    DECLINE = "Decline"
    NO_RESPONSE = "NoResponseReceived"


class Weekday(StrEnum):
    """EWS DayOfWeekType: the seven days, and the three groups relative patterns use."""

    SUNDAY = "Sunday"
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    DAY = "Day"
    WEEKDAY = "Weekday"
    WEEKEND_DAY = "WeekendDay"

    def python_days(self) -> frozenset[int]:
        """The ``date.weekday()`` numbers (Monday 0) this value stands for."""
        if self is Weekday.DAY:
            return frozenset(range(7))
        if self is Weekday.WEEKDAY:
            return frozenset(range(5))
        if self is Weekday.WEEKEND_DAY:
            return frozenset({5, 6})
        return frozenset({_ORDER.index(self)})


_ORDER = [
    Weekday.MONDAY,
    Weekday.TUESDAY,
    Weekday.WEDNESDAY,
    Weekday.THURSDAY,
    Weekday.FRIDAY,
    Weekday.SATURDAY,
    Weekday.SUNDAY,
]


class WeekIndex(StrEnum):
    """DayOfWeekIndex of relative patterns."""

    FIRST = "First"
    SECOND = "Second"
    THIRD = "Third"
    FOURTH = "Fourth"
    LAST = "Last"


class Pattern(StrEnum):
    """The recurrence patterns of EWS (RecurrencePatternTypes), without the regenerating ones."""

    DAILY = "DailyRecurrence"
    WEEKLY = "WeeklyRecurrence"
    ABSOLUTE_MONTHLY = "AbsoluteMonthlyRecurrence"
    RELATIVE_MONTHLY = "RelativeMonthlyRecurrence"
    ABSOLUTE_YEARLY = "AbsoluteYearlyRecurrence"
    RELATIVE_YEARLY = "RelativeYearlyRecurrence"


class Recurrence(Record):
    """A recurrence pattern and its range (EndDate, NumberOfOccurrences, or no end)."""

    pattern: Pattern
    interval: int = Field(default=1, ge=1, le=999)
    days_of_week: list[Weekday] = Field(default_factory=list, max_length=7)
    first_day_of_week: Weekday = Weekday.MONDAY
    day_of_month: int | None = Field(default=None, ge=1, le=31)
    week_index: WeekIndex | None = None
    month: int | None = Field(default=None, ge=1, le=12)
    start_date: date
    end_date: date | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_OCCURRENCES)

    @model_validator(mode="after")
    def _complete(self) -> Recurrence:
        needs = {
            Pattern.WEEKLY: ("days_of_week",),
            Pattern.ABSOLUTE_MONTHLY: ("day_of_month",),
            Pattern.RELATIVE_MONTHLY: ("days_of_week", "week_index"),
            Pattern.ABSOLUTE_YEARLY: ("day_of_month", "month"),
            Pattern.RELATIVE_YEARLY: ("days_of_week", "week_index", "month"),
        }.get(self.pattern, ())
        missing = [name for name in needs if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.pattern} needs {', '.join(missing)}")
        if self.end_date is not None and self.count is not None:
            raise ValueError("a recurrence ends on a date or after a number, not both")
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("the recurrence ends before it starts")
        return self


class Attendee(Record):
    address: Text
    name: Text = ""
    response: ResponseType = ResponseType.UNKNOWN


class ModifiedOccurrence(Record):
    """An occurrence moved or changed: the one that would have started at ``original_start``."""

    original_start: datetime
    start: datetime
    end: datetime
    subject: Text | None = None
    location: Text | None = None
    free_busy: FreeBusy | None = None


class CalendarData(Record):
    """An appointment or a meeting, with its recurrence and exceptions if it repeats."""

    subject: Text = ""
    body: Body = ""
    body_html: bool = False
    start: datetime
    end: datetime
    time_zone: Text = "UTC"
    all_day: bool = False
    location: Text = ""
    organizer: Address | None = None
    required: list[Attendee] = Field(default_factory=list, max_length=MAX_ATTENDEES)
    optional: list[Attendee] = Field(default_factory=list, max_length=MAX_ATTENDEES)
    free_busy: FreeBusy = FreeBusy.BUSY
    cancelled: bool = False
    reminder_minutes: int | None = Field(default=None, ge=0, le=2_000_000)
    recurrence: Recurrence | None = None
    modified: list[ModifiedOccurrence] = Field(default_factory=list, max_length=MAX_EXCEPTIONS)
    deleted: list[datetime] = Field(default_factory=list, max_length=MAX_EXCEPTIONS)
    uid: Text = ""
    sequence: int = Field(default=0, ge=0)
    meeting_request_sent: bool = False
    props: Props = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> CalendarData:
        if self.end < self.start:
            raise ValueError("an appointment cannot end before it starts")
        return self

    @property
    def is_meeting(self) -> bool:
        return bool(self.required or self.optional)


class ContactData(Record):
    """A contact of the Contacts folder: names, company, addresses, phones."""

    display_name: Text = ""
    given_name: Text = ""
    middle_name: Text = ""
    surname: Text = ""
    nickname: Text = ""
    file_as: Text = ""
    company: Text = ""
    department: Text = ""
    job_title: Text = ""
    #: EmailAddress1..3 -> address.
    emails: dict[Text, Text] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    #: BusinessPhone, MobilePhone, HomePhone ... -> number.
    phones: dict[Text, Text] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    body: Body = ""
    props: Props = Field(default_factory=dict)

    @property
    def name(self) -> str:
        given = " ".join(p for p in (self.given_name, self.middle_name, self.surname) if p)
        return self.display_name or given or self.file_as


class TaskStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    WAITING = "WaitingOnOthers"
    DEFERRED = "Deferred"


class TaskData(Record):
    subject: Text = ""
    body: Body = ""
    start_date: datetime | None = None
    due_date: datetime | None = None
    complete_date: datetime | None = None
    status: TaskStatus = TaskStatus.NOT_STARTED
    percent_complete: float = Field(default=0.0, ge=0.0, le=100.0)
    props: Props = Field(default_factory=dict)

    @property
    def is_complete(self) -> bool:
        return self.status is TaskStatus.COMPLETED


class ListMember(Record):
    """A member of a private distribution list: a one-off address, a contact's or a
    mailbox's (EWS MailboxType), and its Status."""

    name: Text = ""
    address: Text
    routing_type: Text = "SMTP"
    mailbox_type: Text = "OneOff"
    status: Text = "Normal"


class DistributionListData(Record):
    """A private distribution list of a Contacts folder (IPM.DistList): its name and members."""

    display_name: Text = ""
    body: Body = ""
    members: list[ListMember] = Field(default_factory=list, max_length=MAX_MEMBERS)
    props: Props = Field(default_factory=dict)


class TypedItem(Record):
    """A typed item as the store holds it: where it is, and its record (one of four)."""

    id: int
    folder_id: int
    uid: int
    modseq: int
    kind: ItemKind
    created_at: datetime
    calendar: CalendarData | None = None
    contact: ContactData | None = None
    task: TaskData | None = None
    distribution_list: DistributionListData | None = None

    @property
    def record(self) -> CalendarData | ContactData | TaskData | DistributionListData:
        """The item's record, whichever kind it is."""
        found = self.calendar or self.contact or self.task or self.distribution_list
        assert found is not None, "a typed item has a record"
        return found


class TypedItemPage(Record):
    total: int
    items: list[TypedItem]
