"""A plain MTA's SMTP server: profiles (an MTA's voice and rules), the session, the listener.

Used by the lab's Internet host (:mod:`sitemail.internet`) and by Exchange
2003's SMTP service (:mod:`sitemail.exchange2003`); the hubs' own receive
side is :mod:`sitemail.transport.receive_session`.
"""
