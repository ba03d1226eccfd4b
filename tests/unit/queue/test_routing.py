"""The categorizer's side: Submission -> delivery, Unreachable, or an immediate NDR."""

from __future__ import annotations

import pytest
from tests.unit.queue.queue_testkit import MAILBOX, SERVER, SHANDONG, Env

from sitemail.mailflow.dsn import RECIPIENT_NOT_FOUND_REPLY
from sitemail.mailflow.tracking_log import TrackingEventId
from sitemail.transport.queue import (
    DeliveryType,
    FailRecipient,
    LeaseError,
    MessageStatus,
    NextHop,
    QueueEventKind,
    QueueStatus,
    RouteDecision,
    UnreachableRoute,
)


def test_recipients_are_grouped_by_next_hop(env: Env) -> None:
    env.submit("bob@contoso.com", "carol@contoso.com", "dave@fabrikam.com")
    hops: dict[str, RouteDecision] = {
        "bob@contoso.com": MAILBOX,
        "carol@contoso.com": MAILBOX,
        "dave@fabrikam.com": SHANDONG,
    }
    env.categorize(lambda a: hops[a])
    queues = {q.next_hop_domain: q for q in env.store.get_queues()}
    mapi, site = queues["parizien.altin.com"], queues["Shandong"]
    assert (mapi.delivery_type, mapi.message_count) == (DeliveryType.MAPI_DELIVERY, 1)
    assert (site.delivery_type, site.message_count) == (
        DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE,
        1,
    )
    assert queues["Submission"].message_count == 0
    [in_mapi] = env.store.get_messages(mapi.identity)
    assert in_mapi.recipients == ("bob@contoso.com", "carol@contoso.com")
    assert in_mapi.identity.startswith(mapi.identity + "\\")


def test_a_next_hop_keeps_its_queue_identity(env: Env) -> None:
    env.submit("bob@contoso.com")
    env.categorize()
    [first] = [q for q in env.store.get_queues() if q.next_hop_domain == "Shandong"]
    env.submit("carol@contoso.com")
    env.categorize(lambda _: NextHop(DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE, "Shandong"))
    again = env.store.get_queue(first.identity)
    assert again.message_count == 2
    number = first.identity.split("\\")[1]
    assert number.isdigit()
    assert env.store.get_queue(number).identity == first.identity  # the server part is optional


def test_smart_host_and_dns_queues_show_their_next_hop(env: Env) -> None:
    env.submit("a@fabrikam.com", "b@tailspin.com")
    env.categorize(
        lambda a: (
            NextHop(DeliveryType.SMART_HOST_CONNECTOR_DELIVERY, "[200.0.0.1]")
            if a.endswith("fabrikam.com")
            else NextHop(DeliveryType.DNS_CONNECTOR_DELIVERY, "tailspin.com")
        )
    )
    shown = {(q.delivery_type, q.next_hop_domain) for q in env.store.get_queues()}
    assert (DeliveryType.SMART_HOST_CONNECTOR_DELIVERY, "[200.0.0.1]") in shown
    assert (DeliveryType.DNS_CONNECTOR_DELIVERY, "tailspin.com") in shown


def test_no_route_goes_to_unreachable(env: Env) -> None:
    env.submit("x@nowhere.example")
    env.categorize(lambda _: UnreachableRoute("no connector for nowhere.example"))
    unreachable = env.store.get_queue(f"{SERVER}\\Unreachable")
    assert (unreachable.delivery_type, unreachable.next_hop_domain) == (
        DeliveryType.UNREACHABLE,
        "Unreachable Domain",
    )
    assert unreachable.message_count == 1
    [msg] = env.store.get_messages(unreachable.identity)
    assert msg.last_error == "no connector for nowhere.example"
    assert msg.identity.startswith(f"{SERVER}\\Unreachable\\")
    assert env.store.due_queues() == []  # nothing leaves Unreachable but by resubmission


def test_unknown_local_recipient_gets_an_ndr_at_once(env: Env) -> None:
    env.submit("ghost@contoso.com", "bob@contoso.com", subject="Plans")
    env.categorize(
        lambda a: FailRecipient(RECIPIENT_NOT_FOUND_REPLY) if a.startswith("ghost") else MAILBOX
    )
    [ndr] = env.reports()
    assert ndr.subject == "Undeliverable: Plans"
    assert ndr.to == "alice@contoso.com"
    assert "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##" in ndr.text
    [report] = [m for m in env.store.get_messages() if m.from_address == "<>"]
    assert report.recipients == ("alice@contoso.com",)
    kinds = [(e.kind, e.tracking) for e in env.events]
    assert (QueueEventKind.FAILED, TrackingEventId.FAIL) in kinds
    assert (QueueEventKind.DSN, TrackingEventId.DSN) in kinds


def test_no_ndr_for_a_null_sender(env: Env) -> None:
    env.submit("ghost@contoso.com", sender="")
    env.categorize(lambda _: FailRecipient(RECIPIENT_NOT_FOUND_REPLY))
    assert env.store.get_messages() == []
    assert env.reports() == []
    assert list((env.home / "queue" / "spool").iterdir()) == []


def test_notify_never_suppresses_the_ndr(env: Env) -> None:
    env.submit("ghost@contoso.com", notify="NEVER")
    env.categorize(lambda _: FailRecipient(RECIPIENT_NOT_FOUND_REPLY))
    assert env.reports() == []


def test_every_recipient_needs_a_decision(env: Env) -> None:
    env.submit("bob@contoso.com", "carol@contoso.com")
    [msg] = env.store.take_for_categorization()
    with pytest.raises(LeaseError, match="missing"):
        env.store.route(msg.item_id, {msg.recipients[0].id: SHANDONG})
    # Nothing moved: the message is still held, whole, in Submission.
    assert env.store.get_message(msg.identity).status is MessageStatus.ACTIVE
    env.store.route(msg.item_id, {r.id: SHANDONG for r in msg.recipients})


def test_special_delivery_types_are_not_next_hops(env: Env) -> None:
    env.submit("bob@contoso.com")
    [msg] = env.store.take_for_categorization()
    with pytest.raises(ValueError, match="not a next hop"):
        env.store.route(msg.item_id, {msg.recipients[0].id: NextHop(DeliveryType.UNDEFINED, "x")})


def test_routing_needs_a_taken_message(env: Env) -> None:
    internal_id = env.submit("bob@contoso.com")
    with pytest.raises(LeaseError):
        env.store.route(internal_id, {})


def test_taken_messages_are_not_taken_twice_and_can_be_released(env: Env) -> None:
    env.submit("bob@contoso.com")
    [msg] = env.store.take_for_categorization()
    assert env.store.get_queue("Submission").status is QueueStatus.ACTIVE
    assert env.store.take_for_categorization() == []
    env.store.release_categorization(msg.item_id)
    assert env.store.get_queue("Submission").status is QueueStatus.READY
    [again] = env.store.take_for_categorization()
    assert again.item_id == msg.item_id


def test_a_suspended_submission_queue_stops_categorization(env: Env) -> None:
    env.store.suspend_queue(f"{SERVER}\\Submission")
    env.submit("bob@contoso.com")  # messages still enter
    assert env.store.take_for_categorization() == []
    assert env.store.get_queue("Submission").status is QueueStatus.SUSPENDED
    env.store.resume_queue(f"{SERVER}\\Submission")
    assert len(env.store.take_for_categorization()) == 1


def test_route_many_routes_a_batch_in_one_commit_and_keeps_a_refused_message_out(
    env: Env,
) -> None:
    for n in range(3):
        env.submit(f"user{n}@contoso.com")
    taken = env.store.take_for_categorization(limit=10)
    assert len(taken) == 3
    routes = {msg.item_id: {r.id: SHANDONG for r in msg.recipients} for msg in taken}
    refused = taken[1].item_id
    routes[refused] = {}  # no decision for its recipient: route() refuses it
    env.events.clear()
    commits = []
    env.store._db().set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    results = env.store.route_many(routes)
    env.store._db().set_trace_callback(None)
    assert commits == ["COMMIT"]  # the whole batch: one transaction
    assert isinstance(results[refused], LeaseError)
    routed = [m.item_id for m in taken if m.item_id != refused]
    assert all(not isinstance(results[i], Exception) for i in routed)
    [site] = [q for q in env.store.get_queues() if q.next_hop_domain == "Shandong"]
    assert site.message_count == 2
    # The refused message is still in Submission, and nothing was said of it.
    assert env.store.get_queue(f"{SERVER}\\Submission").message_count == 1
    routed_events = [e for e in env.events if e.kind is QueueEventKind.ROUTED]
    assert sorted(r for e in routed_events for r in e.recipients) == [
        "user0@contoso.com",
        "user2@contoso.com",
    ]
