"""The header firewall on the way out: the organization's own fields stay inside it."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from sitemail.transport.headers import without_organization_headers

MESSAGE = (
    b"Received: from ws1 by ex-ny1.contoso.com\r\n"
    b"X-MS-Exchange-Organization-AuthSource: ex-ny1.contoso.com\r\n"
    b"From: alice@contoso.com\r\n"
    b"x-ms-exchange-organization-authas: Internal\r\n"
    b"Subject: quarterly\r\n numbers\r\n"
    b"X-MS-Exchange-Forest-RulesExecuted: EX-NY1\r\n"
    b"X-MS-Exchange-Organization-Network-Message-Id:\r\n 1234\r\n"
    b"\r\n"
    b"X-MS-Exchange-Organization-AuthAs: a body line stays\r\n"
)
EXPECTED = (
    b"Received: from ws1 by ex-ny1.contoso.com\r\n"
    b"From: alice@contoso.com\r\n"
    b"Subject: quarterly\r\n numbers\r\n"
    b"\r\n"
    b"X-MS-Exchange-Organization-AuthAs: a body line stays\r\n"
)


@given(st.lists(st.integers(min_value=1, max_value=len(MESSAGE) - 1), max_size=6))
def test_organization_fields_go_whatever_the_chunks(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(MESSAGE)]
    chunks = [MESSAGE[a:b] for a, b in pairwise(bounds)]
    assert b"".join(without_organization_headers(chunks)) == EXPECTED


def test_a_message_without_such_fields_is_unchanged() -> None:
    plain = b"From: a@contoso.com\r\nSubject: hi\r\n\r\nbody\r\n"
    assert b"".join(without_organization_headers([plain])) == plain


def test_a_header_section_that_never_ends_passes_as_it_is() -> None:
    odd = b"X-MS-Exchange-Organization-AuthAs: Internal"
    assert b"".join(without_organization_headers([odd])) == odd
