"""The HTTPS front end of a Client Access server (IIS's W3SVC): OWA and ECP, proxy and redirect.

- :mod:`.service` -- :class:`~.service.W3svcService`, the ``W3SVC`` service: HTTPS on 443.
- :mod:`.front` -- :class:`~.front.FrontDoor`: host names -> virtual directories, forms
  and Basic sign-in, the proxy-or-redirect decision, and what each outcome does.
- :mod:`.proxy` -- CAS-to-CAS proxying to directory InternalUrls, server-authenticated.
- :mod:`.sso` -- the single sign-on token of silent cross-site redirection.
- :mod:`.sessions`, :mod:`.throttle`, :mod:`.logon` -- cookies, canaries, lockout, user names.
- :mod:`.owa`, :mod:`.ecp` -- the applications; :mod:`.compose` builds sent messages;
  :mod:`.sanitize` makes message HTML safe; :mod:`.html` and :mod:`.pages` build pages.
- :mod:`.logs` -- the IIS request log and the decision log.
"""
