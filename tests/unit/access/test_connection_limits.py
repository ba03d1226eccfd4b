"""POP3/IMAP4 connection limits: MaxConnections, MaxConnectionFromSingleIP, MaxConnectionsPerUser,
and sitemail's bound on connections of one address that have not signed in."""

from __future__ import annotations

from sitemail.access.connection_limits import ConnectionTable, Limits, Refusal, Slot


def admitted(table: ConnectionTable, address: str) -> Slot:
    slot = table.open(address)
    assert isinstance(slot, Slot), slot
    return slot


def test_one_address_cannot_hold_the_server_before_signing_in() -> None:
    table = ConnectionTable(Limits(max_unauthenticated_from_single_ip=3))
    waiting = [admitted(table, "198.51.100.9") for _ in range(3)]
    assert table.open("198.51.100.9") is Refusal.UNAUTHENTICATED
    admitted(table, "192.0.2.20")  # everyone else still gets in
    # Signing in frees the address's waiting place; closing frees it too.
    assert waiting[0].sign_in("adam")
    admitted(table, "198.51.100.9")
    waiting[1].close()
    admitted(table, "198.51.100.9")
    assert table.open("198.51.100.9") is Refusal.UNAUTHENTICATED


def test_the_organization_servers_are_not_held_to_the_unauthenticated_bound() -> None:
    table = ConnectionTable(
        Limits(max_unauthenticated_from_single_ip=1), trusted={"10.0.0.5"}.__contains__
    )
    admitted(table, "10.0.0.5")
    admitted(table, "10.0.0.5")
    assert table.open("10.0.0.6") is not Refusal.UNAUTHENTICATED
    assert table.open("10.0.0.6") is Refusal.UNAUTHENTICATED


def test_exchange_limits_on_the_server_the_address_and_the_user() -> None:
    table = ConnectionTable(
        Limits(max_connections=4, max_connection_from_single_ip=3, max_connections_per_user=2)
    )
    a, b, c = (admitted(table, "192.0.2.1") for _ in range(3))
    assert table.open("192.0.2.1") is Refusal.ADDRESS
    d = admitted(table, "192.0.2.2")
    assert table.open("192.0.2.3") is Refusal.SERVER
    assert a.sign_in("adam") and b.sign_in("ADAM")
    assert not c.sign_in("adam")  # the user's third connection
    assert c.sign_in("bob") and d.sign_in("carol")
    assert table.users("adam") == 2
    a.close()
    a.close()  # closing twice counts once
    assert table.users("adam") == 1 and table.total == 3
    assert admitted(table, "192.0.2.3").sign_in("adam")
