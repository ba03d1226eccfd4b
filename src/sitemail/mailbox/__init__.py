"""The Mailbox role: mailbox databases and the store API hubs and client access servers call.

- :mod:`.database` -- :class:`~.database.StoreDatabase`, one SQLite file per MailboxDatabase
  (``<server home>/mailbox/<DB>.db``): folders, delivery, flags, moves, UIDs, search.
- :mod:`.messages` -- the streaming parser that gives each message its summary and MIME parts.
- :mod:`.records` -- the typed records every layer returns; :mod:`.errors` -- the errors.
- :mod:`.store_api` -- the HTTPS routes; :mod:`.store_backend` -- the databases they serve.
- :mod:`.store_client` -- :class:`~.store_client.StoreClient`, for hubs and CAS.
- :mod:`.service` -- :class:`~.service.InformationStoreService`, the ``MSExchangeIS`` service.
"""
