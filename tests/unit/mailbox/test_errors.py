"""Store errors survive the trip through the API: same class, same message, same fields."""

from __future__ import annotations

import pytest

from sitemail.mailbox.errors import (
    ERRORS_BY_CODE,
    AccessDenied,
    Conflict,
    InvalidRequest,
    MessageTooLarge,
    NotFound,
    StoreError,
    StoreUnavailable,
    WrongServer,
    error_from_json,
)


@pytest.mark.parametrize("cls", [cls for _, cls in sorted(ERRORS_BY_CODE.items())])
def test_every_error_comes_back_as_its_own_class(cls: type[StoreError]) -> None:
    sent = cls("what went wrong")
    back = error_from_json(sent.status, sent.to_json())
    assert type(back) is cls
    assert back.message == "what went wrong"


def test_wrong_server_keeps_where_the_mailbox_is() -> None:
    sent = WrongServer("ask EX-FL1", mailbox="adam", database="DB-FL", server="EX-FL1")
    back = error_from_json(409, sent.to_json())
    assert isinstance(back, WrongServer)
    assert (back.mailbox, back.database, back.server) == ("adam", "DB-FL", "EX-FL1")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequest),
        (403, AccessDenied),
        (404, NotFound),
        (409, Conflict),
        (413, MessageTooLarge),
        (503, StoreUnavailable),
        (500, StoreError),
    ],
)
def test_an_answer_without_a_known_code_is_classed_by_its_status(
    status: int, cls: type[StoreError]
) -> None:
    back = error_from_json(status, {"message": "proxy says no"})
    assert type(back) is cls and back.message == "proxy says no"
