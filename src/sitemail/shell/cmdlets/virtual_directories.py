"""Get-/Set- for the OWA, ECP, ActiveSync and Web Services virtual directories (spec 8.7).

A site whose virtual directory has an ExternalUrl of ``$null`` is not
Internet-facing for that protocol: other sites' CAS proxy to its InternalUrl.
Giving FL an ExternalUrl (``Set-OwaVirtualDirectory "EX-FL1\\owa (Default Web
Site)" -ExternalUrl https://ex-fl1.contoso.com/owa``) turns proxying into
redirection for OWA and ActiveSync (spec 8.3); CAS servers see it within a
second.  ActiveSync names its authentication switches BasicAuthEnabled and
WindowsAuthEnabled, as Exchange does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sitemail.org.model import (
    ExchangeVersion,
    Server,
    VirtualDirectory,
    VirtualDirectoryKind,
    default_vdir_path,
)
from sitemail.shell import (
    BOOL,
    STRING,
    BoundParameters,
    CmdletDefinition,
    CmdletError,
    Record,
    TableView,
    cmdlet,
)

from .common import (
    SERVER_PARAMETER,
    Inv,
    get_identity_parameter,
    identity_parameter,
    nonterminating,
    save,
)
from .fields import Field, changes, items, make_record, set_parameters, updated
from .param_types import REDIRECT_TYPE
from .services import ExchangeServices, matches, not_found, pick_one

URLS = (
    Field("InternalUrl", STRING, help="The URL inside the organization (the proxy target)."),
    Field(
        "ExternalUrl",
        STRING,
        help="The URL from the Internet; $null: not Internet-facing (other sites proxy).",
    ),
)
FORMS = Field(
    "FormsAuthentication",
    BOOL,
    help="Forms-based sign-in; $true also sets Basic on and Windows and Digest off.",
)
BASIC = Field("BasicAuthentication", BOOL)
WINDOWS = Field(
    "WindowsAuthentication",
    BOOL,
    help="Integrated Windows authentication; needed on the target of a CAS-to-CAS proxy.",
)
DIGEST = Field("DigestAuthentication", BOOL)

DIGEST_WITH_FORMS = (
    "DigestAuthentication can't be enabled together with FormsAuthentication; turn forms-based "
    "authentication off first."
)


@dataclass(frozen=True)
class Family:
    """One kind of virtual directory and how its cmdlets name things."""

    kind: VirtualDirectoryKind
    noun: str
    type_name: str
    fields: tuple[Field, ...]
    what: str


FAMILIES = (
    Family(
        VirtualDirectoryKind.OWA,
        "OwaVirtualDirectory",
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.ADOwaVirtualDirectory",
        (
            *URLS,
            FORMS,
            BASIC,
            WINDOWS,
            DIGEST,
            Field(
                "CrossSiteRedirectType",
                REDIRECT_TYPE,
                help="Manual: a page with the other site's URL; Silent: sent there (SP2+).",
            ),
            Field("LegacyRedirectType", REDIRECT_TYPE),
            Field(
                "Exchange2003Url",
                STRING,
                help="Where users with Exchange 2003 mailboxes are sent (with the /exchange path).",
            ),
        ),
        "Outlook Web App",
    ),
    Family(
        VirtualDirectoryKind.ECP,
        "EcpVirtualDirectory",
        "Microsoft.Exchange.Management.SystemConfigurationTasks.ADEcpVirtualDirectory",
        (*URLS, FORMS, BASIC, WINDOWS, DIGEST),
        "Exchange Control Panel",
    ),
    Family(
        VirtualDirectoryKind.EAS,
        "ActiveSyncVirtualDirectory",
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.ADMobileVirtualDirectory",
        (
            *URLS,
            Field("BasicAuthEnabled", BOOL, attr="basic_authentication"),
            Field(
                "WindowsAuthEnabled",
                BOOL,
                attr="windows_authentication",
                help="Integrated Windows authentication; needed on the target of a proxy.",
            ),
        ),
        "Exchange ActiveSync",
    ),
    Family(
        VirtualDirectoryKind.EWS,
        "WebServicesVirtualDirectory",
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.ADWebServicesVirtualDirectory",
        (*URLS, BASIC, WINDOWS, DIGEST),
        "Exchange Web Services",
    ),
)


def _methods(vdir: VirtualDirectory) -> tuple[str, ...]:
    """Internal/ExternalAuthenticationMethods as Exchange derives them from the switches."""
    out = []
    if vdir.basic_authentication:
        out.append("Basic")
    if vdir.forms_authentication:
        out.append("Fba")
    if vdir.windows_authentication:
        out += ["Ntlm", "WindowsIntegrated"]
    if vdir.digest_authentication:
        out.append("Digest")
    return tuple(out)


#: Get-OwaVirtualDirectory's OwaVersion per server version (the OwaVersions values).
OWA_VERSION = {
    ExchangeVersion.E2003: "Exchange2003or2000",
    ExchangeVersion.E2007: "Exchange2007",
    ExchangeVersion.E2010: "Exchange2010",
}
#: OWA settings that came later than a server's version, which its virtual directory shows as
#: $null and Set-OwaVirtualDirectory refuses (unverified): Exchange2003Url came with 2007,
#: LegacyRedirectType with 2010, CrossSiteRedirectType with 2010 SP2.
_LATER_ONLY = {
    ExchangeVersion.E2003: frozenset(
        {"CrossSiteRedirectType", "LegacyRedirectType", "Exchange2003Url"}
    ),
    ExchangeVersion.E2007: frozenset({"CrossSiteRedirectType", "LegacyRedirectType"}),
}


def _later_only(server: Server | None) -> frozenset[str]:
    return _LATER_ONLY.get(server.version, frozenset()) if server is not None else frozenset()


def to_record(services: ExchangeServices, family: Family, vdir: VirtualDirectory) -> Record:
    server = services.directory.get(Server, vdir.server)
    host = server.fqdn if server else vdir.server.lower()
    legacy = server is not None and server.version is ExchangeVersion.E2003
    # A 2003 server's virtual directories are named as in IIS ("Exchange (Default Web Site)").
    leaf = vdir.name.rpartition(" (")[0] if legacy else default_vdir_path(vdir.type)
    leaf = leaf.strip("/").split("/")[0]
    later = _later_only(server)
    fields = [(k, None if k in later else v) for k, v in items(vdir, family.fields)]
    if family.kind is VirtualDirectoryKind.OWA and server is not None:
        fields.append(("OwaVersion", OWA_VERSION[server.version]))
    return make_record(
        family.type_name,
        [
            ("Name", vdir.name),
            ("Server", vdir.server),
            *fields,
            ("InternalAuthenticationMethods", _methods(vdir)),
            ("ExternalAuthenticationMethods", _methods(vdir)),
            ("MetabasePath", f"IIS://{host}/W3SVC/1/ROOT/{leaf}"),
            ("Identity", vdir.identity),
        ],
        {},
    )


def _of_kind(inv: Inv, family: Family) -> list[VirtualDirectory]:
    servers = inv.services.servers()
    order = {s.name.casefold(): i for i, s in enumerate(servers)}
    # The 2010 shell reads a 2003 server's Exchange and Public as legacy OWA virtual
    # directories; its Microsoft-Server-ActiveSync and OMA are no objects these cmdlets
    # read (unverified): Exchange System Manager manages them (sitemail esm).
    legacy = {s.name.casefold() for s in servers if s.version is ExchangeVersion.E2003}
    found = [
        v
        for v in inv.services.directory.list(VirtualDirectory)
        if v.type is family.kind
        and (family.kind is VirtualDirectoryKind.OWA or v.server.casefold() not in legacy)
    ]
    return sorted(found, key=lambda v: order.get(v.server.casefold(), 0))


def _named(identity: str, vdir: VirtualDirectory) -> bool:
    server_part, _, name = identity.rpartition("\\")
    return matches(name, vdir.name) and (not server_part or matches(server_part, vdir.server))


def _fba_rules(vdir: VirtualDirectory, params: BoundParameters, update: dict[str, object]) -> None:
    """FormsAuthentication $true implies Basic on, Windows and Digest off (spec 8.7)."""
    if "FormsAuthentication" in params and params["FormsAuthentication"] is True:
        if params.get("DigestAuthentication") is True:
            raise CmdletError(DIGEST_WITH_FORMS)
        update.setdefault("basic_authentication", True)
        update.setdefault("windows_authentication", False)
        update.setdefault("digest_authentication", False)
    forms = update.get("forms_authentication", vdir.forms_authentication)
    if forms is True and update.get("digest_authentication") is True:
        raise CmdletError(DIGEST_WITH_FORMS)


def _definitions(family: Family) -> tuple[CmdletDefinition[ExchangeServices], ...]:
    view = TableView.of(family.type_name, "Name", "Server")
    example = f"{family.kind.value.lower()} (Default Web Site)"
    if family.kind is VirtualDirectoryKind.EAS:
        example = "Microsoft-Server-ActiveSync (Default Web Site)"
    elif family.kind is VirtualDirectoryKind.EWS:
        example = "EWS (Default Web Site)"

    @cmdlet(
        f"Get-{family.noun}",
        get_identity_parameter(f"{family.what} virtual directory (SERVER\\Name)"),
        SERVER_PARAMETER,
        synopsis=f"Lists the {family.what} virtual directories of the Client Access servers.",
        examples=(f"Get-{family.noun}", f"Get-{family.noun} -Server EX-FL1 | Format-List *Url*"),
        output_type=family.type_name,
        views=(view,),
    )
    @nonterminating
    def get(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
        identity = params.typed("Identity", str)
        server_name = params.typed("Server", str)
        found = _of_kind(inv, family)
        if server_name is not None:
            server = inv.services.server(server_name)
            found = [v for v in found if v.server.casefold() == server.name.casefold()]
        if identity is not None:
            found = [v for v in found if _named(identity, v)]
            if not found:
                raise CmdletError(not_found(identity))
        return [to_record(inv.services, family, v) for v in found]

    @cmdlet(
        f"Set-{family.noun}",
        identity_parameter(f"{family.what} virtual directory (SERVER\\Name)"),
        *set_parameters(family.fields),
        synopsis=f"Changes the {family.what} virtual directory of a server (URLs, authentication).",
        description="Client Access servers apply the change within a second.",
        examples=(
            f'Set-{family.noun} "EX-FL1\\{example}" -ExternalUrl https://ex-fl1.contoso.com'
            f"{default_vdir_path(family.kind)}",
        ),
        supports_should_process=True,
    )
    @nonterminating
    def set_(item: object | None, params: BoundParameters, inv: Inv) -> None:
        identity = str(params["Identity"])
        vdir = pick_one(identity, (v for v in _of_kind(inv, family) if _named(identity, v)))
        server = inv.services.directory.get(Server, vdir.server)
        for name in sorted(n for n in _later_only(server) if n in params):
            assert server is not None
            raise CmdletError(
                f"The parameter {name} can't be used on {vdir.identity}: it came after Exchange "
                f"{server.version.product}, the version of {server.name}."
            )
        update = changes(vdir, family.fields, params)
        if any(f is FORMS for f in family.fields):
            _fba_rules(vdir, params, update)
        save(inv, vdir, updated(vdir, update, family.fields), f"Set-{family.noun}")

    return (get, set_)


DEFINITIONS = tuple(d for family in FAMILIES for d in _definitions(family))
