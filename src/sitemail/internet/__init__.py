"""The Internet host: an outside mail system (Postfix-like) with its own domains and users.

:mod:`.policy` holds what it answers and where its mail goes (pure);
:mod:`.host` runs it (SMTP in, a queue, mailboxes, SMTP out) as
``sitemail serve`` of an Internet host.  With ``engine: postfix``
:mod:`.postfix_host` runs a real Postfix instead, a private instance of
:mod:`.postfix` (which tests and benchmarks also use as a peer).
"""
