"""The Internet host: an outside mail system (Postfix-like) with its own domains and users.

:mod:`.policy` holds what it answers and where its mail goes (pure);
:mod:`.host` runs it (SMTP in, a queue, mailboxes, SMTP out) as
``sitemail serve`` of an Internet host.
"""
