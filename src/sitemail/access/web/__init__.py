"""The HTTPS front end of a Client Access server (IIS's W3SVC): OWA and ECP, proxy and redirect.

- :mod:`.service` -- :class:`~.service.W3svcService`, the ``W3SVC`` service: HTTPS on 443.
- :mod:`.front` -- :class:`~.front.FrontDoor`: host names -> virtual directories -> the
  service's handler (OWA and ECP, or EWS, ActiveSync, Autodiscover plugged in).
- :mod:`.authentication` -- sign-in once for every service: the proxying CAS's user, the
  forms session or Basic, else the service's 401 challenge.
- :mod:`.signin` -- the forms sign-in pages, sign-out, and the single sign-on landing.
- :mod:`.handoff` -- what an outcome does: serve OWA/ECP, proxy or redirect to the mailbox's
  site; :mod:`.decision_log` -- the decision, and its log.
- :mod:`.proxy` -- CAS-to-CAS proxying to directory InternalUrls, server-authenticated.
- :mod:`.sso` -- the single sign-on token of silent cross-site redirection.
- :mod:`.sessions`, :mod:`.logon` -- cookies, canaries, user names.
- :mod:`.owa`, :mod:`.ecp` -- the applications; :mod:`.compose` builds sent messages;
  :mod:`.sanitize` makes message HTML safe; :mod:`.html` and :mod:`.pages` build pages.
- :mod:`.logs` -- the IIS request log and the decision log.
"""
