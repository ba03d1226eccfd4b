"""The organization: what Active Directory and the certificate authority hold.

The model (:mod:`.model`: sites, servers, connectors, mailboxes, firewalls),
the directory contract (:mod:`.directory`) and its backends, SQLite
(:mod:`.sqlite_directory`) and LDAP (:mod:`.ldap_directory`, with the schema
``sitemail.schema``), topology files (:mod:`.topology`) and what setup
creates (:mod:`.defaults`), the organization's PKI (:mod:`.pki`), password
hashes, the service ports (:mod:`.ports`) and the lab's state file
(:mod:`.lab_state`).  It imports nothing of sitemail's but the clock.
"""
