"""The Hub Transport role: receive, queue, categorize, route and deliver.

Receive connectors and their SMTP sessions (:mod:`.receive_server`, run in
worker processes by :mod:`.receive_workers`; policy in :mod:`.permissions`,
:mod:`.receive_policy`, :mod:`.connector_selection`), the durable queue
(:mod:`.queue`), routing (:mod:`.routing`), the retry ladder (:mod:`.retry`),
the delivery pipeline (:mod:`.pipeline`: SMTP to other sites through
:mod:`sitemail.mailflow`, mailbox delivery through the store API of
:mod:`sitemail.mailbox`), the ``MSExchangeTransport`` service and its admin
routes.
"""
