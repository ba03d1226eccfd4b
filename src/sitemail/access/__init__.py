"""The Client Access role: where a client's request is served, proxied or redirected.

The pure proxy-or-redirect decision (:mod:`.decision` over a
:mod:`.directory_view` snapshot, its :mod:`.outcomes`), the HTTPS front door
with OWA and ECP (:mod:`.web`), Exchange Web Services (``ews_*``), ActiveSync
(``eas_*``), Autodiscover (``autodiscover_*``), the POP3 and IMAP4 front ends
(:mod:`.pop3_front`, :mod:`.imap_front`) and the Exchange 2003 back-end's web
service (:mod:`.exchange2003_web`); each service reads mailboxes through the
store API of :mod:`sitemail.mailbox`.
"""
