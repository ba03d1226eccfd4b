"""The TCP ports every server of an organization serves, before any lab offset.

They belong to the organization (a server uses them on a real machine as in the lab), so
server roles read them here; the lab harness shifts them by its port offset
(``ServerContext.port``).
"""

from __future__ import annotations

#: Ports a firewall relays between sites (SMTP, submission, HTTPS, POP3, IMAP4 and their SSL).
RELAYED_PORTS: tuple[int, ...] = (25, 587, 443, 110, 143, 993, 995)
#: The admin HTTPS API of every server and firewall process (not relayed; management plane).
ADMIN_PORT = 8443
#: The store API of every Mailbox server (hubs and CAS of the same site call it; not relayed).
STORE_PORT = 8444
#: A firewall's SSH management (its own address; not relayed).
SSH_PORT = 22
