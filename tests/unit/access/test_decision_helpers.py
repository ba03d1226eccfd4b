"""The helpers around the decision: host -> entry point, Autodiscover URLs, proxied paths."""

from __future__ import annotations

import pytest

from sitemail.access.autodiscover_urls import AutodiscoverUrls, autodiscover_urls
from sitemail.access.decision import parse_eas_version
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import EntryPoint, normalize_host, resolve_host
from sitemail.access.outcomes import ClientProtocol, Entry, Error, ErrorReason
from sitemail.access.proxy_paths import UnsafeRequestPath, rebase_request_path
from sitemail.org.model import (
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
    default_vdir_name,
    default_vdir_path,
)

K = VirtualDirectoryKind
CAS, MBX = ServerRole.CLIENT_ACCESS, ServerRole.MAILBOX


def vd(server: str, kind: K, internal: str | None, external: str | None) -> VirtualDirectory:
    path = default_vdir_path(kind)
    return VirtualDirectory(
        server=server,
        type=kind,
        name=default_vdir_name(kind),
        internal_url=f"https://{internal}{path}" if internal else None,
        external_url=f"https://{external}{path}" if external else None,
    )


def org(*extra_vdirs: VirtualDirectory, extra_servers: tuple[Server, ...] = ()) -> AccessDirectory:
    servers = (
        Server(name="NY1", fqdn="ny1.contoso.com", site="NY", roles=[MBX, CAS]),
        Server(name="NY2", fqdn="ny2.contoso.com", site="NY", roles=[CAS]),
        Server(name="FL1", fqdn="fl1.contoso.com", site="FL", roles=[MBX, CAS]),
        Server(name="TX1", fqdn="tx1.contoso.com", site="TX", roles=[MBX]),
        Server(
            name="FL07",
            fqdn="fl07.contoso.com",
            site="FL",
            version=ExchangeVersion.E2007,
            roles=[MBX, CAS],
        ),
        Server(
            name="EX2003",
            fqdn="ex2003.contoso.com",
            site="NY",
            version=ExchangeVersion.E2003,
            roles=[MBX],
        ),
        *extra_servers,
    )
    vdirs = []
    for kind in (K.OWA, K.EAS, K.EWS, K.AUTODISCOVER):
        # NY1 and NY2 share the load-balanced name mail.contoso.com.
        vdirs.append(vd("NY1", kind, "ny1.contoso.com", "mail.contoso.com"))
        vdirs.append(vd("NY2", kind, "ny2.contoso.com", "mail.contoso.com"))
        vdirs.append(vd("FL1", kind, "fl1.contoso.com", None))
        vdirs.append(vd("FL07", kind, "fl07.contoso.com", "legacy.contoso.com"))
    dbs = (
        MailboxDatabase(name="NY-DB", server="NY1"),
        MailboxDatabase(name="FL-DB", server="FL1"),
        MailboxDatabase(name="TX-DB", server="TX1"),
        MailboxDatabase(name="FL07-DB", server="FL07"),
        MailboxDatabase(name="EX2003-MBX", server="EX2003"),
    )
    return AccessDirectory(servers, dbs, (*vdirs, *extra_vdirs))


def mbx(alias: str, database: str) -> Mailbox:
    return Mailbox(
        alias=alias,
        display_name=alias,
        primary_smtp_address=f"{alias}@contoso.com",
        database=database,
    )


# ----------------------------------------------------------------- EAS versions


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("14.1", (14, 1)),
        ("2.5", (2, 5)),
        (" 12.1 ", (12, 1)),
        ("12.10", (12, 10)),
        (None, None),
        ("", None),
        ("14", None),
        ("14.1.0", None),
        ("v14.1", None),
        ("14,1", None),
        ("١٤.١", None),  # non-ASCII digits are not a protocol version
    ],
)
def test_parse_eas_version(text: str | None, parsed: tuple[int, int] | None) -> None:
    assert parse_eas_version(text) == parsed


def test_eas_versions_order_numerically() -> None:
    # 12.10 would sort before 12.2 as text; as numbers it is after.
    a, b = parse_eas_version("12.10"), parse_eas_version("12.2")
    assert a is not None and b is not None and a > b


# ------------------------------------------------------------------ host names


@pytest.mark.parametrize(
    ("host", "normalized"),
    [
        ("mail.contoso.com", "mail.contoso.com"),
        ("Mail.Contoso.COM", "mail.contoso.com"),
        ("mail.contoso.com.", "mail.contoso.com"),
        ("mail.contoso.com:8443", "mail.contoso.com"),
        ("[::1]:443", "::1"),
        ("127.1.0.11", "127.1.0.11"),
        ("", None),
        ("   ", None),
        ("user@mail.contoso.com", None),
        ("mail.contoso.com/owa", None),
        ("mail.contoso.com?x", None),
        ("mail.contoso.com:99999", None),
        ("mail.contoso.com:http", None),
    ],
)
def test_normalize_host(host: str, normalized: str | None) -> None:
    assert normalize_host(host) == normalized


def test_external_name_of_a_cas_array_resolves_to_the_first_cas_by_name() -> None:
    assert resolve_host(org(), "mail.contoso.com", kind=K.EAS) == EntryPoint(
        server="NY1",
        vdir="NY1\\Microsoft-Server-ActiveSync (Default Web Site)",
        kind=K.EAS,
        entry=Entry.EXTERNAL,
        url="https://mail.contoso.com/Microsoft-Server-ActiveSync",
    )


def test_the_receiving_server_narrows_a_shared_name() -> None:
    ep = resolve_host(org(), "MAIL.contoso.com:443", kind=K.OWA, server="ny2")
    assert ep is not None and (ep.server, ep.entry) == ("NY2", Entry.EXTERNAL)
    assert resolve_host(org(), "mail.contoso.com", server="FL1") is None


def test_internal_name_is_an_internal_entry() -> None:
    ep = resolve_host(org(), "fl1.contoso.com", kind=K.EWS)
    assert ep is not None
    assert (ep.server, ep.kind, ep.entry) == ("FL1", K.EWS, Entry.INTERNAL)


def test_without_a_kind_the_first_kind_is_taken() -> None:
    ep = resolve_host(org(), "fl1.contoso.com")
    assert ep is not None and ep.kind == K.OWA


def test_a_name_on_both_urls_counts_as_external() -> None:
    both = vd("FL1", K.OAB, "shared.contoso.com", "shared.contoso.com")
    ep = resolve_host(org(both), "shared.contoso.com")
    assert ep is not None and ep.entry == Entry.EXTERNAL


@pytest.mark.parametrize(
    "host", ["unknown.example", "contoso.com", "mail.contoso.com.evil.example", "", "a b"]
)
def test_unknown_names_resolve_to_nothing(host: str) -> None:
    assert resolve_host(org(), host) is None


def test_a_kind_the_name_does_not_serve_resolves_to_nothing() -> None:
    assert resolve_host(org(), "mail.contoso.com", kind=K.ECP) is None


def test_a_snapshot_answers_a_name_again_the_same_and_keeps_a_bounded_memo() -> None:
    """resolve_host keeps its answers with the snapshot: asked again, in another spelling or
    for another server, it answers as it did the first time, and a flood of Host headers
    that name nothing does not grow what the snapshot keeps beyond its bound."""
    from sitemail.access.directory_view import MEMO_SIZE

    snap = org()
    first = resolve_host(snap, "mail.contoso.com", kind=K.OWA, server="NY2")
    assert resolve_host(snap, "MAIL.Contoso.com.:443", kind=K.OWA, server="ny2") == first
    assert first is not None and first.server == "NY2"
    assert resolve_host(snap, "mail.contoso.com", kind=K.OWA, server="NY1") != first
    assert resolve_host(snap, "mail.contoso.com", kind=K.OWA, server="FL1") is None
    for n in range(MEMO_SIZE + 50):
        assert resolve_host(snap, f"h{n}.example", kind=K.OWA) is None
    assert len(snap.memo) <= MEMO_SIZE
    assert resolve_host(snap, "mail.contoso.com", kind=K.OWA, server="NY2") == first
    assert snap == org()  # the memo is no part of the value


# ------------------------------------------------------------------ Autodiscover


def test_autodiscover_for_a_non_internet_facing_site_prefers_the_answering_cas() -> None:
    got = autodiscover_urls(org(), mailbox=mbx("adam", "FL-DB"), kind=K.EAS, answering_cas="NY2")
    assert got == AutodiscoverUrls(
        kind=K.EAS,
        internal_url="https://fl1.contoso.com/Microsoft-Server-ActiveSync",
        internal_server="FL1",
        external_url="https://mail.contoso.com/Microsoft-Server-ActiveSync",
        external_server="NY2",
    )


def test_autodiscover_falls_back_to_the_first_internet_facing_cas() -> None:
    # FL1 answers itself and has no ExternalUrl: NY1 (site NY, first by name) is named.
    got = autodiscover_urls(org(), mailbox=mbx("adam", "FL-DB"), kind=K.OWA, answering_cas="FL1")
    assert isinstance(got, AutodiscoverUrls)
    assert (got.external_url, got.external_server) == ("https://mail.contoso.com/owa", "NY1")


def test_autodiscover_without_that_kind_of_vdir_in_the_mailbox_site() -> None:
    got = autodiscover_urls(org(), mailbox=mbx("adam", "FL-DB"), kind=K.OAB)
    assert isinstance(got, Error)
    assert got.reason == ErrorReason.NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE
    assert got.server == "FL1" and "OAB" in got.message and "site FL" in got.message


def test_autodiscover_with_no_external_url_anywhere_leaves_it_out() -> None:
    oab = vd("FL1", K.OAB, "fl1.contoso.com", None)
    got = autodiscover_urls(org(oab), mailbox=mbx("adam", "FL-DB"), kind=K.OAB)
    assert got == AutodiscoverUrls(
        kind=K.OAB,
        internal_url="https://fl1.contoso.com/OAB",
        internal_server="FL1",
        external_url=None,
        external_server=None,
    )


def test_autodiscover_for_a_2007_mailbox_names_the_2007_cas() -> None:
    got = autodiscover_urls(org(), mailbox=mbx("gary", "FL07-DB"), kind=K.OWA)
    assert isinstance(got, AutodiscoverUrls)
    assert (got.internal_server, got.external_url) == ("FL07", "https://legacy.contoso.com/owa")


def test_autodiscover_for_a_2003_mailbox_names_the_2010_cas_that_fronts_it() -> None:
    got = autodiscover_urls(
        org(), mailbox=mbx("larry", "EX2003-MBX"), kind=K.EAS, answering_cas="NY2"
    )
    assert isinstance(got, AutodiscoverUrls) and got.internal_server == "NY2"
    got = autodiscover_urls(org(), mailbox=mbx("larry", "EX2003-MBX"), kind=K.EAS)
    assert isinstance(got, AutodiscoverUrls) and got.internal_server == "NY1"


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("", ErrorReason.NO_HOME_MDB),
        ("NOPE", ErrorReason.DATABASE_NOT_FOUND),
        ("TX-DB", ErrorReason.NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE),
    ],
)
def test_autodiscover_errors(database: str, reason: ErrorReason) -> None:
    got = autodiscover_urls(org(), mailbox=mbx("zoe", database), kind=K.EWS)
    assert isinstance(got, Error) and got.reason == reason
    assert got.protocol == ClientProtocol.AUTODISCOVER


# ----------------------------------------------------------------- proxied paths

FL_OWA = "https://fl1.contoso.com/owa"


@pytest.mark.parametrize(
    ("target", "entry", "request_target", "expected"),
    [
        (FL_OWA, "/owa", "/owa", "https://fl1.contoso.com/owa"),
        (FL_OWA, "/owa", "/owa/", "https://fl1.contoso.com/owa/"),
        (
            FL_OWA,
            "/owa",
            "/OWA/ev.owa?ns=Mail&x=1",
            "https://fl1.contoso.com/owa/ev.owa?ns=Mail&x=1",
        ),
        (FL_OWA, "/owa/", "/owa/auth/logon.aspx", "https://fl1.contoso.com/owa/auth/logon.aspx"),
        (
            "https://fl1.contoso.com:8443/Microsoft-Server-ActiveSync",
            "/Microsoft-Server-ActiveSync",
            "/Microsoft-Server-ActiveSync?Cmd=Sync&User=adam",
            "https://fl1.contoso.com:8443/Microsoft-Server-ActiveSync?Cmd=Sync&User=adam",
        ),
        (FL_OWA, "", "/owa/x", "https://fl1.contoso.com/owa/owa/x"),
        (FL_OWA, "/owa", "/owa/a%20b", "https://fl1.contoso.com/owa/a%20b"),
    ],
)
def test_rebase_keeps_the_path_below_the_virtual_directory(
    target: str, entry: str, request_target: str, expected: str
) -> None:
    assert rebase_request_path(target, entry, request_target) == expected


@pytest.mark.parametrize(
    "request_target",
    [
        "https://evil.example/owa",
        "//evil.example/owa",
        "owa/x",
        "/owa/../ecp",
        "/owa/%2e%2e/ecp",
        "/owa/./x",
        "/owa/%2fevil",
        "/owa\\..\\ecp",
        "/owa/x y",
        "/owa/x\r\nHost: evil",
        "/owa#frag",
        "/owa/%00",
        "/owax",
        "/ecp/",
        "",
    ],
)
def test_rebase_refuses_paths_that_could_leave_the_target(request_target: str) -> None:
    with pytest.raises(UnsafeRequestPath):
        rebase_request_path(FL_OWA, "/owa", request_target)


def test_the_front_doors_decision_log_answers_as_decide_does_for_every_mailbox() -> None:
    """The front door keeps a decision with the snapshot, by what it reads of the mailbox
    (alias and homeMDB): a moved mailbox or another user is decided again."""
    from sitemail.access.decision import decide
    from sitemail.access.web.common import RequestContext
    from sitemail.access.web.decision_log import DecisionLog
    from sitemail.clock import SYSTEM_CLOCK

    snap = org()
    entry = resolve_host(snap, "mail.contoso.com", kind=K.OWA, server="NY1")
    assert entry is not None
    vdir = next(v for v in snap.virtual_directories if v.identity == entry.vdir)
    ctx = RequestContext(
        host="mail.contoso.com", entry=entry, vdir=vdir, subpath="/", snapshot=snap, peer=None
    )
    log = DecisionLog("NY1", None, SYSTEM_CLOCK)
    for mailbox in (mbx("adam", "FL-DB"), mbx("adam", "NY-DB"), mbx("bob", "FL-DB")):
        expected = decide(
            snap, protocol=ClientProtocol.OWA, cas="NY1", mailbox=mailbox, entry=entry.entry
        )
        assert log.decide(ctx, ClientProtocol.OWA, mailbox) == expected
        assert log.decide(ctx, ClientProtocol.OWA, mailbox) == expected  # kept, the same
    moved = log.decide(ctx, ClientProtocol.OWA, mbx("adam", "NY-DB"))
    assert moved != log.decide(ctx, ClientProtocol.OWA, mbx("adam", "FL-DB"))
