"""The decision of an Exchange 2007 Client Access server: the seed's "Exchange 2007 to 2007".

The organization of examples/legacy.yaml: HQ has HQ07 (2007, Internet-facing,
legacy.contoso.com) and HQ10 (2010, mail.contoso.com); BR has BR07 (2007, no
ExternalUrl unless a test gives one).  lena's mailbox is on HQ07, dora's on
BR07, alice's on HQ10.
"""

from __future__ import annotations

import pytest
from tests.unit.access.test_decision_table import _rows, http_proxy, pop_proxy, vdir

from sitemail.access.decision import decide
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
    RedirectType,
    Server,
    ServerRole,
)

P = ClientProtocol
E07 = ExchangeVersion.E2007
MBX, CAS, HUB = ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT


def build(
    *, br_external: bool = False, br_iwa: bool = True, hq_silent: bool = False
) -> AccessDirectory:
    servers = [
        Server(name="HQ07", fqdn="hq07.contoso.com", site="HQ", version=E07, roles=[MBX, CAS, HUB]),
        Server(name="BR07", fqdn="br07.contoso.com", site="BR", version=E07, roles=[MBX, CAS, HUB]),
        Server(name="HQ10", fqdn="hq10.contoso.com", site="HQ", roles=[MBX, CAS, HUB]),
    ]
    databases = [
        MailboxDatabase(name="HQ07-DB", server="HQ07"),
        MailboxDatabase(name="BR07-DB", server="BR07"),
        MailboxDatabase(name="HQ10-DB", server="HQ10"),
    ]
    vdirs = []
    for kind in (vk for p in P if (vk := p.vdir_kind) is not None):
        silent = {"cross_site_redirect_type": RedirectType.SILENT} if hq_silent else {}
        vdirs.append(
            vdir(
                "HQ07",
                kind,
                internal="https://hq07.contoso.com",
                external="https://legacy.contoso.com",
                iwa=False,
                **silent,
            )
        )
        vdirs.append(
            vdir(
                "BR07",
                kind,
                internal="https://br07.contoso.com",
                external="https://br.contoso.com" if br_external else None,
                iwa=br_iwa,
            )
        )
        vdirs.append(
            vdir(
                "HQ10",
                kind,
                internal="https://hq10.contoso.com",
                external="https://mail.contoso.com",
            )
        )
    return AccessDirectory(servers, databases, vdirs)


def mailbox(alias: str, database: str) -> Mailbox:
    return Mailbox(
        alias=alias,
        display_name=alias.title(),
        primary_smtp_address=f"{alias}@contoso.com",
        database=database,
    )


LENA, DORA, ALICE = (
    mailbox("lena", "HQ07-DB"),
    mailbox("dora", "BR07-DB"),
    mailbox("alice", "HQ10-DB"),
)


def ask(
    d: AccessDirectory,
    protocol: ClientProtocol,
    who: Mailbox = DORA,
    *,
    cas: str = "HQ07",
    entry: Entry = Entry.EXTERNAL,
    eas: str | None = "12.1",
) -> Outcome:
    return decide(d, protocol=protocol, cas=cas, mailbox=who, entry=entry, eas_protocol_version=eas)


# The Internet-facing 2007 CAS (HQ07) with dora, whose mailbox is on BR07.
FROM_2007_TABLE = """
protocol      external  iwa  entry     expected
OWA           null      on   External  proxy
OWA           null      off  External  err:WindowsAuthenticationDisabledOnTarget
OWA           set       on   External  redirect:OwaManual
OWA           set       on   Internal  proxy
EAS           null      on   External  proxy
EAS           null      off  External  err:WindowsAuthenticationDisabledOnTarget
EAS           set       off  External  redirect:Eas451
EWS           null      on   External  proxy
EWS           set       on   External  proxy
EWS           null      off  External  err:WindowsAuthenticationDisabledOnTarget
Availability  null      on   External  proxy
ECP           null      on   External  err:ProtocolNotAvailableForMailboxVersion
POP3          null      off  External  pop
IMAP4         set       off  Internal  pop
Autodiscover  null      off  External  serve
"""


@pytest.mark.parametrize(
    ("protocol", "external", "iwa", "entry", "expected"), _rows(FROM_2007_TABLE)
)
def test_2007_cas_to_2007_cas_of_another_site(
    protocol: str, external: str, iwa: str, entry: str, expected: str
) -> None:
    p = ClientProtocol(protocol)
    got = ask(build(br_external=external == "set", br_iwa=iwa == "on"), p, entry=Entry(entry))
    if expected == "serve":
        assert got == ServeLocally(protocol=p, mailbox_server="BR07", database="BR07-DB")
    elif expected.startswith("err:"):
        assert isinstance(got, Error) and got.reason == ErrorReason(expected.split(":")[1])
    elif expected.startswith("redirect:"):
        # 2007's own cross-site redirect: no Legacy wrapper (the mailbox is of its version).
        assert isinstance(got, Redirect), got
        assert got.kind == RedirectKind(expected.split(":")[1])
        assert got.url.startswith("https://br.contoso.com/") and got.target_server == "BR07"
    elif expected == "pop":
        assert got == pop_proxy(p, "BR07", E07)
    else:
        assert got == http_proxy(p, "BR07", E07)


def test_iwa_off_on_the_target_names_iis_and_the_fix() -> None:
    got = ask(build(br_iwa=False), P.OWA)
    assert isinstance(got, Error)
    assert got.vdir == "BR07\\owa (Default Web Site)" and got.server == "BR07"
    assert "Integrated Windows authentication is off" in got.message
    assert "-WindowsAuthentication $true" in got.message


def test_2007_redirects_by_the_page_even_when_set_silent() -> None:
    # CrossSiteRedirectType (silent redirection) is a 2010 SP2 setting.
    got = ask(build(br_external=True, hq_silent=True), P.OWA)
    assert isinstance(got, Redirect) and got.kind == RedirectKind.OWA_MANUAL


@pytest.mark.parametrize("protocol", [P.OWA, P.EAS, P.EWS, P.POP3, P.IMAP4])
def test_2007_cas_serves_2007_mailboxes_of_its_site(protocol: ClientProtocol) -> None:
    got = ask(build(), protocol, LENA)
    assert got == ServeLocally(protocol=protocol, mailbox_server="HQ07", database="HQ07-DB")


@pytest.mark.parametrize("protocol", [P.OWA, P.EAS, P.EWS, P.POP3])
def test_2007_cas_cannot_open_a_2010_mailbox(protocol: ClientProtocol) -> None:
    got = ask(build(), protocol, ALICE)
    assert isinstance(got, Error) and got.reason == ErrorReason.MAILBOX_NEWER_THAN_CLIENT_ACCESS
    assert "Exchange 2010" in got.message and "HQ07" in got.message


# The 2010 CAS in front of 2007 mailboxes (the mixed story of examples/legacy.yaml).


def test_2010_cas_redirects_a_2007_mailbox_of_its_site_to_the_legacy_url() -> None:
    got = ask(build(), P.OWA, LENA, cas="HQ10")
    assert isinstance(got, Legacy) and got.kind == LegacyKind.EXCHANGE2007_REDIRECT
    assert isinstance(got.action, Redirect)
    assert got.action.url == "https://legacy.contoso.com/owa" and got.action.target_server == "HQ07"


@pytest.mark.parametrize("protocol", [P.OWA, P.EAS, P.EWS])
def test_2010_cas_proxies_a_2007_mailbox_of_a_site_without_external_url(
    protocol: ClientProtocol,
) -> None:
    got = ask(build(), protocol, DORA, cas="HQ10")
    assert got == Legacy(
        protocol=protocol,
        kind=LegacyKind.EXCHANGE2007_PROXY,
        mailbox_version=E07,
        action=http_proxy(protocol, "BR07", E07),
    )
    assert isinstance(got, Legacy) and isinstance(got.action, Proxy)
