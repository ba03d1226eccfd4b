"""The legacy Exchange 2003 server's SMTP service (SMTPSVC): SMTP in, straight into its mailboxes.

Its web service is :mod:`sitemail.access.exchange2003_web`.
"""
