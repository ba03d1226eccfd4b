"""Sans-I/O wire protocol cores: bytes in, events out; events in, bytes out.

SMTP and LMTP, both sides (:mod:`.smtp`), POP3 (:mod:`.pop3`), IMAP4
(:mod:`.imap`) and ActiveSync's WBXML (:mod:`.wbxml`), in the style of
``h11``: no sockets, no asyncio, no clock, and nothing of the rest of sitemail.
"""
