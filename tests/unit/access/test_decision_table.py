"""Table tests of the Client Access proxy-or-redirect decision (spec 8.3-8.6).

One small organization, built from the model classes, with every knob that
changes the answer exposed as a builder argument:

- NY: NY1 (2010 Mailbox + Client Access, Internet-facing) and EX2003 (2003 back-end)
- FL: FL1 (2010 Mailbox, + Client Access unless ``fl_cas=False``) and
  FL07 (2007 Mailbox, + Client Access unless ``fl07_cas=False``)

Mailboxes: alice (NY-DB1 on NY1), adam (FL-DB1 on FL1), gary (FL07-DB on
FL07), larry (EX2003-MBX on EX2003).
"""

from __future__ import annotations

import itertools

import pytest

from sitemail.access.decision import AccessPolicy, decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import (
    ClientProtocol,
    Entry,
    Error,
    ErrorReason,
    Legacy,
    LegacyKind,
    Outcome,
    Proxy,
    Redirect,
    RedirectKind,
    ServeLocally,
)
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
K = VirtualDirectoryKind
E10, E07, E03 = ExchangeVersion.E2010, ExchangeVersion.E2007, ExchangeVersion.E2003
MBX, CAS, HUB = ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT
HTTP_KINDS = [K.OWA, K.ECP, K.EAS, K.EWS, K.AUTODISCOVER]
LEGACY_URL = "https://legacy.contoso.com/exchange"


def vdir(
    server: str,
    kind: VirtualDirectoryKind,
    *,
    internal: str | None,
    external: str | None,
    iwa: bool = True,
    fba: bool = False,
    **extra: object,
) -> VirtualDirectory:
    path = default_vdir_path(kind)
    return VirtualDirectory(
        server=server,
        type=kind,
        name=default_vdir_name(kind),
        internal_url=internal + path if internal else None,
        external_url=external + path if external else None,
        windows_authentication=iwa,
        forms_authentication=fba,
        **extra,  # type: ignore[arg-type]
    )


def build(
    *,
    fl_cas: bool = True,
    fl_internal: bool = True,
    fl_external: str | None = None,
    fl_iwa: bool = True,
    fl_fba: bool = True,
    fl_pop_enabled: bool = True,
    ny_fba: bool = True,
    redirect_type: RedirectType = RedirectType.MANUAL,
    legacy_redirect_type: RedirectType = RedirectType.MANUAL,
    exchange2003_url: str | None = LEGACY_URL,
    ny_proxy_target_port: int | None = 110,
    fl07_cas: bool = True,
    fl07_external: bool = False,
    fl07_iwa: bool = True,
    ex2003_vdir: VirtualDirectory | None = None,
) -> AccessDirectory:
    servers = [
        Server(name="NY1", fqdn="ny1.contoso.com", site="NY", roles=[MBX, CAS, HUB]),
        Server(
            name="FL1", fqdn="fl1.contoso.com", site="FL", roles=[MBX, CAS] if fl_cas else [MBX]
        ),
        Server(
            name="FL07",
            fqdn="fl07.contoso.com",
            site="FL",
            version=E07,
            roles=[MBX, CAS] if fl07_cas else [MBX],
        ),
        Server(name="EX2003", fqdn="ex2003.contoso.com", site="NY", version=E03, roles=[MBX]),
    ]
    databases = [
        MailboxDatabase(name="NY-DB1", server="NY1"),
        MailboxDatabase(name="FL-DB1", server="FL1"),
        MailboxDatabase(name="FL07-DB", server="FL07"),
        MailboxDatabase(name="EX2003-MBX", server="EX2003"),
    ]
    vdirs: list[VirtualDirectory] = []
    for kind in HTTP_KINDS:
        owa_like = kind in (K.OWA, K.ECP)
        extra: dict[str, object] = {}
        if kind == K.OWA:
            extra = {
                "cross_site_redirect_type": redirect_type,
                "legacy_redirect_type": legacy_redirect_type,
                "exchange2003_url": exchange2003_url,
            }
        vdirs.append(
            vdir(
                "NY1",
                kind,
                internal="https://ny1.contoso.com",
                external="https://mail.contoso.com",
                iwa=not owa_like,
                fba=owa_like and ny_fba,
                **extra,
            )
        )
        if fl_cas:
            vdirs.append(
                vdir(
                    "FL1",
                    kind,
                    internal="https://fl1.contoso.com" if fl_internal else None,
                    external=fl_external,
                    iwa=fl_iwa,
                    fba=owa_like and fl_fba,
                )
            )
        if fl07_cas and kind in (K.OWA, K.EAS, K.EWS):
            vdirs.append(
                vdir(
                    "FL07",
                    kind,
                    internal="https://fl07.contoso.com",
                    external="https://legacy.contoso.com" if fl07_external else None,
                    iwa=fl07_iwa,
                )
            )
    if ex2003_vdir is not None:
        vdirs.append(ex2003_vdir)
    pop: list[PopImapSettings] = []
    for protocol, ssl_port, plain_port in (("POP3", 995, 110), ("IMAP4", 993, 143)):
        if ny_proxy_target_port is not None:
            pop.append(
                PopImapSettings(
                    server="NY1",
                    protocol=protocol,  # type: ignore[arg-type]
                    unencrypted_or_tls_bindings=[f"0.0.0.0:{plain_port}"],
                    ssl_bindings=[f"0.0.0.0:{ssl_port}"],
                    proxy_target_port=ny_proxy_target_port + (plain_port - 110),
                )
            )
        if fl_cas:
            pop.append(
                PopImapSettings(
                    server="FL1",
                    protocol=protocol,  # type: ignore[arg-type]
                    unencrypted_or_tls_bindings=[f"0.0.0.0:{plain_port}"],
                    ssl_bindings=[f"0.0.0.0:{ssl_port}"],
                    proxy_target_port=plain_port,
                    enabled=fl_pop_enabled,
                )
            )
    return AccessDirectory(tuple(servers), tuple(databases), tuple(vdirs), tuple(pop))


def mailbox(alias: str, database: str) -> Mailbox:
    return Mailbox(
        alias=alias,
        display_name=alias.title(),
        primary_smtp_address=f"{alias}@contoso.com",
        database=database,
    )


ALICE = mailbox("alice", "NY-DB1")
ADAM = mailbox("adam", "FL-DB1")
GARY = mailbox("gary", "FL07-DB")
LARRY = mailbox("larry", "EX2003-MBX")


def ask(
    d: AccessDirectory,
    protocol: ClientProtocol,
    who: Mailbox = ADAM,
    *,
    cas: str = "NY1",
    entry: Entry = Entry.EXTERNAL,
    eas: str | None = "14.1",
    policy: AccessPolicy | None = None,
) -> Outcome:
    return decide(
        d,
        protocol=protocol,
        cas=cas,
        mailbox=who,
        entry=entry,
        eas_protocol_version=eas,
        policy=policy or AccessPolicy(),
    )


def ident(server: str, kind: VirtualDirectoryKind) -> str:
    return f"{server}\\{default_vdir_name(kind)}"


def http_proxy(
    protocol: ClientProtocol, server: str = "FL1", version: ExchangeVersion = E10
) -> Proxy:
    kind = protocol.vdir_kind
    assert kind is not None
    host = f"{server.lower()}.contoso.com"
    return Proxy(
        protocol=protocol,
        target_server=server,
        target_version=version,
        host=host,
        port=443,
        ssl=True,
        target_url=f"https://{host}{default_vdir_path(kind)}",
        vdir=ident(server, kind),
    )


def pop_proxy(
    protocol: ClientProtocol, server: str = "FL1", version: ExchangeVersion = E10
) -> Proxy:
    return Proxy(
        protocol=protocol,
        target_server=server,
        target_version=version,
        host=f"{server.lower()}.contoso.com",
        port=995 if protocol == P.POP3 else 993,
        ssl=True,
        target_url=None,
        vdir=None,
    )


def redirect(
    protocol: ClientProtocol,
    kind: RedirectKind,
    *,
    base: str = "https://mail-fl.contoso.com",
    server: str = "FL1",
    sso: bool = False,
) -> Redirect:
    vkind = protocol.vdir_kind
    assert vkind is not None
    return Redirect(
        protocol=protocol,
        kind=kind,
        url=base + default_vdir_path(vkind),
        target_server=server,
        vdir=ident(server, vkind),
        single_sign_on=sso,
    )


def assert_error(outcome: Outcome, reason: ErrorReason) -> Error:
    assert isinstance(outcome, Error), outcome
    assert outcome.reason == reason, outcome
    assert outcome.message.endswith((".", "..."))
    return outcome


# --------------------------------------------------- 2010 mailbox in another site

# Every protocol against the FL virtual directory's ExternalUrl ($null / set),
# Windows authentication on the FL virtual directory, and the URL the request
# came in on.  ActiveSync devices speak 14.1 here (they follow 451).
CROSS_SITE_TABLE = """
protocol      external  iwa  entry     expected
OWA           null      on   External  proxy
OWA           null      on   Internal  proxy
OWA           null      off  External  err:WindowsAuthenticationDisabledOnTarget
OWA           null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
OWA           set       on   External  redirect:OwaManual
OWA           set       on   Internal  proxy
OWA           set       off  External  redirect:OwaManual
OWA           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
ECP           null      on   External  proxy
ECP           null      on   Internal  proxy
ECP           null      off  External  err:WindowsAuthenticationDisabledOnTarget
ECP           null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
ECP           set       on   External  redirect:OwaManual
ECP           set       on   Internal  proxy
ECP           set       off  External  redirect:OwaManual
ECP           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
EAS           null      on   External  proxy
EAS           null      on   Internal  proxy
EAS           null      off  External  err:WindowsAuthenticationDisabledOnTarget
EAS           null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
EAS           set       on   External  redirect:Eas451
EAS           set       on   Internal  proxy
EAS           set       off  External  redirect:Eas451
EAS           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
EWS           null      on   External  proxy
EWS           null      on   Internal  proxy
EWS           null      off  External  err:WindowsAuthenticationDisabledOnTarget
EWS           null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
EWS           set       on   External  proxy
EWS           set       on   Internal  proxy
EWS           set       off  External  err:WindowsAuthenticationDisabledOnTarget
EWS           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
Availability  null      on   External  proxy
Availability  null      on   Internal  proxy
Availability  null      off  External  err:WindowsAuthenticationDisabledOnTarget
Availability  null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
Availability  set       on   External  proxy
Availability  set       on   Internal  proxy
Availability  set       off  External  err:WindowsAuthenticationDisabledOnTarget
Availability  set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
Autodiscover  null      on   External  serve
Autodiscover  null      on   Internal  serve
Autodiscover  null      off  External  serve
Autodiscover  null      off  Internal  serve
Autodiscover  set       on   External  serve
Autodiscover  set       on   Internal  serve
Autodiscover  set       off  External  serve
Autodiscover  set       off  Internal  serve
POP3          null      on   External  pop
POP3          null      on   Internal  pop
POP3          null      off  External  pop
POP3          null      off  Internal  pop
POP3          set       on   External  pop
POP3          set       on   Internal  pop
POP3          set       off  External  pop
POP3          set       off  Internal  pop
IMAP4         null      on   External  pop
IMAP4         null      on   Internal  pop
IMAP4         null      off  External  pop
IMAP4         null      off  Internal  pop
IMAP4         set       on   External  pop
IMAP4         set       on   Internal  pop
IMAP4         set       off  External  pop
IMAP4         set       off  Internal  pop
"""


def _rows(table: str) -> list[list[str]]:
    lines = [ln.split() for ln in table.strip().splitlines()]
    return lines[1:]


def test_cross_site_table_is_complete() -> None:
    seen = {(r[0], r[1], r[2], r[3]) for r in _rows(CROSS_SITE_TABLE)}
    expected = set(
        itertools.product(
            [p.value for p in ClientProtocol],
            ["null", "set"],
            ["on", "off"],
            ["External", "Internal"],
        )
    )
    assert seen == expected


@pytest.mark.parametrize(
    ("protocol", "external", "iwa", "entry", "expected"), _rows(CROSS_SITE_TABLE)
)
def test_cross_site_2010_mailbox(
    protocol: str, external: str, iwa: str, entry: str, expected: str
) -> None:
    p = ClientProtocol(protocol)
    d = build(
        fl_external="https://mail-fl.contoso.com" if external == "set" else None,
        fl_iwa=iwa == "on",
    )
    got = ask(d, p, entry=Entry(entry))
    if expected == "proxy":
        assert got == http_proxy(p)
    elif expected == "pop":
        assert got == pop_proxy(p)
    elif expected == "serve":
        assert got == ServeLocally(protocol=p, mailbox_server="FL1", database="FL-DB1")
    elif expected.startswith("redirect:"):
        assert got == redirect(p, RedirectKind(expected.split(":")[1]))
    else:
        err = assert_error(got, ErrorReason(expected.split(":")[1]))
        kind = p.vdir_kind
        assert kind is not None
        assert (err.server, err.vdir) == ("FL1", ident("FL1", kind))


# ------------------------------------------------ OWA: Manual page or Silent redirect


# CrossSiteRedirectType is read on the receiving (redirecting) CAS's OWA
# virtual directory; single sign-on needs FBA on both ends and an https URL.
FL_HTTPS, FL_HTTP = "https://mail-fl.contoso.com", "http://mail-fl.contoso.com"
MANUAL, SILENT = RedirectType.MANUAL, RedirectType.SILENT
PAGE, AUTO = RedirectKind.OWA_MANUAL, RedirectKind.OWA_SILENT


@pytest.mark.parametrize(
    ("redirect_type", "ny_fba", "fl_fba", "base", "kind", "sso"),
    [
        (MANUAL, True, True, FL_HTTPS, PAGE, False),
        (MANUAL, False, False, FL_HTTPS, PAGE, False),
        (SILENT, True, True, FL_HTTPS, AUTO, True),
        (SILENT, True, False, FL_HTTPS, AUTO, False),
        (SILENT, False, True, FL_HTTPS, AUTO, False),
        (SILENT, False, False, FL_HTTPS, AUTO, False),
        (SILENT, True, True, FL_HTTP, AUTO, False),
    ],
)
@pytest.mark.parametrize("protocol", [P.OWA, P.ECP])
def test_owa_redirect_style(
    protocol: ClientProtocol,
    redirect_type: RedirectType,
    ny_fba: bool,
    fl_fba: bool,
    base: str,
    kind: RedirectKind,
    sso: bool,
) -> None:
    d = build(fl_external=base, redirect_type=redirect_type, ny_fba=ny_fba, fl_fba=fl_fba)
    assert ask(d, protocol) == redirect(protocol, kind, base=base, sso=sso)


def test_redirect_type_on_the_target_vdir_does_not_matter() -> None:
    # Silent on FL's own OWA vdir, Manual on NY1's: NY1 is the one redirecting.
    d = build(fl_external="https://mail-fl.contoso.com")
    vdirs = tuple(
        v.model_copy(update={"cross_site_redirect_type": RedirectType.SILENT})
        if v.server == "FL1"
        else v
        for v in d.virtual_directories
    )
    d = AccessDirectory(d.servers, d.databases, vdirs, d.pop_imap_settings)
    assert ask(d, P.OWA) == redirect(P.OWA, RedirectKind.OWA_MANUAL)


# ----------------------------------------------------- ActiveSync protocol versions


@pytest.mark.parametrize(
    ("version", "redirected"),
    [
        (None, False),
        ("", False),
        ("2.5", False),
        ("12.0", False),
        ("12.1", True),
        ("14.0", True),
        ("14.1", True),
        (" 14.0 ", True),
        ("banana", False),
        ("12.1.5", False),
        ("14", False),
    ],
)
def test_activesync_451_only_for_devices_that_follow_it(
    version: str | None, redirected: bool
) -> None:
    d = build(fl_external="https://mail-fl.contoso.com")
    got = ask(d, P.EAS, eas=version)
    if redirected:
        assert got == redirect(P.EAS, RedirectKind.EAS_451)
    else:
        assert got == http_proxy(P.EAS)
        assert isinstance(got, Proxy) and "451" in got.why


def test_activesync_version_is_ignored_by_other_protocols() -> None:
    d = build(fl_external="https://mail-fl.contoso.com")
    assert ask(d, P.OWA, eas="2.5") == redirect(P.OWA, RedirectKind.OWA_MANUAL)


# ----------------------------------------------------------- same-site mailboxes


@pytest.mark.parametrize("protocol", list(ClientProtocol))
@pytest.mark.parametrize("entry", list(Entry))
@pytest.mark.parametrize("fl_external", [None, "https://mail-fl.contoso.com"])
def test_same_site_2010_mailbox_is_served_locally(
    protocol: ClientProtocol, entry: Entry, fl_external: str | None
) -> None:
    d = build(fl_external=fl_external, fl_iwa=False, fl_pop_enabled=False)
    assert ask(d, protocol, ALICE, entry=entry) == ServeLocally(
        protocol=protocol, mailbox_server="NY1", database="NY-DB1"
    )
    # FL1's own settings do not stop FL1 from serving its own site's mailbox.
    assert ask(d, protocol, ADAM, cas="FL1", entry=entry) == ServeLocally(
        protocol=protocol, mailbox_server="FL1", database="FL-DB1"
    )


# --------------------------------------------------------- Exchange 2003 mailboxes


@pytest.mark.parametrize("entry", list(Entry))
@pytest.mark.parametrize(
    ("ny_fba", "legacy_type", "kind"),
    [
        (True, RedirectType.MANUAL, RedirectKind.OWA_SILENT),
        (True, RedirectType.SILENT, RedirectKind.OWA_SILENT),
        (False, RedirectType.MANUAL, RedirectKind.OWA_MANUAL),
        (False, RedirectType.SILENT, RedirectKind.OWA_SILENT),
    ],
)
def test_exchange2003_owa_goes_to_exchange2003url(
    entry: Entry, ny_fba: bool, legacy_type: RedirectType, kind: RedirectKind
) -> None:
    d = build(ny_fba=ny_fba, legacy_redirect_type=legacy_type)
    assert ask(d, P.OWA, LARRY, entry=entry) == Legacy(
        protocol=P.OWA,
        kind=LegacyKind.OWA_EXCHANGE2003_URL,
        mailbox_version=E03,
        action=Redirect(
            protocol=P.OWA,
            kind=kind,
            url=LEGACY_URL,
            target_server="EX2003",
            vdir=ident("NY1", K.OWA),
        ),
    )


def test_exchange2003url_not_set() -> None:
    err = assert_error(
        ask(build(exchange2003_url=None), P.OWA, LARRY), ErrorReason.EXCHANGE2003_URL_NOT_SET
    )
    assert (err.server, err.vdir) == ("NY1", ident("NY1", K.OWA))
    assert "-Exchange2003Url" in err.message and "EX2003" in err.message


def test_exchange2003url_is_read_on_the_receiving_cas() -> None:
    # FL1's OWA vdir has no Exchange2003Url, even though NY1's has one.
    assert_error(ask(build(), P.OWA, LARRY, cas="FL1"), ErrorReason.EXCHANGE2003_URL_NOT_SET)


EX2003_EAS = Proxy(
    protocol=P.EAS,
    target_server="EX2003",
    target_version=E03,
    host="ex2003.contoso.com",
    port=443,
    ssl=True,
    target_url="https://ex2003.contoso.com/Microsoft-Server-ActiveSync",
    vdir=None,
)


@pytest.mark.parametrize("cas", ["NY1", "FL1"])
@pytest.mark.parametrize("eas", [None, "2.5", "14.1"])
@pytest.mark.parametrize("fl_external", [None, "https://mail-fl.contoso.com"])
def test_exchange2003_activesync_is_proxied_to_the_back_end(
    cas: str, eas: str | None, fl_external: str | None
) -> None:
    # Straight to the back-end, from any site, whatever the device speaks.
    assert ask(build(fl_external=fl_external), P.EAS, LARRY, cas=cas, eas=eas) == EX2003_EAS


def test_exchange2003_activesync_is_proxied_whatever_the_directory_says_of_windows_auth() -> None:
    # The CAS learns Windows authentication by trying (the back-end's 401, event 1036):
    # what the 2003 server's IIS applies can differ from the directory (IIS Manager).
    policy = AccessPolicy(exchange2003_windows_authentication=False)
    assert ask(build(), P.EAS, LARRY, policy=policy) == EX2003_EAS
    off = vdir("EX2003", K.EAS, internal="https://be2003.contoso.com", external=None, iwa=False)
    got = ask(build(ex2003_vdir=off), P.EAS, LARRY)
    assert isinstance(got, Proxy)
    assert got.target_url == "https://be2003.contoso.com/Microsoft-Server-ActiveSync"
    assert got.vdir == ident("EX2003", K.EAS)
    no_url = off.model_copy(update={"windows_authentication": True, "internal_url": None})
    assert_error(ask(build(ex2003_vdir=no_url), P.EAS, LARRY), ErrorReason.NO_INTERNAL_URL)


def test_block_legacy_mailboxes() -> None:
    policy = AccessPolicy(block_legacy_mailboxes=True)
    assert_error(ask(build(), P.EAS, LARRY, policy=policy), ErrorReason.LEGACY_MAILBOX_BLOCKED)
    # Only ActiveSync reads the switch.
    assert isinstance(ask(build(), P.OWA, LARRY, policy=policy), Legacy)


@pytest.mark.parametrize(
    ("protocol", "ny_port", "port"),
    [
        (P.POP3, 110, 110),
        (P.IMAP4, 110, 143),
        (P.POP3, 1110, 1110),
        (P.IMAP4, 1110, 1143),
        (P.POP3, None, 110),
        (P.IMAP4, None, 143),
    ],
)
def test_exchange2003_pop_imap_go_to_the_back_end_on_proxy_target_port(
    protocol: ClientProtocol, ny_port: int | None, port: int
) -> None:
    assert ask(build(ny_proxy_target_port=ny_port), protocol, LARRY) == Proxy(
        protocol=protocol,
        target_server="EX2003",
        target_version=E03,
        host="ex2003.contoso.com",
        port=port,
        ssl=False,
        target_url=None,
        vdir=None,
    )


@pytest.mark.parametrize("protocol", [P.ECP, P.EWS, P.AVAILABILITY])
def test_exchange2003_has_no_ecp_or_web_services(protocol: ClientProtocol) -> None:
    err = assert_error(
        ask(build(), protocol, LARRY), ErrorReason.PROTOCOL_NOT_AVAILABLE_FOR_VERSION
    )
    assert "Exchange 2003" in err.message


def test_exchange2003_autodiscover_is_answered_locally() -> None:
    assert ask(build(), P.AUTODISCOVER, LARRY) == ServeLocally(
        protocol=P.AUTODISCOVER, mailbox_server="EX2003", database="EX2003-MBX"
    )


# --------------------------------------------------------- Exchange 2007 mailboxes

LEGACY_2007_TABLE = """
protocol      external  iwa  entry     expected
OWA           null      on   External  proxy
OWA           null      on   Internal  proxy
OWA           null      off  External  err:WindowsAuthenticationDisabledOnTarget
OWA           null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
OWA           set       on   External  redirect:OwaSilent
OWA           set       on   Internal  proxy
OWA           set       off  External  redirect:OwaSilent
OWA           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
EAS           null      on   External  proxy
EAS           null      on   Internal  proxy
EAS           null      off  External  err:WindowsAuthenticationDisabledOnTarget
EAS           null      off  Internal  err:WindowsAuthenticationDisabledOnTarget
EAS           set       on   External  redirect:Eas451
EAS           set       on   Internal  proxy
EAS           set       off  External  redirect:Eas451
EAS           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
EWS           null      on   External  proxy
EWS           null      off  External  err:WindowsAuthenticationDisabledOnTarget
EWS           set       on   External  proxy
EWS           set       off  Internal  err:WindowsAuthenticationDisabledOnTarget
Availability  null      on   External  proxy
Availability  set       off  External  err:WindowsAuthenticationDisabledOnTarget
ECP           null      on   External  err:ProtocolNotAvailableForMailboxVersion
ECP           set       on   External  err:ProtocolNotAvailableForMailboxVersion
POP3          null      off  External  pop
POP3          set       on   Internal  pop
IMAP4         null      off  External  pop
IMAP4         set       on   Internal  pop
Autodiscover  set       off  External  serve
"""


@pytest.mark.parametrize("cas", ["NY1", "FL1"])
@pytest.mark.parametrize(
    ("protocol", "external", "iwa", "entry", "expected"), _rows(LEGACY_2007_TABLE)
)
def test_exchange2007_mailbox(
    cas: str, protocol: str, external: str, iwa: str, entry: str, expected: str
) -> None:
    # The 2010 CAS hands a 2007 mailbox to the 2007 CAS of its site, from its
    # own site too (a 2010 CAS does not render 2007 mailboxes).
    p = ClientProtocol(protocol)
    d = build(fl07_external=external == "set", fl07_iwa=iwa == "on")
    got = ask(d, p, GARY, cas=cas, entry=Entry(entry))
    if expected == "serve":
        assert got == ServeLocally(protocol=p, mailbox_server="FL07", database="FL07-DB")
    elif expected.startswith("err:"):
        assert_error(got, ErrorReason(expected.split(":")[1]))
    elif expected.startswith("redirect:"):
        assert got == Legacy(
            protocol=p,
            kind=LegacyKind.EXCHANGE2007_REDIRECT,
            mailbox_version=E07,
            action=redirect(
                p,
                RedirectKind(expected.split(":")[1]),
                base="https://legacy.contoso.com",
                server="FL07",
            ),
        )
    else:
        inner = pop_proxy(p, "FL07", E07) if expected == "pop" else http_proxy(p, "FL07", E07)
        assert got == Legacy(
            protocol=p, kind=LegacyKind.EXCHANGE2007_PROXY, mailbox_version=E07, action=inner
        )


def test_exchange2007_owa_redirect_follows_legacy_redirect_type_without_fba() -> None:
    d = build(fl07_external=True, ny_fba=False)
    got = ask(d, P.OWA, GARY)
    assert isinstance(got, Legacy) and isinstance(got.action, Redirect)
    assert got.action.kind == RedirectKind.OWA_MANUAL
    d = build(fl07_external=True, ny_fba=False, legacy_redirect_type=RedirectType.SILENT)
    got = ask(d, P.OWA, GARY)
    assert isinstance(got, Legacy) and isinstance(got.action, Redirect)
    assert got.action.kind == RedirectKind.OWA_SILENT


def test_exchange2007_old_devices_are_proxied() -> None:
    got = ask(build(fl07_external=True), P.EAS, GARY, eas="12.0")
    assert got == Legacy(
        protocol=P.EAS,
        kind=LegacyKind.EXCHANGE2007_PROXY,
        mailbox_version=E07,
        action=http_proxy(P.EAS, "FL07", E07),
    )


@pytest.mark.parametrize(
    "protocol", [p for p in ClientProtocol if p not in (P.AUTODISCOVER, P.ECP)]
)
def test_exchange2007_without_a_2007_cas_in_its_site(protocol: ClientProtocol) -> None:
    err = assert_error(
        ask(build(fl07_cas=False), protocol, GARY),
        ErrorReason.NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE,
    )
    assert "Exchange 2007" in err.message and "site FL" in err.message


# ------------------------------------------------------ no CAS in the mailbox's site


@pytest.mark.parametrize("protocol", [p for p in ClientProtocol if p != P.AUTODISCOVER])
@pytest.mark.parametrize("entry", list(Entry))
def test_no_2010_cas_in_the_mailbox_site(protocol: ClientProtocol, entry: Entry) -> None:
    # FL still has FL07, a 2007 CAS: not of the mailbox's version, so it does not count.
    err = assert_error(
        ask(build(fl_cas=False), protocol, ADAM, entry=entry),
        ErrorReason.NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE,
    )
    assert err.server == "FL1"
    assert "site FL" in err.message and "Exchange 2010" in err.message


def test_no_cas_does_not_stop_autodiscover() -> None:
    assert isinstance(ask(build(fl_cas=False), P.AUTODISCOVER), ServeLocally)


# -------------------------------------------------------------- no InternalUrl


@pytest.mark.parametrize("protocol", [P.OWA, P.ECP, P.EAS, P.EWS, P.AVAILABILITY])
def test_target_without_internal_url(protocol: ClientProtocol) -> None:
    err = assert_error(
        ask(build(fl_internal=False), protocol, entry=Entry.INTERNAL), ErrorReason.NO_INTERNAL_URL
    )
    kind = protocol.vdir_kind
    assert kind is not None
    assert err.vdir == ident("FL1", kind)
    assert "-InternalUrl" in err.message


def test_missing_internal_url_does_not_matter_when_redirecting() -> None:
    d = build(fl_internal=False, fl_external="https://mail-fl.contoso.com")
    assert ask(d, P.OWA) == redirect(P.OWA, RedirectKind.OWA_MANUAL)


# ------------------------------------------------------------ the mailbox's homeMDB


@pytest.mark.parametrize("protocol", list(ClientProtocol))
@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("", ErrorReason.NO_HOME_MDB),
        ("   ", ErrorReason.NO_HOME_MDB),
        ("GONE-DB", ErrorReason.DATABASE_NOT_FOUND),
        ("ORPHAN-DB", ErrorReason.MAILBOX_SERVER_NOT_FOUND),
    ],
)
def test_mailbox_that_cannot_be_located(
    protocol: ClientProtocol, database: str, reason: ErrorReason
) -> None:
    d = build()
    d = AccessDirectory(
        d.servers,
        (*d.databases, MailboxDatabase(name="ORPHAN-DB", server="GONE-SERVER")),
        d.virtual_directories,
        d.pop_imap_settings,
    )
    err = assert_error(ask(d, protocol, mailbox("zoe", database)), reason)
    assert "zoe" in err.message


def test_database_names_compare_case_insensitively() -> None:
    assert ask(build(), P.OWA, mailbox("adam2", "fl-db1")) == http_proxy(P.OWA)


# ------------------------------------------------------------- the receiving server


@pytest.mark.parametrize("cas", ["EX2003", "GHOST"])
@pytest.mark.parametrize("protocol", list(ClientProtocol))
def test_receiving_server_must_be_a_2010_or_2007_cas(cas: str, protocol: ClientProtocol) -> None:
    err = assert_error(ask(build(), protocol, cas=cas), ErrorReason.NOT_A_CLIENT_ACCESS_SERVER)
    assert err.server == cas


def test_mailbox_only_2007_server_is_not_a_cas() -> None:
    got = ask(build(fl07_cas=False), P.OWA, GARY, cas="FL07")
    assert_error(got, ErrorReason.NOT_A_CLIENT_ACCESS_SERVER)


def test_mailbox_only_2010_server_is_not_a_cas() -> None:
    assert_error(ask(build(fl_cas=False), P.OWA, cas="FL1"), ErrorReason.NOT_A_CLIENT_ACCESS_SERVER)


# ------------------------------------------- several CAS in the mailbox's site


def two_fl_cas(
    *,
    a_iwa: bool = True,
    b_iwa: bool = True,
    a_internal: bool = True,
    a_external: bool = False,
    b_external: bool = False,
    a_pop: bool = True,
    b_pop: bool = True,
) -> AccessDirectory:
    """FL-A and FL-B, 2010 CAS in FL; listed B first to show order does not decide."""
    d = build(fl_cas=False, fl07_cas=False)
    servers = (
        *d.servers,
        Server(name="FL-B", fqdn="fl-b.contoso.com", site="FL", roles=[CAS]),
        Server(name="FL-A", fqdn="fl-a.contoso.com", site="FL", roles=[CAS]),
    )
    vdirs = list(d.virtual_directories)
    pop = list(d.pop_imap_settings)
    for name, iwa, internal, external, enabled in (
        ("FL-B", b_iwa, True, b_external, b_pop),
        ("FL-A", a_iwa, a_internal, a_external, a_pop),
    ):
        host = name.lower()
        for kind in HTTP_KINDS:
            vdirs.append(
                vdir(
                    name,
                    kind,
                    internal=f"https://{host}.contoso.com" if internal else None,
                    external=f"https://mail-{host}.contoso.com" if external else None,
                    iwa=iwa,
                )
            )
        pop.append(
            PopImapSettings(
                server=name,
                protocol="POP3",
                unencrypted_or_tls_bindings=["0.0.0.0:110"],
                ssl_bindings=["0.0.0.0:995"],
                proxy_target_port=110,
                enabled=enabled,
            )
        )
    return AccessDirectory(servers, d.databases, tuple(vdirs), tuple(pop))


def test_first_cas_by_name_is_chosen() -> None:
    assert ask(two_fl_cas(), P.OWA) == http_proxy(P.OWA, "FL-A")
    assert ask(two_fl_cas(), P.POP3) == pop_proxy(P.POP3, "FL-A")


def test_a_cas_that_can_take_the_proxy_is_preferred() -> None:
    assert ask(two_fl_cas(a_iwa=False), P.EWS) == http_proxy(P.EWS, "FL-B")
    assert ask(two_fl_cas(a_internal=False), P.EWS) == http_proxy(P.EWS, "FL-B")
    assert ask(two_fl_cas(a_pop=False), P.POP3) == pop_proxy(P.POP3, "FL-B")


def test_error_names_the_first_cas_when_none_fits() -> None:
    err = assert_error(
        ask(two_fl_cas(a_iwa=False, b_iwa=False), P.EWS),
        ErrorReason.WINDOWS_AUTHENTICATION_DISABLED,
    )
    assert (err.server, err.vdir) == ("FL-A", ident("FL-A", K.EWS))
    err = assert_error(
        ask(two_fl_cas(a_pop=False, b_pop=False), P.POP3),
        ErrorReason.PROTOCOL_DISABLED_IN_MAILBOX_SITE,
    )
    assert err.server == "FL-A" and "Set-PopSettings" in err.message


def test_redirect_goes_to_the_first_cas_with_an_external_url() -> None:
    assert ask(two_fl_cas(b_external=True), P.OWA) == redirect(
        P.OWA, RedirectKind.OWA_MANUAL, base="https://mail-fl-b.contoso.com", server="FL-B"
    )
    assert ask(two_fl_cas(a_external=True, b_external=True), P.OWA) == redirect(
        P.OWA, RedirectKind.OWA_MANUAL, base="https://mail-fl-a.contoso.com", server="FL-A"
    )


def test_pop_imap_disabled_in_the_mailbox_site() -> None:
    err = assert_error(
        ask(build(fl_pop_enabled=False), P.IMAP4), ErrorReason.PROTOCOL_DISABLED_IN_MAILBOX_SITE
    )
    assert "Set-ImapSettings" in err.message


# --------------------------------------------------------------------- policy


def test_ecp_can_be_told_not_to_redirect() -> None:
    d = build(fl_external="https://mail-fl.contoso.com")
    assert ask(d, P.ECP, policy=AccessPolicy(ecp_redirects=False)) == http_proxy(P.ECP)


def test_internal_requests_can_be_redirected_by_policy() -> None:
    d = build(fl_external="https://mail-fl.contoso.com")
    policy = AccessPolicy(redirect_internal_requests=True)
    assert ask(d, P.OWA, entry=Entry.INTERNAL, policy=policy) == redirect(
        P.OWA, RedirectKind.OWA_MANUAL
    )


def test_pop_imap_proxy_ports_are_settings() -> None:
    policy = AccessPolicy(pop3_proxy_port=1995, imap4_proxy_port=1993)
    got = ask(build(), P.POP3, policy=policy)
    assert isinstance(got, Proxy) and got.port == 1995
    got = ask(build(), P.IMAP4, policy=policy)
    assert isinstance(got, Proxy) and got.port == 1993


# ----------------------------------------------------------- what errors tell the user


@pytest.mark.parametrize(
    ("protocol", "cmdlet", "switch"),
    [
        (P.OWA, "Set-OwaVirtualDirectory", "-WindowsAuthentication $true"),
        (P.ECP, "Set-EcpVirtualDirectory", "-WindowsAuthentication $true"),
        (P.EAS, "Set-ActiveSyncVirtualDirectory", "-WindowsAuthEnabled $true"),
        (P.EWS, "Set-WebServicesVirtualDirectory", "-WindowsAuthentication $true"),
        (P.AVAILABILITY, "Set-WebServicesVirtualDirectory", "-WindowsAuthentication $true"),
    ],
)
def test_windows_authentication_error_says_how_to_fix_it(
    protocol: ClientProtocol, cmdlet: str, switch: str
) -> None:
    err = assert_error(
        ask(build(fl_iwa=False), protocol), ErrorReason.WINDOWS_AUTHENTICATION_DISABLED
    )
    kind = protocol.vdir_kind
    assert kind is not None
    assert f'{cmdlet} -Identity "{ident("FL1", kind)}" {switch}' in err.message
    assert "Integrated Windows authentication" in err.message
    assert "\n" not in err.message


def test_outcomes_explain_themselves() -> None:
    got = ask(build(), P.OWA)
    assert isinstance(got, Proxy)
    assert "$null" in got.why and "https://fl1.contoso.com/owa" in got.why
    got = ask(build(), P.EWS, entry=Entry.EXTERNAL)
    assert isinstance(got, Proxy) and "EWS is not redirected" in got.why
    got = ask(build(fl_external="https://mail-fl.contoso.com"), P.OWA, entry=Entry.INTERNAL)
    assert isinstance(got, Proxy) and "InternalUrl" in got.why
