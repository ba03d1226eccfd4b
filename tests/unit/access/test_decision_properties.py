"""Properties of the decision that hold for any organization (hypothesis).

The generated organizations mix sites, versions, roles, virtual directories
with or without URLs (some without a usable host), authentication settings,
POP3/IMAP4 settings and mailboxes whose homeMDB may lead nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitemail.access.decision import decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import resolve_host
from sitemail.access.outcomes import (
    ClientProtocol,
    Entry,
    Error,
    ErrorReason,
    Legacy,
    Outcome,
    Proxy,
    Redirect,
    ServeLocally,
)
from sitemail.access.proxy_paths import UnsafeRequestPath, rebase_request_path
from sitemail.org.model import (
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    PopImapSettings,
    RedirectType,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
    default_vdir_name,
    default_vdir_path,
)

P = ClientProtocol
E10, E07, E03 = ExchangeVersion.E2010, ExchangeVersion.E2007, ExchangeVersion.E2003
# Two main sites and a rare third one (often without any CAS).
SITES = ["S1", "S2", "S1", "S2", "S3"]
NAMES = ["A1", "B2", "C3", "D4", "E5"]
HOSTS = ["h1.example", "h2.example", "h3.example"]
LOCATION_REASONS = {
    ErrorReason.NO_HOME_MDB,
    ErrorReason.DATABASE_NOT_FOUND,
    ErrorReason.MAILBOX_SERVER_NOT_FOUND,
}


def _urls(kind: VirtualDirectoryKind) -> st.SearchStrategy[str | None]:
    path = default_vdir_path(kind)
    usable = [f"{scheme}://{host}{path}" for host in HOSTS for scheme in ("https", "http")]
    # Mostly usable URLs; sometimes $null, sometimes a URL with no host (never a target).
    return st.sampled_from([*usable, None, f"https://{path}", *usable])


# Built once: hypothesis validates a strategy the first time it draws from it,
# and rebuilding them for every draw made the suite twenty times slower.
URLS = {kind: _urls(kind) for kind in VirtualDirectoryKind}
SITE = st.sampled_from(SITES)
# Weighted towards 2010 Client Access servers with virtual directories, so that
# cross-site proxying and redirection (the interesting cases) come up often.
VERSION = st.sampled_from([E10, E10, E07, E03, E10, E10])
MBX, CAS, HUB = ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT
ROLES = st.sampled_from([[MBX, CAS, HUB], [MBX, CAS], [CAS], [CAS, HUB], [MBX], [MBX, HUB], []])
HAS_VDIR = st.sampled_from([True, True, True, True, False])
REDIRECT_TYPE = st.sampled_from(list(RedirectType))
EXCHANGE2003_URL = st.sampled_from([None, "https://legacy.example/exchange"])
POP_IMAP = st.lists(st.sampled_from(["POP3", "IMAP4"]), unique=True)
PROXY_TARGET_PORT = st.sampled_from([110, 143, 1110])
NAME_LISTS = st.lists(st.sampled_from(NAMES), min_size=2, max_size=5, unique=True)
BOOL = st.booleans()
MOSTLY = st.sampled_from([True, True, False, True, True])
# Hypothesis favours the ends of a list, so the rare value sits in the middle.
RARE = st.sampled_from([False, False, False, True, False, False, False])


@st.composite
def organizations(draw: st.DrawFn) -> AccessDirectory:
    # Always a 2010 Client Access server in S1 to take requests, and a server in
    # S2, so that cross-site requests are common.
    names = draw(NAME_LISTS)
    servers = [
        Server(
            name=name,
            fqdn=f"{name.lower()}.example",
            site=["S1", "S2"][i] if i < 2 else draw(SITE),
            version=E10 if i == 0 else draw(VERSION),
            roles=[CAS, *draw(ROLES)] if i == 0 else draw(ROLES),
        )
        for i, name in enumerate(names)
    ]
    databases = [MailboxDatabase(name=f"{s.name}-DB", server=s.name) for s in servers]
    databases.append(MailboxDatabase(name="ORPHAN-DB", server="GHOST"))
    vdirs: list[VirtualDirectory] = []
    pop: list[PopImapSettings] = []
    for s in servers:
        for kind in [k for k in VirtualDirectoryKind if draw(HAS_VDIR)]:
            vdirs.append(
                VirtualDirectory(
                    server=s.name,
                    type=kind,
                    name=default_vdir_name(kind),
                    internal_url=draw(URLS[kind]),
                    external_url=draw(URLS[kind]),
                    forms_authentication=draw(BOOL),
                    windows_authentication=draw(MOSTLY),
                    cross_site_redirect_type=draw(REDIRECT_TYPE),
                    legacy_redirect_type=draw(REDIRECT_TYPE),
                    exchange2003_url=draw(EXCHANGE2003_URL),
                )
            )
        for protocol in draw(POP_IMAP):
            pop.append(
                PopImapSettings(
                    server=s.name,
                    protocol=protocol,
                    unencrypted_or_tls_bindings=["0.0.0.0:110"],
                    ssl_bindings=["0.0.0.0:995"],
                    proxy_target_port=draw(PROXY_TARGET_PORT),
                    enabled=draw(BOOL),
                )
            )
    return AccessDirectory(tuple(servers), tuple(databases), tuple(vdirs), tuple(pop))


PROTOCOL = st.sampled_from(list(ClientProtocol))
ENTRY = st.sampled_from(list(Entry))
EAS_VERSION = st.one_of(st.none(), st.sampled_from(["2.5", "12.0", "12.1", "14.1"]), st.text())


@dataclass(frozen=True)
class Request:
    protocol: ClientProtocol
    cas: str
    mailbox: Mailbox
    entry: Entry
    eas: str | None


def cas_names(d: AccessDirectory) -> list[str]:
    return [s.name for s in d.client_access_servers(E10)]


@st.composite
def cases(draw: st.DrawFn) -> tuple[AccessDirectory, Request]:
    d = draw(organizations())
    # Mostly a request to a 2010 CAS for a mailbox whose homeMDB resolves; now
    # and then a server that is no 2010 CAS, or a homeMDB that leads nowhere.
    if draw(RARE):
        cas = draw(st.sampled_from([*[s.name for s in d.servers], "GHOST"]))
    else:
        cas = draw(st.sampled_from(cas_names(d)))
    if draw(RARE):
        database = draw(st.sampled_from(["", "NOPE", "ORPHAN-DB"]))
    else:
        database = draw(st.sampled_from([db.name for db in d.databases if db.name != "ORPHAN-DB"]))
    mailbox = Mailbox(
        alias="user", display_name="User", primary_smtp_address="user@x.example", database=database
    )
    request = Request(
        protocol=draw(PROTOCOL),
        cas=cas,
        mailbox=mailbox,
        entry=draw(ENTRY),
        eas=draw(EAS_VERSION),
    )
    return d, request


def run(d: AccessDirectory, r: Request) -> Outcome:
    return decide(
        d,
        protocol=r.protocol,
        cas=r.cas,
        mailbox=r.mailbox,
        entry=r.entry,
        eas_protocol_version=r.eas,
    )


def mailbox_server(d: AccessDirectory, r: Request) -> Server | None:
    db = d.database(r.mailbox.database) if r.mailbox.database.strip() else None
    return d.server(db.server) if db is not None else None


def cas_vdirs(
    d: AccessDirectory, r: Request, version: ExchangeVersion, site: str
) -> list[VirtualDirectory]:
    """Vdirs of the request's kind on CAS servers of that version in that site."""
    kind = r.protocol.vdir_kind
    out = []
    for v in d.virtual_directories:
        s = d.server(v.server)
        if (
            s is not None
            and v.type == kind
            and s.version == version
            and s.site == site
            and s.has_role(ServerRole.CLIENT_ACCESS)
        ):
            out.append(v)
    return out


def check_proxy(d: AccessDirectory, r: Request, proxy: Proxy, home: Server) -> None:
    target = d.server(proxy.target_server)
    assert target is not None
    if proxy.target_url is None:
        # POP3/IMAP4: a server of the directory, by its FQDN.
        assert r.protocol.is_pop_imap
        assert proxy.host == target.fqdn
        return
    assert not r.protocol.is_pop_imap
    assert urlsplit(proxy.target_url).hostname == proxy.host
    if proxy.target_version == E03:
        # Straight to the mailbox's own 2003 back-end.
        assert target.name == home.name
        own = [
            v.internal_url
            for v in d.virtual_directories
            if v.server == home.name and v.type == VirtualDirectoryKind.EAS
        ]
        assert proxy.target_url in (own or [f"https://{home.fqdn}/Microsoft-Server-ActiveSync"])
        return
    # Always some vdir's InternalUrl, on a CAS of the mailbox's site and version,
    # with Windows authentication (which CAS-to-CAS proxying needs).
    candidates = [
        v
        for v in cas_vdirs(d, r, proxy.target_version, home.site)
        if v.server == proxy.target_server
    ]
    assert any(v.internal_url == proxy.target_url and v.windows_authentication for v in candidates)


def check_targets_come_from_the_directory(d: AccessDirectory, r: Request, got: Outcome) -> None:
    """Redirects go to ExternalUrls, proxies to InternalUrls (or server FQDNs) of the directory."""
    home = mailbox_server(d, r)
    if isinstance(got, Redirect):
        # Always a 2010 vdir's ExternalUrl in the mailbox's site, for OWA/ECP/EAS only,
        # and only for requests that came in on an ExternalUrl.
        assert home is not None
        assert r.protocol in (P.OWA, P.ECP, P.EAS)
        assert r.entry == Entry.EXTERNAL
        externals = {v.external_url for v in cas_vdirs(d, r, E10, home.site)}
        assert got.url in externals
    elif isinstance(got, Proxy):
        assert home is not None
        check_proxy(d, r, got, home)
    elif isinstance(got, Legacy):
        assert home is not None and home.version == got.mailbox_version
        if isinstance(got.action, Redirect):
            allowed = {v.external_url for v in cas_vdirs(d, r, E07, home.site)} | {
                v.exchange2003_url for v in d.virtual_directories if v.server == r.cas
            }
            assert got.action.url in allowed
        else:
            check_proxy(d, r, got.action, home)
    else:
        assert isinstance(got, ServeLocally | Error)


def check_pop_imap_are_never_redirected(d: AccessDirectory, r: Request) -> None:
    for protocol in (P.POP3, P.IMAP4):
        got = run(d, Request(protocol, r.cas, r.mailbox, r.entry, r.eas))
        assert not isinstance(got, Redirect)
        if isinstance(got, Legacy):
            assert isinstance(got.action, Proxy)
        if isinstance(got, Proxy):
            assert got.target_url is None


def check_same_site_2010_mailboxes_are_served_locally(
    d: AccessDirectory, r: Request, got: Outcome
) -> None:
    home = mailbox_server(d, r)
    cas = d.server(r.cas)
    receiving_is_2010_cas = (
        cas is not None and cas.version == E10 and cas.has_role(ServerRole.CLIENT_ACCESS)
    )
    if (
        receiving_is_2010_cas
        and home is not None
        and cas is not None
        and home.version == E10
        and home.site == cas.site
    ):
        assert got == ServeLocally(
            protocol=r.protocol, mailbox_server=home.name, database=r.mailbox.database
        )
    # ... and nothing else is served locally (Autodiscover aside: it is always answered),
    # but for a 2007 CAS's own site's 2007 mailboxes (it serves them as 2010 serves its own).
    if isinstance(got, ServeLocally) and r.protocol != P.AUTODISCOVER:
        assert home is not None and cas is not None
        assert home.site == cas.site
        assert home.version == cas.version and home.version in (E10, E07)


def check_unlocatable_mailbox_is_an_error(d: AccessDirectory, r: Request, got: Outcome) -> None:
    if mailbox_server(d, r) is None:
        assert isinstance(got, Error)
    if isinstance(got, Error) and got.reason in LOCATION_REASONS:
        assert mailbox_server(d, r) is None


@settings(max_examples=300, deadline=None)
@given(cases())
def test_properties_of_any_organization(case: tuple[AccessDirectory, Request]) -> None:
    # One generated case feeds every property: drawing organizations is what costs.
    d, r = case
    got = run(d, r)
    check_targets_come_from_the_directory(d, r, got)
    check_pop_imap_are_never_redirected(d, r)
    check_same_site_2010_mailboxes_are_served_locally(d, r, got)
    check_unlocatable_mailbox_is_an_error(d, r, got)


@settings(max_examples=100, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_the_order_of_directory_objects_does_not_matter(
    case: tuple[AccessDirectory, Request], rnd: object
) -> None:
    d, r = case
    shuffled = []
    for items in (d.servers, d.databases, d.virtual_directories, d.pop_imap_settings):
        seq = list(items)
        rnd.shuffle(seq)  # type: ignore[attr-defined]
        shuffled.append(tuple(seq))
    d2 = AccessDirectory(shuffled[0], shuffled[1], shuffled[2], shuffled[3])  # type: ignore[arg-type]
    assert run(d2, r) == run(d, r)


@settings(max_examples=100, deadline=None)
@given(organizations())
def test_every_directory_host_name_resolves_to_a_vdir_with_that_name(d: AccessDirectory) -> None:
    for v in d.virtual_directories:
        for url in (v.internal_url, v.external_url):
            host = urlsplit(url).hostname if url else None
            if not host:
                continue
            ep = resolve_host(d, host.upper() + ":443", kind=v.type)
            assert ep is not None
            assert urlsplit(ep.url).hostname == host
            assert ep.kind == v.type
            # A name that is some vdir's ExternalUrl always counts as external.
            if any(
                w.external_url and urlsplit(w.external_url).hostname == host
                for w in d.virtual_directories
                if w.type == v.type
            ):
                assert ep.entry == Entry.EXTERNAL
    assert resolve_host(d, "not-in-the-directory.example") is None


TARGET = "https://fl1.contoso.com:8443/owa"
# Segments that meet each rule of the refusal, and harmless ones between them.
SEGMENTS = ["a", "..", ".", "%2e%2e", "%2e", "%2F", "%5c", "%00", "b?c=d", "", "é", "#f", "a b"]


def refusal_reasons(request_target: str) -> set[str]:
    """Every reason the path must be refused for, as the refusal words it; empty when safe.

    Worked out from the request alone, each rule on its own, so that a refusal is checked
    against what is really wrong with the input (the product names the first it finds).
    """
    reasons = set()
    if not request_target.startswith("/") or request_target.startswith("//"):
        reasons.add("it must be a path starting with a single '/'")
    if any(c <= " " or c == "\x7f" for c in request_target):
        reasons.add("it contains spaces or control characters")
    if "\\" in request_target or "#" in request_target:
        reasons.add("it contains '\\' or '#'")
    path = request_target.split("?", 1)[0]
    if any(code in path.lower() for code in ("%2f", "%5c", "%00")):
        reasons.add("it contains an encoded path separator or NUL")
    if {".", ".."} & set(unquote(path).split("/")):
        reasons.add("it contains '.' or '..' segments")
    if path.lower() != "/owa" and not path.lower().startswith("/owa/"):
        reasons.add("it is not under the virtual directory '/owa'")
    return reasons


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(lambda tail: "/owa" + tail, st.text(max_size=30)),
        st.builds(
            lambda parts: "/owa/" + "/".join(parts),
            st.lists(st.sampled_from([*SEGMENTS, "\\", "\x7f"])),
        ),
    )
)
@example("/owa?")  # an empty query is carried over too (found by hypothesis)
def test_rebased_paths_never_leave_the_target_virtual_directory(request_target: str) -> None:
    reasons = refusal_reasons(request_target)
    try:
        out = rebase_request_path(TARGET, "/owa", request_target)
    except UnsafeRequestPath as refused:
        # Refused only for something really wrong with it, and the refusal says what.
        assert reasons, f"{request_target!r} is safe but was refused: {refused}"
        assert str(refused).rsplit(": ", 1)[1] in reasons, (str(refused), reasons)
        assert repr(request_target) in str(refused)
    else:
        assert not reasons, f"{request_target!r} was proxied although {reasons}"
        parts = urlsplit(out)
        assert (parts.scheme, parts.netloc) == ("https", "fl1.contoso.com:8443")
        assert parts.path == "/owa" or parts.path.startswith("/owa/")
        assert ".." not in parts.path.split("/")
        assert out.endswith(request_target[len("/owa") :])  # the rest is carried over as is
