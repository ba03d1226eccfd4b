"""The lab harness: ``sitemail lab``'s address plan (:mod:`.addressing`) and supervisor.

The servers a lab runs are packages of their own (:mod:`sitemail.internet`,
:mod:`sitemail.exchange2003`, the Exchange 2010 roles); :mod:`.supervisor`
starts and stops them.
"""
