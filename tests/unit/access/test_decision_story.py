"""Story 2 of SCENARIOS.md on the example topologies, step by step, as decisions.

seed.yaml: NY (EX-NY1, Internet-facing; EX2003) and FL (EX-FL1, ExternalUrl
$null).  us-eu.yaml: US (CASHUB1, naemail) and EU (CASHUB2, euemail as
InternalUrl, ExternalUrl $null).  Adam's mailbox is in FL / EU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sitemail.access.autodiscover_urls import AutodiscoverUrls, autodiscover_urls
from sitemail.access.decision import decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import resolve_host
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
    Model,
    RedirectType,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.topology import Topology

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
P = ClientProtocol
K = VirtualDirectoryKind


def load(name: str) -> list[Model]:
    return Topology.load(EXAMPLES / name).objects(hash_passwords=False)


def user(objects: list[Model], alias: str) -> Mailbox:
    return next(o for o in objects if isinstance(o, Mailbox) and o.alias == alias)


def set_vdir(objects: list[Model], server: str, kind: K, **changes: object) -> None:
    """What Set-*VirtualDirectory does to the directory object."""
    for o in objects:
        if isinstance(o, VirtualDirectory) and o.server == server and o.type == kind:
            for key, value in changes.items():
                setattr(o, key, value)


def entered(objects: list[Model], host: str, kind: K, server: str) -> Entry:
    ep = resolve_host(AccessDirectory.from_objects(objects), host, kind=kind, server=server)
    assert ep is not None, host
    return ep.entry


def ask(
    objects: list[Model],
    protocol: ClientProtocol,
    alias: str = "adam",
    *,
    cas: str = "EX-NY1",
    entry: Entry = Entry.EXTERNAL,
    eas: str | None = "14.1",
) -> Outcome:
    return decide(
        AccessDirectory.from_objects(objects),
        protocol=protocol,
        cas=cas,
        mailbox=user(objects, alias),
        entry=entry,
        eas_protocol_version=eas,
    )


FL_URLS = {
    P.OWA: "https://ex-fl1.contoso.com/owa",
    P.ECP: "https://ex-fl1.contoso.com/ecp",
    P.EAS: "https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync",
    P.EWS: "https://ex-fl1.contoso.com/EWS/Exchange.asmx",
    P.AVAILABILITY: "https://ex-fl1.contoso.com/EWS/Exchange.asmx",
}


# Step 1-2: FL's ExternalUrl is $null, so NY proxies everything.
@pytest.mark.parametrize("protocol", list(FL_URLS))
def test_step1_adam_is_proxied_to_fl_internal_url(protocol: ClientProtocol) -> None:
    seed = load("seed.yaml")
    entry = entered(seed, "mail.contoso.com", K.OWA, "EX-NY1")
    assert entry == Entry.EXTERNAL
    got = ask(seed, protocol, entry=entry)
    assert isinstance(got, Proxy)
    assert (got.target_server, got.target_url, got.ssl) == ("EX-FL1", FL_URLS[protocol], True)


@pytest.mark.parametrize(("protocol", "port"), [(P.POP3, 995), (P.IMAP4, 993)])
def test_step2_pop_imap_are_proxied_on_ssl_ports(protocol: ClientProtocol, port: int) -> None:
    got = ask(load("seed.yaml"), protocol)
    assert isinstance(got, Proxy)
    assert (got.target_server, got.host, got.port, got.ssl) == (
        "EX-FL1",
        "ex-fl1.contoso.com",
        port,
        True,
    )


def fl_made_internet_facing(redirect_type: RedirectType = RedirectType.MANUAL) -> list[Model]:
    """Set-OwaVirtualDirectory / Set-ActiveSyncVirtualDirectory -ExternalUrl on EX-FL1."""
    seed = load("seed.yaml")
    set_vdir(seed, "EX-FL1", K.OWA, external_url="https://mail-fl.contoso.com/owa")
    set_vdir(seed, "EX-FL1", K.ECP, external_url="https://mail-fl.contoso.com/ecp")
    set_vdir(
        seed,
        "EX-FL1",
        K.EAS,
        external_url="https://mail-fl.contoso.com/Microsoft-Server-ActiveSync",
    )
    set_vdir(seed, "EX-NY1", K.OWA, cross_site_redirect_type=redirect_type)
    return seed


def test_step3_owa_shows_the_redirection_page() -> None:
    got = ask(fl_made_internet_facing(), P.OWA)
    assert got == Redirect(
        protocol=P.OWA,
        kind=RedirectKind.OWA_MANUAL,
        url="https://mail-fl.contoso.com/owa",
        target_server="EX-FL1",
        vdir="EX-FL1\\owa (Default Web Site)",
        single_sign_on=False,
    )


def test_step3_silent_redirect_signs_the_user_in_with_forms_authentication() -> None:
    got = ask(fl_made_internet_facing(RedirectType.SILENT), P.OWA)
    assert isinstance(got, Redirect)
    assert (got.kind, got.url, got.single_sign_on) == (
        RedirectKind.OWA_SILENT,
        "https://mail-fl.contoso.com/owa",
        True,
    )


def test_step3_activesync_answers_451_with_fl_external_url() -> None:
    got = ask(fl_made_internet_facing(), P.EAS)
    assert isinstance(got, Redirect)
    assert (got.kind, got.url) == (
        RedirectKind.EAS_451,
        "https://mail-fl.contoso.com/Microsoft-Server-ActiveSync",
    )


@pytest.mark.parametrize("protocol", [P.EWS, P.AVAILABILITY, P.POP3, P.IMAP4])
def test_step3_ews_pop_imap_are_still_proxied(protocol: ClientProtocol) -> None:
    got = ask(fl_made_internet_facing(), protocol)
    assert isinstance(got, Proxy) and got.target_server == "EX-FL1"


def test_step4_windows_authentication_off_on_fl_fails_with_a_named_reason() -> None:
    seed = load("seed.yaml")
    set_vdir(seed, "EX-FL1", K.OWA, windows_authentication=False)
    got = ask(seed, P.OWA)
    assert isinstance(got, Error)
    assert got.reason == ErrorReason.WINDOWS_AUTHENTICATION_DISABLED
    assert (got.server, got.vdir) == ("EX-FL1", "EX-FL1\\owa (Default Web Site)")
    assert "https://ex-fl1.contoso.com/owa" in got.message
    assert "Set-OwaVirtualDirectory" in got.message
    # Only OWA's vdir was changed: EWS still proxies.
    assert isinstance(ask(seed, P.EWS), Proxy)


def test_step5_larry_activesync_goes_to_ex2003() -> None:
    got = ask(load("seed.yaml"), P.EAS, "larry")
    assert isinstance(got, Proxy)
    assert (got.target_server, got.target_version, got.target_url) == (
        "EX2003",
        ExchangeVersion.E2003,
        "https://ex2003.contoso.com/Microsoft-Server-ActiveSync",
    )


def test_step5_larry_owa_goes_to_exchange2003url() -> None:
    got = ask(load("seed.yaml"), P.OWA, "larry")
    assert isinstance(got, Legacy)
    assert got.kind == LegacyKind.OWA_EXCHANGE2003_URL
    assert isinstance(got.action, Redirect)
    assert got.action.url == "https://ex2003.contoso.com/exchange"


# ---------------------------------------------------------------- us-eu.yaml


def test_us_eu_naemail_is_an_external_entry_on_cashub1() -> None:
    # naemail is both InternalUrl and ExternalUrl of CASHUB1: it counts as external.
    ep = resolve_host(
        AccessDirectory.from_objects(load("us-eu.yaml")), "NAEMAIL.exchangelaboratory.com:443"
    )
    assert ep is not None
    assert (ep.server, ep.entry) == ("CASHUB1", Entry.EXTERNAL)


@pytest.mark.parametrize(
    ("protocol", "url"),
    [
        (P.OWA, "https://euemail.exchangelaboratory.com/owa"),
        (P.ECP, "https://euemail.exchangelaboratory.com/ecp"),
        (P.EAS, "https://euemail.exchangelaboratory.com/Microsoft-Server-ActiveSync"),
        (P.EWS, "https://euemail.exchangelaboratory.com/EWS/Exchange.asmx"),
    ],
)
def test_us_eu_adam_proxied_to_euemail(protocol: ClientProtocol, url: str) -> None:
    got = ask(load("us-eu.yaml"), protocol, cas="CASHUB1")
    assert isinstance(got, Proxy)
    assert (got.target_server, got.target_url) == ("CASHUB2", url)


def test_us_eu_nina_is_served_by_cashub1() -> None:
    got = ask(load("us-eu.yaml"), P.OWA, "nina", cas="CASHUB1")
    assert got == ServeLocally(protocol=P.OWA, mailbox_server="CASHUB1", database="US-DB1")


def test_us_eu_eu_gets_an_external_url_then_owa_redirects() -> None:
    objs = load("us-eu.yaml")
    set_vdir(objs, "CASHUB2", K.OWA, external_url="https://euemail.exchangelaboratory.com/owa")
    got = ask(objs, P.OWA, cas="CASHUB1")
    assert isinstance(got, Redirect)
    assert got.url == "https://euemail.exchangelaboratory.com/owa"


# --------------------------------------------------------------- Autodiscover


def test_autodiscover_hands_out_fl_internal_and_ny_external_while_fl_is_not_internet_facing() -> (
    None
):
    seed = load("seed.yaml")
    got = autodiscover_urls(
        AccessDirectory.from_objects(seed),
        mailbox=user(seed, "adam"),
        kind=K.EWS,
        answering_cas="EX-NY1",
    )
    assert got == AutodiscoverUrls(
        kind=K.EWS,
        internal_url="https://ex-fl1.contoso.com/EWS/Exchange.asmx",
        internal_server="EX-FL1",
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
        external_server="EX-NY1",
    )


def test_autodiscover_hands_out_fl_external_url_once_set() -> None:
    seed = fl_made_internet_facing()
    got = autodiscover_urls(
        AccessDirectory.from_objects(seed), mailbox=user(seed, "adam"), kind=K.OWA
    )
    assert isinstance(got, AutodiscoverUrls)
    assert (got.external_url, got.external_server) == ("https://mail-fl.contoso.com/owa", "EX-FL1")
