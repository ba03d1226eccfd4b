"""The LDAP directory as people and other servers see it: ldapsearch, change notification, crashes.

One real slapd for the module, set up as docs/directory.md says: sitemail's
schema, a service account that writes, and everyone else reading the AD
attributes but not sitemail's JSON (which holds password hashes).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.slapd import Slapd

from sitemail.org.directory import open_directory
from sitemail.org.ldap_directory import LdapDirectory
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import Mailbox, ReceiveConnector, Site
from sitemail.org.topology import Topology
from sitemail.server.watcher import DirectoryWatcher

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SUFFIX = "DC=contoso,DC=com"
SERVICE = f"CN=sitemail,CN=Users,{SUFFIX}"
# The access rules docs/directory.md recommends.
ACCESS = f"""\
access to attrs=sitemailObject,sitemailChange,sitemailChangeData,userPassword
    by dn.exact="{SERVICE}" write
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE}" write
    by * read
limits dn.exact="{SERVICE}" size=unlimited time=unlimited
"""


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"), SUFFIX, database_conf=ACCESS)
    server.start()
    server.add(SUFFIX, ["domain"], {"dc": "contoso"})
    server.add_account("sitemail", "Service-Pa55")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service_url(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> str:
    secret = tmp_path_factory.mktemp("secret") / "password"
    secret.write_text("Service-Pa55\n")
    return (
        f"ldap://127.0.0.1:{slapd.port}/{SUFFIX}?bind={SERVICE}&password_file={secret}&org=Contoso"
    )


@pytest.fixture(scope="module")
def seeded(service_url: str) -> str:
    d = open_directory(service_url)
    with d.transaction():
        for obj in Topology.load(EXAMPLES / "seed.yaml").objects(hash_passwords=True):
            d.put(obj)
    d.close()
    return service_url


def ldapsearch(slapd: Slapd, base: str, filt: str, *attrs: str) -> list[dict[str, list[str]]]:
    """Run the real ldapsearch anonymously, as an administrator would; its entries."""
    server = f"ldap://127.0.0.1:{slapd.port}"
    out = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", server, "-b", base, filt, *attrs],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    entries = []
    for block in filter(None, out.strip().split("\n\n")):
        entry: dict[str, list[str]] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            entry.setdefault(name.lower(), []).append(value)
        entries.append(entry)
    return entries


def test_ldapsearch_shows_receive_connectors_as_exchange_lays_them_out(
    slapd: Slapd, seeded: str
) -> None:
    entries = ldapsearch(
        slapd, f"CN=Configuration,{SUFFIX}", "(objectClass=msExchSmtpReceiveConnector)"
    )
    by_name = {e["cn"][0]: e for e in entries}
    assert {"Default EX-NY1", "Internet EX-NY1", "Default EX-FL1"} <= set(by_name)
    internet = by_name["Internet EX-NY1"]
    assert internet["dn"] == [
        "cn=Internet EX-NY1,cn=SMTP Receive Connectors,cn=Protocols,cn=EX-NY1,cn=Servers,"
        "cn=Exchange Administrative Group (FYDIBOHF23SPDLT),cn=Administrative Groups,"
        "cn=Contoso,cn=Microsoft Exchange,cn=Services,cn=Configuration,dc=contoso,dc=com"
    ]
    assert internet["msexchsmtpreceivebindings"] == ["0.0.0.0:25"]
    assert internet["msexchsmtpreceiveremoteipranges"] == ["127.99.0.0/16"]
    assert internet["sitemailauthmechanism"] == ["Tls"]
    assert internet["msexchsmtpreceivesecurityflags"] == ["1"]
    assert internet["sitemailpermissiongroups"] == ["AnonymousUsers"]
    assert by_name["Default EX-FL1"]["sitemailauthmechanism"] == [
        "Tls",
        "Integrated",
        "BasicAuth",
        "BasicAuthRequireTLS",
        "ExchangeServer",
    ]
    # sitemail's own JSON copy stays with the service account.
    assert "sitemailobject" not in internet


def test_ldapsearch_shows_users_sites_and_virtual_directories_with_ad_names(
    slapd: Slapd, seeded: str
) -> None:
    [adam] = ldapsearch(slapd, SUFFIX, "(sAMAccountName=adam)")
    assert adam["dn"] == ["cn=adam,cn=Users,dc=contoso,dc=com"]
    assert adam["homemdb"] == [
        "cn=FL-DB1,cn=Databases,cn=Exchange Administrative Group (FYDIBOHF23SPDLT),"
        "cn=Administrative Groups,cn=Contoso,cn=Microsoft Exchange,cn=Services,"
        "cn=Configuration,dc=contoso,dc=com"
    ]
    assert adam["msexchhomeservername"] == [
        "/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration"
        "/cn=Servers/cn=EX-FL1"
    ]
    assert adam["legacyexchangedn"] == [
        "/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=adam"
    ]
    assert adam["proxyaddresses"] == ["SMTP:adam@contoso.com"]
    assert adam["msexchversion"] == ["44220983382016"]
    [larry] = ldapsearch(slapd, SUFFIX, "(sAMAccountName=larry)")
    assert "msexchversion" not in larry  # a mailbox on Exchange 2003
    assert "sitemailobject" not in adam and "userpassword" not in adam

    [link] = ldapsearch(slapd, f"CN=Sites,CN=Configuration,{SUFFIX}", "(objectClass=siteLink)")
    assert link["dn"] == [
        "cn=NY-FL,cn=IP,cn=Inter-Site Transports,cn=Sites,cn=Configuration,dc=contoso,dc=com"
    ]
    assert link["cost"] == ["100"]
    assert len(link["sitelist"]) == 2

    owa = {
        e["dn"][0].split(",")[3]: e
        for e in ldapsearch(slapd, SUFFIX, "(objectClass=msExchOWAVirtualDirectory)")
    }
    assert owa["cn=EX-NY1"]["msexchexternalhostname"] == ["https://mail.contoso.com/owa"]
    assert "msexchexternalhostname" not in owa["cn=EX-FL1"]  # ExternalUrl $null
    assert owa["cn=EX-FL1"]["msexchinternalhostname"][0].startswith("https://")

    [server] = ldapsearch(slapd, SUFFIX, "(&(objectClass=msExchExchangeServer)(cn=EX-NY1))")
    assert server["msexchcurrentserverroles"] == ["38"]  # Mailbox 2 + ClientAccess 4 + Hub 32
    assert server["serialnumber"] == ["Version 14.3 (Build 123.4)"]
    assert server["msexchserversite"] == ["cn=NY,cn=Sites,cn=Configuration,dc=contoso,dc=com"]
    [domain] = ldapsearch(slapd, SUFFIX, "(objectClass=msExchAcceptedDomain)")
    assert domain["msexchaccepteddomainname"] == ["contoso.com"]
    assert domain["sitemaildefault"] == ["TRUE"]


def test_account_lockout_shows_as_ads_bad_password_attributes(slapd: Slapd, seeded: str) -> None:
    d = open_directory(seeded)
    lockouts = AccountLockouts(d)
    for _ in range(5):
        lockouts.failed("bob")
    [entry] = ldapsearch(slapd, SUFFIX, "(&(objectClass=sitemailAccountLockout)(cn=bob))")
    assert entry["badpwdcount"] == ["5"]
    # FILETIME: 100 ns ticks since 1601, so about 1.3e17 in this century.
    assert 10**17 < int(entry["lockouttime"][0]) < 2 * 10**17
    assert lockouts.locked_for("bob") > 0
    assert lockouts.unlock("bob")
    assert ldapsearch(slapd, SUFFIX, "(&(objectClass=sitemailAccountLockout)(cn=bob))") == []
    d.close()


def test_a_server_sees_another_servers_change_within_a_second(seeded: str) -> None:
    writer, reader = open_directory(seeded), open_directory(seeded)

    async def scenario() -> float:
        seen = asyncio.Event()

        async def changed(kinds: set[str]) -> None:
            seen.set()

        watcher = DirectoryWatcher(reader, interval=0.1)
        watcher.subscribe({"ReceiveConnector"}, changed)
        watcher.start()
        start = time.monotonic()
        rc = writer.require(ReceiveConnector, "EX-FL1\\Default EX-FL1")
        writer.put(rc.model_copy(update={"banner": "220 changed"}))
        await asyncio.wait_for(seen.wait(), 5)
        await watcher.stop()
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 1.0
    assert reader.require(ReceiveConnector, "EX-FL1\\Default EX-FL1").banner == "220 changed"
    writer.close()
    reader.close()


def test_polling_for_changes_reads_the_counter_not_the_objects(seeded: str) -> None:
    d = open_directory(seeded)
    assert isinstance(d, LdapDirectory)
    calls: list[str] = []
    original = d._ldap.call

    def counting(what, op):  # type: ignore[no-untyped-def]
        calls.append(what)
        return original(what, op)

    d._ldap.call = counting  # type: ignore[method-assign]
    assert d.changes_since(d.change_counter()) == []
    assert calls == ["reading the change counter", "reading the change counter"]
    d.close()


# ------------------------------------------------------------- writers that die


def _die_mid_commit(url: str) -> None:
    """Commit two objects, and die (as kill -9 would) after writing the first entry."""
    d = open_directory(url)
    assert isinstance(d, LdapDirectory)
    upsert = d.writer.upsert

    def then_die(entry):  # type: ignore[no-untyped-def]
        upsert(entry)
        os._exit(9)

    d.writer.upsert = then_die  # type: ignore[method-assign]
    with d.transaction():
        d.put(Site(name="HALF-1"))
        d.put(Site(name="HALF-2"))


def _die_mid_transaction(url: str) -> None:
    d = open_directory(url)
    with d.transaction():
        d.put(Site(name="NEVER"))
        os._exit(9)


def _run(target: object, url: str) -> int | None:
    p = multiprocessing.get_context("spawn").Process(target=target, args=(url,))
    p.start()
    p.join(60)
    return p.exitcode


def test_a_writer_killed_after_its_commit_point_is_completed_by_the_next(seeded: str) -> None:
    url = seeded + "&lease=0.5"
    d = open_directory(url)
    start = d.change_counter()
    assert _run(_die_mid_commit, url) == 9
    # The dead writer's lock and its half-written change set are still there ...
    assert d.get(Site, "HALF-1") is not None
    assert d.get(Site, "HALF-2") is None
    assert d.changes_since(start) == []
    # ... until the next writer takes over the lock (after the lease) and completes it.
    begun = time.monotonic()
    d.put(Site(name="NEXT"))
    assert 0.4 < time.monotonic() - begun < 5
    assert {"HALF-1", "HALF-2", "NEXT"} <= {s.name for s in d.list(Site)}
    assert [c.identity for c in d.changes_since(start)] == ["HALF-1", "HALF-2", "NEXT"]
    assert d.change_counter() == start + 3
    d.close()


def test_a_writer_killed_before_its_commit_point_leaves_nothing(seeded: str) -> None:
    url = seeded + "&lease=0.5"
    d = open_directory(url)
    start = d.change_counter()
    assert _run(_die_mid_transaction, url) == 9
    d.put(Site(name="AFTER"))
    assert d.get(Site, "NEVER") is None
    assert [c.identity for c in d.changes_since(start)] == ["AFTER"]
    d.close()


def test_a_mailbox_written_before_its_database_has_no_home_server_yet(service_url: str) -> None:
    d = open_directory(service_url)
    d.put(
        Mailbox(
            alias="early",
            display_name="Early",
            primary_smtp_address="e@contoso.com",
            database="NO-SUCH-DB",
        )
    )
    assert d.require(Mailbox, "early").database == "NO-SUCH-DB"
    d.delete(Mailbox, "early")
    d.close()


def test_a_change_set_the_server_refuses_does_not_stop_later_writers(
    slapd: Slapd, seeded: str
) -> None:
    d = open_directory(seeded)
    assert isinstance(d, LdapDirectory)
    n = d.change_counter() + 1
    # As a writer that died would leave it: committed, not written, and not writable.
    bad = {
        "n": n,
        "kind": "Site",
        "identity": "BAD",
        "op": "put",
        "view": None,
        "entries": [[f"CN=BAD,{d.layout.sites}", ["site"], {"noSuchAttribute": ["x"]}]],
    }
    slapd.add(
        f"CN={n},{d.layout.change_log}",
        ["sitemailChangeSet"],
        {
            "sitemailChangeFirst": str(n),
            "sitemailChangeNumber": str(n),
            "sitemailWriter": "dead writer",
            "sitemailChange": json.dumps({k: bad[k] for k in ("n", "kind", "identity", "op")}),
            "sitemailChangeData": json.dumps(bad),
        },
    )
    d.put(Site(name="GOOD"))
    assert d.get(Site, "GOOD") is not None and d.get(Site, "BAD") is None
    assert [c.identity for c in d.changes_since(n - 1)] == ["BAD", "GOOD"]
    d.close()
