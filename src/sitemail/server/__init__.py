"""What every sitemail process shares, whatever it serves.

Its :class:`~.context.ProcessContext` (name, address, folders, ports with the
lab's offset, the path to a peer through the firewalls), the Windows services
it hosts (:mod:`.services`), directory change notifications (:mod:`.watcher`),
the admin HTTPS API (:mod:`.admin_api`), the local console socket
(:mod:`.console`), the event loop (:mod:`.event_loop`) and stream helpers
(:mod:`.streams`).  Which services a server runs is decided above, in
:mod:`sitemail.serve`.
"""
