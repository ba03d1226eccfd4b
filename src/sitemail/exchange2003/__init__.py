"""The legacy Exchange 2003 server: its SMTP service (SMTPSVC), straight into its mailboxes;
its IIS metabase (what its web site applies), the System Attendant's DS2MB pass that copies
the directory's virtual directory settings over it, and its application event log.

Its web service is :mod:`sitemail.access.exchange2003_web`.
"""
