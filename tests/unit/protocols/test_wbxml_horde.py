"""sitemail's ActiveSync code pages against Horde's (Debian's php-horde-activesync).

Horde's ActiveSync library was written from MS-ASWBXML independently of
sitemail; every token sitemail tables must be the same tag in Horde's
table of the same code page.  Horde keeps the EAS 2.x names of some tags
(``Synchronize`` for ``Sync``, ``Folder`` for ``Collection``): those are
listed here one by one, so that any other difference fails.
"""

from __future__ import annotations

import json
import subprocess

from sitemail.protocols.wbxml import _PAGES

# Horde's code pages, read from its own class (its table is protected: a subclass reads it).
DUMP = r"""
spl_autoload_register(function ($class) {
    $file = '/usr/share/php/' . str_replace('_', '/', $class) . '.php';
    if (is_file($file)) { require_once $file; }
});
class Dump extends Horde_ActiveSync_Wbxml { public function dtd() { return $this->_dtd; } }
$dump = new Dump(fopen('php://memory', 'r'));
echo json_encode($dump->dtd());
"""

# (code page, token) -> Horde's name, where Horde names the tag otherwise than MS-ASWBXML.
HORDE_NAMES = {
    (0, 0x05): "Synchronize",
    (0, 0x06): "Replies",
    (0, 0x08): "Modify",
    (0, 0x09): "Remove",
    (0, 0x0C): "ClientEntryId",
    (0, 0x0D): "ServerEntryId",
    (0, 0x0F): "Folder",
    (0, 0x10): "FolderType",
    (0, 0x12): "FolderId",
    (0, 0x1C): "Folders",
    (0, 0x1D): "Data",
    (2, 0x19): "Reply-To",
    (2, 0x3B): "FlagStatus",
    (4, 0x05): "Timezone",
    (7, 0x08): "ServerEntryId",
    (7, 0x10): "Remove",
    (14, 0x10): "DeviceEncryptionEnabled",
    (21, 0x10): "MIME",
}


def horde_pages() -> tuple[dict[int, dict[int, str]], dict[int, str]]:
    result = subprocess.run(
        ["php", "-r", DUMP], capture_output=True, check=True, timeout=60, text=True
    )
    dtd = json.loads(result.stdout)
    codes = {int(page): {int(t): n for t, n in tags.items()} for page, tags in dtd["codes"].items()}
    namespaces = {int(page): name for page, name in dtd["namespaces"].items()}
    return codes, namespaces


def test_every_token_sitemail_tables_is_the_same_tag_in_hordes_code_pages() -> None:
    codes, namespaces = horde_pages()
    differences = []
    for page, (namespace, tags) in _PAGES.items():
        # Horde names page 0 (AirSync) by no namespace, page 2 POOMMAIL, page 4 POOMCAL;
        # the rest alike.
        horde = {2: "POOMMAIL", 4: "POOMCAL"}.get(page, namespace)
        assert namespaces.get(page, "AirSync") in (namespace, horde), (page, namespace)
        for token, tag in tags.items():
            theirs = codes[page].get(token)
            if theirs != HORDE_NAMES.get((page, token), tag):
                differences.append(f"{namespace} 0x{token:02X}: sitemail {tag}, Horde {theirs}")
    assert differences == []
