"""The web console of an organization (issue 16): topology and the Queue Viewer.

``sitemail console`` (:mod:`.main`) serves it; :mod:`.app` holds the routes,
the sign-in gate and the CSRF check, :mod:`.auth` the sessions, :mod:`.backend`
what it asks of the organization (through the shell's own cmdlets and the
firewalls' consoles), :mod:`.pages` and :mod:`.topology_svg` what it draws.
"""
