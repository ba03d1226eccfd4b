"""The front door reads its two session cookies as aiohttp's own parser does."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sitemail.access.web.authentication import _session_cookies
from sitemail.access.web.sessions import CADATA_COOKIE, SESSION_COOKIE

_names = st.sampled_from([SESSION_COOKIE, CADATA_COOKIE, "PrivateComputer", "X-OWA-CANARY", "a"])
_values = st.one_of(
    # What the session cookies hold (the fast path) and anything else a browser may send.
    st.text(alphabet="AZaz09_-.~+/=", max_size=40),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters=";"),
        max_size=40,
    ),
)
_pairs = st.lists(st.tuples(_names, _values), max_size=6)


@settings(max_examples=400)
@given(_pairs, st.sampled_from(["; ", ";", " ;  "]))
@example([(SESSION_COOKIE, "abc"), (CADATA_COOKIE, "def")], "; ")
@example([(SESSION_COOKIE, "one"), (SESSION_COOKIE, "two")], "; ")
@example([("a", '"x'), (SESSION_COOKIE, 'y"')], "; ")
def test_the_session_cookies_are_those_aiohttp_reads(
    pairs: list[tuple[str, str]], separator: str
) -> None:
    header = separator.join(f"{name}={value}" for name, value in pairs)
    request = make_mocked_request("GET", "/owa/", headers={"Cookie": header})
    expected = (request.cookies.get(SESSION_COOKIE), request.cookies.get(CADATA_COOKIE))
    assert _session_cookies(request) == expected
