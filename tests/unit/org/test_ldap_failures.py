"""Bad input for the LDAP directory: a server down or slow, a wrong URL, base DN or schema.

Each failure is a DirectoryError that names the URL and the cause, comes within
a bounded time, and leaves no half-written change behind.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import sitemail
from tests.slapd import PASSWORD, Slapd, free_port

from sitemail.org.directory import (
    DirectoryError,
    DirectoryMismatch,
    DirectoryUnavailable,
    open_directory,
)
from sitemail.org.ldap_directory import LdapDirectory
from sitemail.org.ldap_settings import parse_ldap_url
from sitemail.org.model import Site

SUFFIX = "DC=contoso,DC=com"
FAST = {"timeout": "0.3", "retries": "1"}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    # A size limit as strict as a real server's default is generous, and an account
    # that is exempt from it as docs/directory.md says.
    exempt = "CN=exempt,CN=Users,DC=contoso,DC=com"
    server = Slapd(
        tmp_path_factory.mktemp("slapd"),
        SUFFIX,
        global_conf="sizelimit 5\n",
        database_conf=f'limits dn.exact="{exempt}" size=unlimited time=unlimited\n',
    )
    server.start()
    yield server
    server.stop()


def test_a_fresh_server_gets_its_suffix_and_change_log_on_first_open(slapd: Slapd) -> None:
    d = open_directory(slapd.url(org="Contoso"))
    assert d.change_counter() == 0
    d.put(Site(name="NY"))
    assert d.get(Site, "NY") is not None
    d.close()


def test_a_server_that_is_down_is_named_with_its_cause(slapd: Slapd) -> None:
    url = f"ldap://127.0.0.1:{free_port()}/{SUFFIX}"
    begun = time.monotonic()
    with pytest.raises(DirectoryUnavailable) as err:
        open_directory(url + "?timeout=0.3&retries=1")
    assert time.monotonic() - begun < 3
    message = str(err.value)
    assert url in message
    assert "Connection refused" in message
    assert "2 attempts" in message


def test_a_server_that_does_not_answer_times_out_within_the_bound() -> None:
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}/{SUFFIX}?timeout=0.3&retries=2"
        begun = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match="did not answer in time"):
            open_directory(url)
        took = time.monotonic() - begun
    assert 0.9 <= took < 3  # three attempts of 0.3 s, plus a short back-off


def test_a_server_that_stops_and_comes_back_loses_no_write_and_writes_no_half(
    slapd: Slapd,
) -> None:
    d = open_directory(slapd.url(org="Contoso", **FAST))
    d.put(Site(name="BEFORE"))
    start = d.change_counter()
    slapd.stop()
    try:
        with pytest.raises(DirectoryUnavailable, match=str(slapd.port)):
            d.get(Site, "BEFORE")
        with pytest.raises(DirectoryUnavailable), d.transaction():
            d.put(Site(name="LOST-1"))
            d.put(Site(name="LOST-2"))
    finally:
        slapd.start()
    # The same handle reconnects by itself; the failed transaction left nothing.
    assert d.get(Site, "BEFORE") is not None
    assert d.get(Site, "LOST-1") is None
    assert d.changes_since(start) == []
    d.put(Site(name="AFTER"))
    assert [c.identity for c in d.changes_since(start)] == ["AFTER"]
    d.close()


def test_a_server_that_stops_during_a_commit_has_it_completed_by_the_next_write(
    slapd: Slapd,
) -> None:
    d = open_directory(slapd.url(org="Contoso", **FAST))
    assert isinstance(d, LdapDirectory)
    start = d.change_counter()
    upsert = d.writer.upsert

    def then_stop(entry):  # type: ignore[no-untyped-def]
        upsert(entry)
        slapd.stop()

    d.writer.upsert = then_stop  # type: ignore[method-assign]
    try:
        saved = "saved in the directory's change log"
        with pytest.raises(DirectoryUnavailable, match=saved), d.transaction():
            d.put(Site(name="MID-1"))
            d.put(Site(name="MID-2"))
    finally:
        slapd.start()
    del d.writer.upsert
    # The handle takes its own lock back at once (no lease to wait for) and completes both.
    begun = time.monotonic()
    d.put(Site(name="MID-3"))
    assert time.monotonic() - begun < 1
    assert [c.identity for c in d.changes_since(start)] == ["MID-1", "MID-2", "MID-3"]
    assert all(d.get(Site, f"MID-{i}") for i in (1, 2, 3))
    d.close()


def test_a_base_dn_the_server_does_not_hold_is_named(slapd: Slapd) -> None:
    with pytest.raises(DirectoryMismatch) as err:
        open_directory(slapd.url("DC=contso,DC=org"))
    assert "DC=contso,DC=org" in str(err.value)
    assert "dc=contoso,dc=com" in str(err.value).lower()  # what the server holds


def test_a_base_dn_below_the_suffix_that_does_not_exist_is_not_created(slapd: Slapd) -> None:
    open_directory(slapd.url(org="Contoso")).close()
    with pytest.raises(DirectoryMismatch, match="does not exist"):
        open_directory(slapd.url(f"OU=Typo,{SUFFIX}"))


def test_another_organization_name_than_the_directory_holds_is_refused(slapd: Slapd) -> None:
    open_directory(slapd.url(org="Contoso")).close()
    with pytest.raises(DirectoryMismatch, match="'Contoso', not 'Fabrikam'"):
        open_directory(slapd.url(org="Fabrikam"))
    open_directory(slapd.url()).close()  # no org: the one it holds


def test_a_server_without_sitemails_schema_is_named(tmp_path: Path) -> None:
    bare = Slapd(tmp_path, SUFFIX, schema=None)
    bare.start()
    try:
        with pytest.raises(DirectoryMismatch, match=r"no sitemail schema; load .*sitemail\.schema"):
            open_directory(bare.url())
    finally:
        bare.stop()


def test_a_wrong_password_is_refused_clearly(slapd: Slapd, tmp_path: Path) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-it\n")
    with pytest.raises(DirectoryError, match=r"refused the bind .*invalid credentials"):
        open_directory(slapd.url(password_file=str(wrong)))


def test_a_size_limit_never_passes_a_short_list_for_a_whole_one(slapd: Slapd) -> None:
    admin = open_directory(slapd.url(org="Contoso"))
    with admin.transaction():
        for i in range(8):
            admin.put(Site(name=f"SITE-{i}"))
    admin.close()
    for account in ("limited", "exempt"):
        slapd.add_account(account, PASSWORD)
    limited = open_directory(slapd.url(bind=f"CN=limited,CN=Users,{SUFFIX}"))
    with pytest.raises(DirectoryError, match=r"stopped after 5 entries .*size=unlimited"):
        limited.list(Site)
    limited.close()
    exempt = open_directory(slapd.url(bind=f"CN=exempt,CN=Users,{SUFFIX}"))
    assert len(exempt.list(Site)) >= 8
    exempt.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ldap://u:secret@h/DC=x", "no user or password in the URL"),
        ("ldap://h:99999/DC=x", "port"),
        ("ldap://h:389/", "no base DN"),
        ("ldap://h/DC=x?colour=blue", "unknown setting colour"),
        ("ldap://h/DC=x?timeout=soon", "timeout='soon' must be a number"),
        ("ldap://h/DC=x?bind=CN=a,DC=x", "a bind DN but no password"),
        ("ldap://h/DC=x?bind=CN=a&password_file=/no/such/file", "cannot read the password file"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        parse_ldap_url(url, environ={})


def test_credentials_come_from_the_environment() -> None:
    s = parse_ldap_url(
        "ldap://dc1.contoso.com/DC=contoso,DC=com?org=Contoso",
        environ={"SITEMAIL_LDAP_BIND_DN": "CN=sitemail", "SITEMAIL_LDAP_PASSWORD": "pw"},
    )
    assert (s.host, s.port, s.base, s.organization) == ("dc1.contoso.com", 389, SUFFIX, "Contoso")
    assert (s.bind_dn, s.password) == ("CN=sitemail", "pw")


def test_sitemail_serve_names_a_directory_server_that_is_down(tmp_path: Path) -> None:
    url = f"ldap://127.0.0.1:{free_port()}/{SUFFIX}?timeout=0.2&retries=0"
    proc = sitemail("serve", "EX-NY1", "--directory", url, "--lab-dir", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "cannot open directory" in proc.stderr and "Connection refused" in proc.stderr
    proc = sitemail("serve", "EX-NY1", "--directory", url, check=False)
    assert proc.returncode == 2 and "give --lab-dir" in proc.stderr
