"""IIS Manager and Exchange System Manager as the administrator meets them.

``sitemail iis SERVER``: an appcmd-like console over a server's IIS
(:mod:`.appcmd`, :mod:`.server_view`); ``sitemail esm EX2003``: Exchange
System Manager's view of an Exchange 2003 server's HTTP virtual directories
(:mod:`.esm`).
"""
