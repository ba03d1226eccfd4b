"""``sitemail iis SERVER``: appcmd's syntax over IIS 7 (2010: the directory) and IIS 6 (2003)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sitemail.exchange2003.metabase import Metabase
from sitemail.iis.appcmd import run_appcmd
from sitemail.iis.console_cli import iis_main
from sitemail.iis.esm import esm_main
from sitemail.iis.server_view import IisServerView
from sitemail.org.directory import Directory
from sitemail.org.model import Server, VirtualDirectory

FL_EAS = "Default Web Site/Microsoft-Server-ActiveSync"


@pytest.fixture
def lab(seed_directory: Directory) -> Directory:
    return seed_directory


def view(directory: Directory, name: str, tmp_path: Path) -> IisServerView:
    return IisServerView(directory, directory.require(Server, name), tmp_path / "servers" / name)


def test_list_site_vdir_app_and_config_on_2010(lab: Directory, tmp_path: Path) -> None:
    fl = view(lab, "EX-FL1", tmp_path)
    assert run_appcmd(fl, "list site").output == (
        'SITE "Default Web Site" (id:1,bindings:http/*:80:,https/*:443:,state:Started)\n'
    )
    vdirs = run_appcmd(fl, "appcmd list vdir").output.splitlines()
    assert vdirs[0] == 'VDIR "Default Web Site/" (physicalPath:%SystemDrive%\\inetpub\\wwwroot)'
    assert (
        'VDIR "Default Web Site/owa/" (physicalPath:C:\\Program Files\\Microsoft\\Exchange '
        "Server\\V14\\ClientAccess\\Owa)" in vdirs
    )
    apps = run_appcmd(fl, "list apps").output
    assert 'APP "Default Web Site/EWS" (applicationPool:MSExchangeServicesAppPool)' in apps
    shown = run_appcmd(fl, f'list config "{FL_EAS}" -section:windowsAuthentication').output
    assert '<windowsAuthentication enabled="true">' in shown and "basic" not in shown
    every = run_appcmd(fl, f'list config "{FL_EAS}"').output
    assert '<anonymousAuthentication enabled="false" userName="IUSR" />' in every
    assert '<basicAuthentication enabled="true" />' in every


def test_set_config_on_2010_is_the_set_virtual_directory_setting(
    lab: Directory, tmp_path: Path
) -> None:
    fl = view(lab, "EX-FL1", tmp_path)
    line = (
        f'set config "{FL_EAS}" -section:system.webServer/security/authentication/'
        "windowsAuthentication /enabled:false"
    )
    locked = run_appcmd(fl, line)
    assert not locked.ok and "cannot be used at this path" in locked.output
    assert "overrideModeDefault" in locked.output
    done = run_appcmd(fl, line + " /commit:apphost")
    assert done.ok, done.output
    assert done.output.startswith(
        'Applied configuration changes to section "system.webServer/security/authentication/'
        'windowsAuthentication" for "MACHINE/WEBROOT/APPHOST/Default Web Site/'
        'Microsoft-Server-ActiveSync" at configuration commit path "MACHINE/WEBROOT/APPHOST"'
    )
    record = lab.require(VirtualDirectory, "EX-FL1\\Microsoft-Server-ActiveSync (Default Web Site)")
    assert record.windows_authentication is False
    anonymous = run_appcmd(
        fl, f'set config "{FL_EAS}" -section:anonymousAuthentication /enabled:true -commit:apphost'
    )
    assert not anonymous.ok and "no anonymous access" in anonymous.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("list frob", "Object 'FROB' is not supported."),
        ("delete site", "The verb 'DELETE' is not supported on the object 'SITE'"),
        ('list site "Other Site"', 'Cannot find SITE object with identifier "Other Site"'),
        ('list config "Default Web Site/nope"', "Cannot find CONFIG object with identifier"),
        (f'list config "{FL_EAS}" -section:digestAuth', 'Unknown config section "digestAuth"'),
        (
            f'set config "{FL_EAS}" -section:basicAuthentication /enabeld:true',
            'Unknown attribute "enabeld"',
        ),
        (
            f'set config "{FL_EAS}" -section:basicAuthentication /enabled:yes',
            'Invalid boolean value "yes"',
        ),
        (f'set config "{FL_EAS}" /enabled:true', "Must specify the SECTION parameter"),
        (f'set config "{FL_EAS}" -section:basicAuthentication', "Must specify an attribute"),
        ("set site /name:x", "The verb 'SET' is not supported on the object 'SITE'"),
        ('list config "Default Web Site/owa', "No closing quotation"),
    ],
)
def test_what_appcmd_refuses(lab: Directory, tmp_path: Path, line: str, message: str) -> None:
    result = run_appcmd(view(lab, "EX-FL1", tmp_path), line)
    assert not result.ok and message in result.output


def test_iis6_speaks_appcmd_over_the_metabase(lab: Directory, tmp_path: Path) -> None:
    ex2003 = view(lab, "EX2003", tmp_path)
    assert "IIS 6 metabase" in run_appcmd(ex2003, "/?").output
    vdirs = run_appcmd(ex2003, "list vdir").output
    assert (
        'VDIR "Default Web Site/Exchange/" '
        "(physicalPath:\\\\.\\BackOfficeStorage\\contoso.com\\MBX)" in vdirs
    )
    assert (
        'VDIR "Default Web Site/OMA/" (physicalPath:C:\\Program Files\\Exchsrvr\\OMA\\Browse)'
        in vdirs
    )
    # No /commit:apphost on IIS 6; the change goes to the metabase, not the directory.
    done = run_appcmd(
        ex2003, f'set config "{FL_EAS}" -section:windowsAuthentication /enabled:false'
    )
    assert (
        done.ok and 'AuthFlags="AuthBasic"' in done.output and "sitemail esm EX2003" in done.output
    )
    shown = run_appcmd(ex2003, f'list config "{FL_EAS}" -section:windowsAuthentication').output
    assert shown.startswith("<!-- IIS 6 metabase: /LM/W3SVC/1/ROOT/Microsoft-Server-ActiveSync")
    assert '<windowsAuthentication enabled="false">' in shown
    written = Metabase(tmp_path / "servers" / "EX2003").read()
    assert written is not None and not written["Microsoft-Server-ActiveSync"].windows
    record = lab.require(VirtualDirectory, "EX2003\\Microsoft-Server-ActiveSync (Default Web Site)")
    assert record.windows_authentication is True


def test_one_shot_commands_and_exit_codes(lab: Directory, tmp_path: Path) -> None:
    lab.close()  # the commands open the lab's directory themselves
    out, err = io.StringIO(), io.StringIO()
    assert iis_main(["EX2003", "list", "vdir"], tmp_path, stdout=out, stderr=err) == 0
    assert 'VDIR "Default Web Site/Microsoft-Server-ActiveSync/"' in out.getvalue()
    words = ["set", "config", FL_EAS, "-section:windowsAuthentication", "/enabled:maybe"]
    assert iis_main(["EX2003", *words], tmp_path, stdout=out, stderr=err) == 1
    assert iis_main(["EX9", "list", "site"], tmp_path, stdout=out, stderr=err) == 2
    assert "'EX9' is not an Exchange server of the lab" in err.getvalue()
    piped = io.StringIO("list site\nlist frob\nexit\nlist site\n")
    out = io.StringIO()
    assert iis_main(["EX-NY1"], tmp_path, stdin=piped, stdout=out, stderr=err) == 1
    assert out.getvalue().count('SITE "Default Web Site"') == 1
    out = io.StringIO()
    assert esm_main(["EX2003", "set", "OMA", "windows", "on"], tmp_path, stdout=out) == 0
    assert esm_main(["EX-NY1", "show"], tmp_path, stdout=out, stderr=err) == 2
    assert iis_main(["--dir", str(tmp_path / "nolab"), "EX2003"], tmp_path, stderr=err) == 2
    assert "no lab in" in err.getvalue()


def test_the_interactive_console_on_a_terminal(lab: Directory, tmp_path: Path) -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from sitemail.iis.appcmd import usage
    from sitemail.iis.console_cli import repl

    ex2003 = view(lab, "EX2003", tmp_path)

    def run_line(line: str) -> tuple[str, bool]:
        result = run_appcmd(ex2003, line)
        return result.output, result.ok

    out = io.StringIO()
    with create_pipe_input() as keys:
        keys.send_text("list site\rlist frob\rexit\r")
        code = repl(
            "EX2003 IIS 6 metabase> ",
            run_line,
            io.StringIO(),
            out,
            banner=usage(ex2003),
            pt_input=keys,
            pt_output=DummyOutput(),
        )
    assert code == 0
    text = out.getvalue()
    assert text.startswith("EX2003 runs Windows Server 2003 with IIS 6.0, which has no appcmd.")
    assert 'SITE "Default Web Site"' in text and "Object 'FROB' is not supported." in text
