"""appcmd's syntax over one server's IIS: list sites, virtual directories, applications and
the authentication sections, and set the authentication sections.

``appcmd VERB OBJECT [identifier] [-param:value ...]`` as IIS 7's
``%windir%\\system32\\inetsrv\\appcmd.exe`` takes it: parameters start with
``-`` or ``/`` and take their value after ``:``; sections may be named in
full (``system.webServer/security/authentication/windowsAuthentication``)
or by their last part.  The authentication sections are locked at the
server level in IIS 7 (overrideModeDefault ``Deny``), so ``set config`` on
them needs ``/commit:apphost``, as with the real appcmd.

IIS 6 (Exchange 2003's Windows Server 2003) has no appcmd: there the same
commands are the IIS Manager view of the IIS 6 metabase, and a change is
written to the metabase (``AuthFlags``) where the System Attendant will put
back what Exchange System Manager says.

The ``ERROR ( message:... )`` texts follow appcmd's form; their exact words
are unverified and kept as the constants below.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from sitemail.iis.server_view import SITE_ID, SITE_NAME, IisServerView, IisVdir, NotChangeable
from sitemail.org.directory import DirectoryError

__all__ = ["AppcmdResult", "run_appcmd", "usage"]

# appcmd's messages (form from appcmd 7.x; exact words unverified).
UNSUPPORTED_OBJECT = (
    "Object '{name}' is not supported.  Run 'appcmd.exe /?' to display supported objects."
)
UNSUPPORTED_VERB = "ERROR ( message:The verb '{verb}' is not supported on the object '{obj}'. )"
NOT_FOUND = 'ERROR ( message:Cannot find {obj} object with identifier "{ident}". )'
UNKNOWN_SECTION = 'ERROR ( message:Unknown config section "{section}". )'
UNKNOWN_ATTRIBUTE = 'ERROR ( message:Unknown attribute "{name}".  Replace with -? for help. )'
BAD_BOOLEAN = (
    'ERROR ( message:Failed to process attribute "{name}".  Invalid boolean value '
    '"{value}"; the value must be "true" or "false". )'
)
NEEDS_SECTION = "ERROR ( message:Must specify the SECTION parameter. )"
NEEDS_ATTRIBUTE = "ERROR ( message:Must specify an attribute to set. )"
# sitemail's own: it shows the configuration of virtual directories only.
NEEDS_PATH = (
    'ERROR ( message:Name the virtual directory: list config "Default Web Site/owa" '
    "-section:windowsAuthentication. )"
)
LOCKED_SECTION = (
    "ERROR ( message:Configuration error\n"
    "Filename: \\\\?\\{physical}\\web.config\n"
    "Line Number: 0\n"
    "Description: This configuration section cannot be used at this path. This happens when "
    "the section is locked at a parent level. Locking is either by default "
    '(overrideModeDefault="Deny"), or set explicitly by a location tag with '
    'overrideMode="Deny" or the legacy allowOverride="false".\n. )'
)

_SECTION_PREFIX = "system.webServer/security/authentication/"
#: appcmd section name -> the authentication method it switches.
SECTIONS = {
    "anonymousAuthentication": "anonymous",
    "basicAuthentication": "basic",
    "windowsAuthentication": "windows",
}
_OBJECTS = ("site", "app", "vdir", "config")


@dataclass
class AppcmdResult:
    output: str
    ok: bool = True
    changed: list[str] = field(default_factory=list)


def usage(view: IisServerView) -> str:
    server = view.server
    if view.iis6:
        head = (
            f"{server.name} runs Windows Server 2003 with IIS 6.0, which has no appcmd.  This is "
            "the IIS Manager view of its IIS 6 metabase (MetaBase.xml), spoken in appcmd's "
            "syntax: a change is written to the metabase's AuthFlags of the virtual directory, "
            "where Exchange 2003's System Attendant replaces it with what Exchange System "
            f"Manager says at its next pass.  To make a lasting change use `sitemail esm "
            f"{server.name}`.\n\n"
        )
    else:
        head = (
            f"{server.name} runs IIS {view.iis_version} (Exchange "
            f"{server.version.product}).  Basic and Windows authentication of an Exchange "
            "virtual directory are the settings Set-*VirtualDirectory changes: a change here "
            "is a change there.\n\n"
        )
    return head + (
        "  list site                                  the web sites\n"
        "  list vdir | list app                       virtual directories, applications\n"
        '  list config "Default Web Site/owa" -section:windowsAuthentication\n'
        "                                             one authentication section "
        "(anonymousAuthentication,\n"
        "                                             basicAuthentication, "
        "windowsAuthentication); all without -section\n"
        '  set config "Default Web Site/Microsoft-Server-ActiveSync" '
        "-section:windowsAuthentication /enabled:true /commit:apphost\n"
        "                                             switch a method "
        "(/commit:apphost is needed on IIS 7, not on IIS 6)\n"
        "  help | /?                                  this text;  exit  leaves the console\n"
    )


@dataclass
class _Args:
    verb: str
    obj: str
    ident: str | None
    params: dict[str, str]


class _Refused(Exception):
    pass


def _parse(words: list[str]) -> _Args:
    if words and words[0].casefold() in ("appcmd", "appcmd.exe"):
        words = words[1:]
    positional: list[str] = []
    params: dict[str, str] = {}
    for word in words:
        if word[:1] in "-/" and len(word) > 1:
            name, _, value = word[1:].partition(":")
            params[name] = value
        else:
            positional.append(word)
    if len(positional) < 2:
        raise _Refused(UNSUPPORTED_OBJECT.format(name=(positional[1:] or [""])[0].upper()))
    verb, obj = positional[0].casefold(), positional[1].casefold()
    if obj.endswith("s") and obj[:-1] in _OBJECTS:
        obj = obj[:-1]  # appcmd takes "sites" for "site", "vdirs" for "vdir"
    if obj not in _OBJECTS:
        raise _Refused(UNSUPPORTED_OBJECT.format(name=positional[1].upper()))
    ident = positional[2] if len(positional) > 2 else None
    if len(positional) > 3:
        raise _Refused(f'ERROR ( message:Unexpected argument "{positional[3]}". )')
    return _Args(verb, obj, ident, params)


def _param(params: dict[str, str], name: str) -> str | None:
    return next((v for k, v in params.items() if k.casefold() == name.casefold()), None)


def _section(params: dict[str, str]) -> str | None:
    given = _param(params, "section")
    if given is None:
        return None
    short = given.removeprefix(_SECTION_PREFIX) if given.startswith(_SECTION_PREFIX) else given
    for name in SECTIONS:
        if name.casefold() == short.casefold() and "/" not in short:
            return name
    raise _Refused(UNKNOWN_SECTION.format(section=given))


def _find_vdir(view: IisServerView, ident: str | None, obj: str) -> IisVdir:
    text = (ident or "").strip().strip("/")
    site, _, leaf = text.partition("/")
    found = view.vdir(leaf) if site.casefold() == SITE_NAME.casefold() and leaf else None
    if found is None:
        raise _Refused(NOT_FOUND.format(obj=obj.upper(), ident=ident or ""))
    return found


def _site_line(view: IisServerView) -> str:
    return f'SITE "{SITE_NAME}" (id:{SITE_ID},bindings:http/*:80:,https/*:443:,state:Started)'


def _list(view: IisServerView, args: _Args) -> str:
    if args.obj == "site":
        if args.ident is not None and args.ident.casefold() != SITE_NAME.casefold():
            raise _Refused(NOT_FOUND.format(obj="SITE", ident=args.ident))
        return _site_line(view) + "\n"
    vdirs = view.vdirs()
    if args.obj == "vdir":
        rows = [f'VDIR "{SITE_NAME}/" (physicalPath:%SystemDrive%\\inetpub\\wwwroot)']
        rows += [f'VDIR "{v.path}/" (physicalPath:{v.physical_path})' for v in vdirs]
        return "\n".join(rows) + "\n"
    if args.obj == "app":
        rows = [f'APP "{SITE_NAME}/" (applicationPool:DefaultAppPool)']
        rows += [f'APP "{v.path}" (applicationPool:{v.app_pool})' for v in vdirs]
        return "\n".join(rows) + "\n"
    if args.ident is None:
        raise _Refused(NEEDS_PATH)
    vdir = _find_vdir(view, args.ident, "config")
    section = _section(args.params)
    return _config_xml(view, vdir, [section] if section else list(SECTIONS))


def _element(name: str, enabled: bool) -> list[str]:
    value = "true" if enabled else "false"
    if name == "windowsAuthentication":
        return [
            f'      <windowsAuthentication enabled="{value}">',
            "        <providers>",
            '          <add value="Negotiate" />',
            '          <add value="NTLM" />',
            "        </providers>",
            "      </windowsAuthentication>",
        ]
    if name == "anonymousAuthentication":
        return [f'      <anonymousAuthentication enabled="{value}" userName="IUSR" />']
    return [f'      <{name} enabled="{value}" />']


def _config_xml(view: IisServerView, vdir: IisVdir, sections: list[str]) -> str:
    rows = []
    if view.iis6:
        rows.append(f"<!-- IIS 6 metabase: {view.metabase_line(vdir)} -->")
    rows += ["<system.webServer>", "  <security>", "    <authentication>"]
    for name in sections:
        rows += _element(name, getattr(vdir.auth, SECTIONS[name]))
    rows += ["    </authentication>", "  </security>", "</system.webServer>"]
    return "\n".join(rows) + "\n"


def _set(view: IisServerView, args: _Args) -> AppcmdResult:
    if args.obj != "config":
        raise _Refused(UNSUPPORTED_VERB.format(verb="SET", obj=args.obj.upper()))
    vdir = _find_vdir(view, args.ident, "config")
    section = _section(args.params)
    if section is None:
        raise _Refused(NEEDS_SECTION)
    attributes = {k: v for k, v in args.params.items() if k.casefold() not in ("section", "commit")}
    if not attributes:
        raise _Refused(NEEDS_ATTRIBUTE)
    for name in attributes:
        if name.casefold() != "enabled":
            raise _Refused(UNKNOWN_ATTRIBUTE.format(name=name))
    value = next(iter(attributes.values())).strip('"')
    if value.casefold() not in ("true", "false"):
        raise _Refused(BAD_BOOLEAN.format(name="enabled", value=value))
    commit = _param(args.params, "commit")
    if not view.iis6 and (commit or "").casefold() != "apphost":
        raise _Refused(LOCKED_SECTION.format(physical=vdir.physical_path))
    try:
        after = view.set_auth(vdir, SECTIONS[section], value.casefold() == "true")
    except NotChangeable as exc:
        raise _Refused(f"ERROR ( message:{exc}. )") from None
    except (DirectoryError, OSError) as exc:
        raise _Refused(f"ERROR ( message:{exc} )") from None
    full = _SECTION_PREFIX + section
    if view.iis6:
        text = (
            f"Applied configuration changes to the IIS 6 metabase: {view.metabase_line(after)}\n"
            f"Note: {vdir.leaf} is an Exchange virtual directory; Exchange's System Attendant "
            "replaces this with what Exchange System Manager says at its next pass (`sitemail "
            f"esm {view.server.name}` makes a lasting change).\n"
        )
    else:
        text = (
            f'Applied configuration changes to section "{full}" for "MACHINE/WEBROOT/APPHOST/'
            f'{vdir.path}" at configuration commit path "MACHINE/WEBROOT/APPHOST"\n'
        )
    return AppcmdResult(text, True, [vdir.leaf])


def run_appcmd(view: IisServerView, line: str | list[str]) -> AppcmdResult:
    """One appcmd command line (a string, or its words) against ``view``."""
    try:
        words = shlex.split(line) if isinstance(line, str) else list(line)
    except ValueError as exc:
        return AppcmdResult(f"ERROR ( message:{exc}. )\n", False)
    if not words:
        return AppcmdResult("")
    if words[-1] in ("/?", "-?") or words[0].casefold() in ("help", "/?", "-?"):
        return AppcmdResult(usage(view))
    try:
        args = _parse(words)
        if args.verb == "list":
            return AppcmdResult(_list(view, args))
        if args.verb == "set":
            return _set(view, args)
        raise _Refused(UNSUPPORTED_VERB.format(verb=args.verb.upper(), obj=args.obj.upper()))
    except _Refused as exc:
        return AppcmdResult(str(exc) + "\n", False)
