"""Get-AdSite, Get-AdSiteLink and Set-AdSiteLink (spec 6.2).

Sites and links are Active Directory objects; Exchange shows them by their
canonical name (``contoso.com/Configuration/Sites/NY``) and routes on a
link's ExchangeCost when it is set, else on its AD cost.
"""

from __future__ import annotations

from collections.abc import Iterable

from sitemail.org.model import Site, SiteLink
from sitemail.shell import (
    BoundParameters,
    CmdletError,
    IntType,
    Record,
    TableView,
    cmdlet,
)

from .common import Inv, get_identity_parameter, identity_parameter, nonterminating, save
from .fields import Field, changes, set_parameters, updated
from .param_types import UNLIMITED_SIZE
from .services import matches, not_found, pick_one

SITE_TYPE = "Microsoft.Exchange.Data.Directory.Management.ADSite"
LINK_TYPE = "Microsoft.Exchange.Data.Directory.Management.ADSiteLink"
SITE_VIEW = TableView.of(SITE_TYPE, "Name", "HubSiteEnabled")
LINK_VIEW = TableView.of(
    LINK_TYPE, "Name", "Cost", "ADCost", "ExchangeCost", "MaxMessageSize", "Sites"
)

LINK_FIELDS: tuple[Field, ...] = (
    Field(
        "ExchangeCost",
        IntType(1, 99999),
        help="The cost Exchange routes on instead of the AD cost ($null clears it).",
    ),
    Field(
        "MaxMessageSize",
        UNLIMITED_SIZE,
        "size",
        help="The largest message relayed over this link (unlimited by default).",
    ),
)


def _last(identity: str) -> str:
    """The name at the end of a canonical name (``.../Sites/NY`` -> ``NY``)."""
    return identity.rstrip("/").rsplit("/", 1)[-1]


def site_record(inv: Inv, site: Site) -> Record:
    servers = [s.name for s in inv.services.servers() if s.site.casefold() == site.name.casefold()]
    return Record(
        SITE_TYPE,
        [
            ("Name", site.name),
            ("HubSiteEnabled", site.hub_site_enabled),
            ("Servers", tuple(servers)),
            ("Identity", inv.services.site_path(site.name)),
        ],
    )


def link_path(inv: Inv, link: SiteLink) -> str:
    return f"{inv.services.domain}/Configuration/Sites/Inter-Site Transports/IP/{link.name}"


def link_record(inv: Inv, link: SiteLink) -> Record:
    return Record(
        LINK_TYPE,
        [
            ("Name", link.name),
            ("Cost", link.effective_cost),
            ("ADCost", link.cost),
            ("ExchangeCost", link.exchange_cost),
            (
                "MaxMessageSize",
                LINK_FIELDS[1].show(link.max_message_size),
            ),
            ("Sites", tuple(inv.services.site_path(s) for s in link.sites)),
            ("Identity", link_path(inv, link)),
        ],
    )


def _sites(inv: Inv) -> list[Site]:
    return [s for s in inv.services.directory.list(Site) if not s.internet]


@cmdlet(
    "Get-AdSite",
    get_identity_parameter("Active Directory site"),
    synopsis="Lists the Active Directory sites of the organization.",
    examples=("Get-AdSite", "Get-AdSite FL | Format-List"),
    output_type=SITE_TYPE,
    views=(SITE_VIEW,),
)
@nonterminating
def get_ad_site(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    identity = params.typed("Identity", str)
    sites = _sites(inv)
    if identity is not None:
        sites = [s for s in sites if matches(_last(identity), s.name)]
        if not sites:
            raise CmdletError(not_found(identity))
    return [site_record(inv, s) for s in sites]


def _links(inv: Inv, identity: str | None) -> list[SiteLink]:
    links = inv.services.directory.list(SiteLink)
    if identity is None:
        return links
    found = [link for link in links if matches(_last(identity), link.name)]
    if not found:
        raise CmdletError(not_found(identity))
    return found


@cmdlet(
    "Get-AdSiteLink",
    get_identity_parameter("IP site link"),
    synopsis="Lists the IP site links with their AD and Exchange costs.",
    examples=("Get-AdSiteLink", "Get-AdSiteLink NY-FL | Format-List"),
    output_type=LINK_TYPE,
    views=(LINK_VIEW,),
)
@nonterminating
def get_ad_site_link(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    return [link_record(inv, link) for link in _links(inv, params.typed("Identity", str))]


@cmdlet(
    "Set-AdSiteLink",
    identity_parameter("IP site link"),
    *set_parameters(LINK_FIELDS),
    synopsis="Sets a site link's ExchangeCost (routing) or MaxMessageSize.",
    description="Routing follows the new cost within a second on every running hub.",
    examples=("Set-AdSiteLink NY-FL -ExchangeCost 10", "Set-AdSiteLink NY-FL -ExchangeCost $null"),
    supports_should_process=True,
)
@nonterminating
def set_ad_site_link(item: object | None, params: BoundParameters, inv: Inv) -> None:
    identity = str(params["Identity"])
    link = pick_one(identity, _links(inv, identity))
    update = changes(link, LINK_FIELDS, params)
    save(inv, link, updated(link, update, LINK_FIELDS), "Set-AdSiteLink")


DEFINITIONS = (get_ad_site, get_ad_site_link, set_ad_site_link)
