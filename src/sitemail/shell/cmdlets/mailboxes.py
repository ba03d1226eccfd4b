"""Get-MailboxDatabase, Get-Mailbox, New-Mailbox and Set-Mailbox.

A mailbox's homeMDB (Database) decides its server and site, and so where
transport delivers and which CAS proxies or redirects (spec 6.1, 8.2).
Passwords are only ever stored hashed (:mod:`sitemail.org.passwords`).
Per-database system mailboxes (``SystemMailbox-<guid>``, used by Test-Mailflow)
are hidden from Get-Mailbox, as Exchange hides them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sitemail.org.model import ExchangeVersion, Mailbox, MailboxDatabase, Server
from sitemail.org.passwords import hash_password
from sitemail.shell import (
    STRING,
    SWITCH,
    BoundParameters,
    CmdletError,
    MultiValuedType,
    MultiValuedUpdate,
    Parameter,
    Record,
    TableView,
    cmdlet,
)
from sitemail.shell.values import to_string

from .common import (
    SERVER_PARAMETER,
    Inv,
    get_identity_parameter,
    identity_parameter,
    nonterminating,
    reported,
    save,
)
from .fields import ChangeRejected, updated
from .param_types import SECURE_STRING, UNLIMITED, SecureString
from .services import matches, not_found, pick_one

MAILBOX_TYPE = "Microsoft.Exchange.Data.Directory.Management.Mailbox"
DATABASE_TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.MailboxDatabase"
MAILBOX_VIEW = TableView.of(MAILBOX_TYPE, "Name", "Alias", "ServerName", "ProhibitSendQuota")
DATABASE_VIEW = TableView.of(DATABASE_TYPE, "Name", "Server", "Recovery", "ReplicationType")
# Exchange names them SystemMailbox{<guid>}; braces cannot travel in the store API's URL
# path segments, so sitemail writes SystemMailbox-<guid>.
SYSTEM_MAILBOX_PREFIX = "SystemMailbox-"

# The msExchVersion Exchange shows for objects of each version.
_OBJECT_VERSION = {
    ExchangeVersion.E2010: "0.10 (14.0.100.0)",
    ExchangeVersion.E2007: "0.1 (8.0.535.0)",
    ExchangeVersion.E2003: "0.0 (6.5.6500.0)",
}

PROXY_IN_USE = (
    'The proxy address "SMTP:{address}" is already being used by the proxy addresses or '
    'LegacyExchangeDN of "{owner}". Please choose another proxy address.'
)


# ----------------------------------------------------------------- databases


def _database_server(inv: Inv, database: MailboxDatabase) -> Server | None:
    return inv.services.directory.get(Server, database.server)


def database_record(inv: Inv, database: MailboxDatabase) -> Record:
    server = _database_server(inv, database)
    version = server.version if server else ExchangeVersion.E2010
    folder = inv.services.lab_dir / "servers" / database.server / "mailbox"
    return Record(
        DATABASE_TYPE,
        [
            ("Name", database.name),
            ("Server", database.server),
            ("MasterServerOrAvailabilityGroup", database.server),
            ("Recovery", False),
            ("ReplicationType", "None"),
            ("EdbFilePath", str(folder / f"{database.name}.db")),
            ("IsMailboxDatabase", True),
            ("ExchangeVersion", _OBJECT_VERSION[version]),
            ("Identity", database.name),
        ],
    )


def _is_2010(inv: Inv, database: MailboxDatabase) -> bool:
    server = _database_server(inv, database)
    return server is not None and server.version is ExchangeVersion.E2010


@cmdlet(
    "Get-MailboxDatabase",
    get_identity_parameter("mailbox database"),
    SERVER_PARAMETER,
    Parameter(
        "IncludePreExchange2010",
        SWITCH,
        help="Also list the databases (storage groups) of Exchange 2003 and 2007 servers.",
    ),
    synopsis="Lists the mailbox databases and the servers that hold them.",
    examples=("Get-MailboxDatabase", "Get-MailboxDatabase -IncludePreExchange2010"),
    output_type=DATABASE_TYPE,
    views=(DATABASE_VIEW,),
)
@nonterminating
def get_mailbox_database(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    identity = params.typed("Identity", str)
    server_name = params.typed("Server", str)
    databases = inv.services.directory.list(MailboxDatabase)
    if not params.switch("IncludePreExchange2010"):
        databases = [d for d in databases if _is_2010(inv, d)]
    if server_name is not None:
        server = inv.services.server(server_name)
        databases = [d for d in databases if d.server.casefold() == server.name.casefold()]
    if identity is not None:
        databases = [d for d in databases if matches(identity, d.name)]
        if not databases:
            raise CmdletError(not_found(identity))
    return [database_record(inv, d) for d in databases]


# ----------------------------------------------------------------- mailboxes


def is_system_mailbox(mailbox: Mailbox) -> bool:
    return mailbox.alias.startswith(SYSTEM_MAILBOX_PREFIX)


def mailbox_path(inv: Inv, mailbox: Mailbox) -> str:
    return f"{inv.services.domain}/Users/{mailbox.display_name}"


def mailbox_record(inv: Inv, mailbox: Mailbox) -> Record:
    database = inv.services.directory.get(MailboxDatabase, mailbox.database)
    server = _database_server(inv, database) if database else None
    version = server.version if server else ExchangeVersion.E2010
    proxies = (
        f"SMTP:{mailbox.primary_smtp_address}",
        *(f"smtp:{a}" for a in mailbox.email_addresses),
    )
    legacy = version is ExchangeVersion.E2003
    return Record(
        MAILBOX_TYPE,
        [
            ("Name", mailbox.display_name),
            ("Alias", mailbox.alias),
            ("ServerName", database.server.lower() if database else None),
            ("ProhibitSendQuota", UNLIMITED),
            ("ProhibitSendReceiveQuota", UNLIMITED),
            ("IssueWarningQuota", UNLIMITED),
            ("UseDatabaseQuotaDefaults", True),
            ("Database", mailbox.database),
            ("DisplayName", mailbox.display_name),
            ("PrimarySmtpAddress", mailbox.primary_smtp_address),
            ("EmailAddresses", proxies),
            ("UserPrincipalName", f"{mailbox.alias}@{inv.services.domain}"),
            ("RecipientType", "UserMailbox"),
            ("RecipientTypeDetails", "LegacyMailbox" if legacy else "UserMailbox"),
            ("OrganizationalUnit", f"{inv.services.domain}/Users"),
            ("ExchangeVersion", _OBJECT_VERSION[version]),
            ("Identity", mailbox_path(inv, mailbox)),
        ],
    )


def _user_mailboxes(inv: Inv) -> list[Mailbox]:
    return [m for m in inv.services.directory.list(Mailbox) if not is_system_mailbox(m)]


def _named(inv: Inv, identity: str, mailbox: Mailbox) -> bool:
    name = identity.rsplit("/", 1)[-1]
    return matches(name, mailbox.alias, mailbox.display_name, *mailbox.all_addresses)


def find_mailbox(inv: Inv, identity: str) -> Mailbox:
    return pick_one(identity, (m for m in _user_mailboxes(inv) if _named(inv, identity, m)))


@cmdlet(
    "Get-Mailbox",
    get_identity_parameter("mailbox (alias, name or e-mail address)"),
    Parameter("Database", STRING, help="Only the mailboxes of this database."),
    SERVER_PARAMETER,
    synopsis="Lists mailboxes with their database and server.",
    examples=("Get-Mailbox", "Get-Mailbox adam | Format-List", "Get-Mailbox -Server EX-FL1"),
    output_type=MAILBOX_TYPE,
    views=(MAILBOX_VIEW,),
)
@nonterminating
def get_mailbox(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    identity = params.typed("Identity", str)
    database = params.typed("Database", str)
    server_name = params.typed("Server", str)
    mailboxes = _user_mailboxes(inv)
    if database is not None:
        mailboxes = [m for m in mailboxes if matches(database, m.database)]
    if server_name is not None:
        server = inv.services.server(server_name)
        held = {
            d.name.casefold()
            for d in inv.services.directory.list(MailboxDatabase)
            if d.server.casefold() == server.name.casefold()
        }
        mailboxes = [m for m in mailboxes if m.database.casefold() in held]
    if identity is not None:
        mailboxes = [m for m in mailboxes if _named(inv, identity, m)]
        if not mailboxes:
            raise CmdletError(not_found(identity))
    return [mailbox_record(inv, m) for m in mailboxes]


def check_addresses(inv: Inv, mailbox: Mailbox) -> None:
    """Every address of ``mailbox`` is its own (Exchange's proxy address check)."""
    for other in inv.services.directory.list(Mailbox):
        if other.alias.casefold() == mailbox.alias.casefold():
            continue
        taken = set(other.all_addresses)
        for address in mailbox.all_addresses:
            if address in taken:
                raise CmdletError(
                    PROXY_IN_USE.format(address=address, owner=mailbox_path(inv, other))
                )


def _default_database(inv: Inv) -> str:
    """Where a new mailbox goes when -Database is not given: the local server's first
    2010 database, else the organization's first (Exchange distributes automatically)."""
    databases = [d for d in inv.services.directory.list(MailboxDatabase) if _is_2010(inv, d)]
    local = inv.services.local_server().name.casefold()
    for database in databases:
        if database.server.casefold() == local:
            return database.name
    if not databases:
        raise CmdletError("The organization has no Exchange 2010 mailbox database.")
    return databases[0].name


def _password(params: BoundParameters) -> str:
    secret = params.typed("Password", SecureString)
    assert secret is not None
    return hash_password(secret.reveal())


@cmdlet(
    "New-Mailbox",
    Parameter("Name", STRING, position=0, mandatory=True, help="The user's name."),
    Parameter("Alias", STRING, help="Default: the user principal name's prefix, else the name."),
    Parameter("DisplayName", STRING, help="Default: the name."),
    Parameter("UserPrincipalName", STRING, help="alias@domain, used to sign in."),
    Parameter(
        "Password",
        SECURE_STRING,
        mandatory=True,
        help="(ConvertTo-SecureString -String '...' -AsPlainText -Force); stored hashed.",
    ),
    Parameter("Database", STRING, help="The mailbox database (homeMDB)."),
    Parameter("PrimarySmtpAddress", STRING, help="Default: alias@<the default domain>."),
    Parameter("FirstName", STRING),
    Parameter("LastName", STRING),
    synopsis="Creates a user with a mailbox in a mailbox database.",
    examples=(
        "New-Mailbox -Name 'Frank Fl' -Alias frank -Database FL-DB1 -Password "
        "(ConvertTo-SecureString -String 'Pa55word!' -AsPlainText -Force)",
    ),
    supports_should_process=True,
    output_type=MAILBOX_TYPE,
    views=(MAILBOX_VIEW,),
)
@nonterminating
def new_mailbox(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    name = str(params["Name"])
    upn = params.typed("UserPrincipalName", str)
    alias = params.typed("Alias", str) or re.sub(
        r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]", "", upn.split("@")[0] if upn else name
    )
    if not alias:
        raise CmdletError(f"An alias can't be made from the name '{name}'; give -Alias.")
    database_name = params.typed("Database", str) or _default_database(inv)
    database = pick_one(
        database_name,
        (d for d in inv.services.directory.list(MailboxDatabase) if matches(database_name, d.name)),
    )
    primary = params.typed("PrimarySmtpAddress", str) or f"{alias}@{inv.services.domain}"
    try:
        mailbox = Mailbox(
            alias=alias,
            display_name=params.typed("DisplayName", str) or name,
            primary_smtp_address=primary,
            database=database.name,
        )
    except ValueError as error:
        raise ChangeRejected(str(error)) from None
    if inv.services.directory.get(Mailbox, alias) is not None:
        raise CmdletError(f"The alias '{alias}' is already being used; choose another alias.")
    check_addresses(inv, mailbox)
    if not inv.should_process(mailbox.display_name, "New-Mailbox"):
        return []
    mailbox = mailbox.model_copy(update={"password_hash": _password(params)})
    with reported():
        inv.services.directory.create(mailbox)
    return [mailbox_record(inv, mailbox)]


def _proxy_addresses(update: MultiValuedUpdate, mailbox: Mailbox) -> tuple[str, list[str]]:
    """The primary and secondary SMTP addresses after ``-EmailAddresses``.

    ``SMTP:`` (capitals) marks the primary address, ``smtp:`` (or none) the others.
    """
    current = [
        f"SMTP:{mailbox.primary_smtp_address}",
        *(f"smtp:{a}" for a in mailbox.email_addresses),
    ]
    proxies = [to_string(p) for p in update.apply(current)]
    primary: str | None = None
    others: list[str] = []
    for proxy in proxies:
        prefix, colon, address = proxy.partition(":")
        if not colon:
            prefix, address = "smtp", proxy
        if prefix.casefold() != "smtp":
            raise CmdletError(f"The proxy address '{proxy}' isn't an SMTP address (smtp:...).")
        if prefix == "SMTP" and primary is None:
            primary = address
        else:
            others.append(address)
    if primary is None:
        kept = mailbox.primary_smtp_address
        primary = kept if kept in (a.lower() for a in others) else (others[0] if others else "")
    if not primary:
        raise CmdletError("A mailbox needs at least one SMTP address.")
    return primary, [a for a in others if a.lower() != primary.lower()]


@cmdlet(
    "Set-Mailbox",
    identity_parameter("mailbox (alias, name or e-mail address)"),
    Parameter("DisplayName", STRING),
    Parameter("Name", STRING, help="Same as DisplayName here."),
    Parameter("PrimarySmtpAddress", STRING),
    Parameter(
        "EmailAddresses",
        MultiValuedType(STRING),
        help="SMTP:primary@domain, smtp:other@domain ... (a list replaces; @{Add=..} edits).",
    ),
    Parameter("Password", SECURE_STRING, help="A new password; stored hashed."),
    synopsis="Changes a mailbox's names, e-mail addresses or password.",
    examples=('Set-Mailbox adam -EmailAddresses @{Add="smtp:adam.f@contoso.com"}',),
    supports_should_process=True,
)
@nonterminating
def set_mailbox(item: object | None, params: BoundParameters, inv: Inv) -> None:
    mailbox = find_mailbox(inv, str(params["Identity"]))
    update: dict[str, object] = {}
    for name in ("DisplayName", "Name"):
        if name in params:
            update["display_name"] = to_string(params[name])
    addresses = params.get("EmailAddresses")
    if isinstance(addresses, MultiValuedUpdate):
        primary, others = _proxy_addresses(addresses, mailbox)
        update["primary_smtp_address"] = primary
        update["email_addresses"] = others
    if "PrimarySmtpAddress" in params:
        new_primary = to_string(params["PrimarySmtpAddress"]).lower()
        old_primary = str(update.get("primary_smtp_address", mailbox.primary_smtp_address))
        kept = update.get("email_addresses", mailbox.email_addresses)
        others = [str(a) for a in kept] if isinstance(kept, list) else []
        update["primary_smtp_address"] = new_primary
        update["email_addresses"] = [a for a in [*others, old_primary] if a != new_primary]
    if "Password" in params:
        update["password_hash"] = _password(params)
    new = updated(mailbox, update)
    check_addresses(inv, new)
    save(inv, mailbox, new, "Set-Mailbox")


DEFINITIONS = (get_mailbox_database, get_mailbox, new_mailbox, set_mailbox)
