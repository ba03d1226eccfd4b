"""A hub's batch for its own server's store goes to that store in the same process
(delivery_batch.deliver_here): the parts and checks of POST /deliveries, no HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

import pytest

from sitemail.mailbox.delivery_batch import (
    MAX_PARTS,
    BatchMessage,
    DeliveryAnswer,
    deliver_here,
)
from sitemail.mailbox.errors import InvalidRequest, StoreError
from sitemail.mailbox.records import DeliveryResult

T = TypeVar("T")


class Store:
    """Records what it is asked to deliver (the bodies read while they are open)."""

    max_message_size = 1 << 20

    def __init__(self) -> None:
        self.parts: list[tuple[bytes, list[tuple[str, str]]]] = []

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    def deliver_spooled(
        self, spooled: Sequence[tuple[IO[bytes] | StoreError, Sequence[tuple[str, str]]]]
    ) -> list[DeliveryAnswer]:
        answers: list[DeliveryAnswer] = []
        for body, recipients in spooled:
            assert not isinstance(body, StoreError)
            body.seek(0)
            self.parts.append((body.read(), list(recipients)))
            answers += [DeliveryResult(message_id=1, folder_id=1, uid=1, duplicate=False)] * len(
                recipients
            )
        return answers


def test_bodies_from_memory_and_from_files_with_their_recipients(tmp_path: Path) -> None:
    spooled = tmp_path / "1.eml"
    spooled.write_bytes(b"Subject: large\r\n\r\nbody\r\n")
    store = Store()
    batch = [
        BatchMessage(b"Subject: small\r\n\r\nhi\r\n", (("adam", "id-1"), ("eve", "id-2"))),
        BatchMessage(spooled, (("adam", "id-3"),)),
    ]
    answers = asyncio.run(deliver_here(store, batch))
    assert len(answers) == 3
    assert store.parts == [
        (b"Subject: small\r\n\r\nhi\r\n", [("adam", "id-1"), ("eve", "id-2")]),
        (b"Subject: large\r\n\r\nbody\r\n", [("adam", "id-3")]),
    ]


def test_many_recipients_make_several_parts_of_one_body_as_over_http() -> None:
    store = Store()
    pairs = tuple((f"user{i}", f"delivery-id-{i:04}") for i in range(400))
    asyncio.run(deliver_here(store, [BatchMessage(b"x\r\n", pairs)]))
    assert len(store.parts) > 1  # each part's X-Deliver-To stays under MAX_HEADER
    assert [p for _, rs in store.parts for p in rs] == list(pairs)


def test_the_route_s_limits_refuse_the_whole_batch() -> None:
    batch = [BatchMessage(b"x\r\n", (("adam", f"id-{i}"),)) for i in range(MAX_PARTS + 1)]
    with pytest.raises(InvalidRequest):
        asyncio.run(deliver_here(Store(), batch))
    with pytest.raises(InvalidRequest):  # a bad delivery id, as the route checks it
        asyncio.run(deliver_here(Store(), [BatchMessage(b"x\r\n", (("adam", ""),))]))


def test_a_failure_of_the_store_is_an_error_of_the_whole_batch_as_http_500() -> None:
    class Broken(Store):
        def deliver_spooled(
            self, spooled: Sequence[tuple[IO[bytes] | StoreError, Sequence[tuple[str, str]]]]
        ) -> list[DeliveryAnswer]:
            raise RuntimeError("disk on fire")

    with pytest.raises(StoreError, match="disk on fire"):
        asyncio.run(deliver_here(Broken(), [BatchMessage(b"x\r\n", (("adam", "id-1"),))]))
