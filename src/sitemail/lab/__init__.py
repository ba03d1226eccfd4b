"""The lab harness, ``sitemail lab up|down|status|restart``: a whole organization on one machine.

:mod:`.supervisor` seeds the directory from a topology file, issues the
certificates, writes the firewalls' relay plans and starts one
``sitemail serve`` process per host, remembering them in the state file
(:mod:`sitemail.org.lab_state`); :mod:`.addressing` gives every host its
loopback address.  The hosts it runs are servers in packages of their own
(:mod:`sitemail.internet`, :mod:`sitemail.exchange2003`, the Exchange 2010 roles).
Only the command line and the composition root import it.
"""
