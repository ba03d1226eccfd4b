"""The probe's judgement (asa-esmtp.md §8), fed transcripts as the ASA emulator shapes them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sitemail.diagnose.probe import (
    Exchange,
    ProbeTranscript,
    Verdict,
    echoes_x,
    is_masked_banner,
    judge,
    masked_keywords,
    unmask_candidates,
)
from sitemail.diagnose.probe_run import parse_target
from sitemail.firewall.esmtp_policy import EsmtpPolicy
from sitemail.firewall.inspection import make_inspector, summarize

EXCHANGE_BANNER = (
    "220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready at Fri, 5 Aug 2016 16:24:41 +0000"
)
EXCHANGE_EHLO = [
    "250-ex-fl1.contoso.com Hello [10.1.0.11]",
    "250-SIZE",
    "250-PIPELINING",
    "250-DSN",
    "250-ENHANCEDSTATUSCODES",
    "250-STARTTLS",
    "250-X-ANONYMOUSTLS",
    "250-AUTH NTLM",
    "250-X-EXPS GSSAPI NTLM",
    "250-8BITMIME",
    "250-BINARYMIME",
    "250-CHUNKING",
    "250-XEXCH50",
    "250-XRDST",
    "250 XSHADOW",
]


def through_asa(lines: list[str], command: bytes = b"EHLO x\r\n") -> list[str]:
    """What the emulated ASA lets through of a banner and a reply to ``command``."""
    engine = make_inspector(EsmtpPolicy())
    engine.feed_server(b"220 banner ready here\r\n")
    summarize(engine.feed_client(command))
    data = "".join(line + "\r\n" for line in lines).encode()
    out = summarize(engine.feed_server(data)).to_client.decode()
    return out.rstrip("\r\n").split("\r\n")


def masked_banner(text: str) -> str:
    engine = make_inspector(EsmtpPolicy())
    out = summarize(engine.feed_server(text.encode() + b"\r\n")).to_client
    return out.decode().rstrip("\r\n")


def test_the_asa_masked_exchange_ehlo_is_recognised_and_unmasked_by_length() -> None:
    masked = through_asa(EXCHANGE_EHLO)
    assert masked_keywords(masked) == [
        "XXXXXXXA",
        "XXXXXXXXXXXXXA",
        "XXXXXA",
        "XXXXXXXA",
        "XXXXXXA",
        "XXXXA",
        "XXXXXXA",
    ]
    assert unmask_candidates("XXXXXXXXXXXXXA") == ["X-ANONYMOUSTLS"]
    assert "STARTTLS" in unmask_candidates("XXXXXXXA")
    assert "X-EXPS" in unmask_candidates("XXXXXA")


def test_published_masked_banners_are_recognised() -> None:
    for line in (
        "220 ****2************************************",
        "220 **************************************0******0*********20 ****200**0*********0*00",
        "220 *********************************************",
        masked_banner(EXCHANGE_BANNER),
    ):
        assert is_masked_banner([line]), line
    assert not is_masked_banner([EXCHANGE_BANNER])
    assert not is_masked_banner(["220 2000"])  # too few asterisks to say


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=6))
def test_any_banner_the_asa_masks_is_recognised(text: str) -> None:
    # Property: whatever the server says, once masked it is flagged, unless it was
    # made of 2s and 0s (nothing to mask).
    real = f"220 {text} ESMTP ready"
    assert is_masked_banner([masked_banner(real)])


def transcript(**kw: object) -> ProbeTranscript:
    t = ProbeTranscript(target="10.2.0.11:25", connected=True, banner=[EXCHANGE_BANNER])
    t.ehlo = Exchange("EHLO probe", EXCHANGE_EHLO)
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def test_a_clean_exchange_path() -> None:
    result = judge(
        transcript(
            split_noop=Exchange("NO | OP", ["250 2.0.0 OK"]),
            noop=Exchange("NOOP", ["250 2.0.0 OK"]),
            long_line=Exchange("NOOP <600>", ["500 5.5.2 Line too long"]),
        )
    )
    assert result.verdict is Verdict.CLEAN
    assert result.exchange_server
    assert not [s for s in result.signals if s.points_to == "inspection"]


def test_a_path_through_the_asa() -> None:
    result = judge(
        transcript(
            banner=[masked_banner(EXCHANGE_BANNER)],
            ehlo=Exchange("EHLO probe", through_asa(EXCHANGE_EHLO)),
            starttls=Exchange("STARTTLS", ['500 5.5.1 Command unrecognized: "XXXXXXXX"']),
            split_noop=Exchange("NO | OP", ["500 5.3.3 Unrecognized command"]),
            noop=Exchange("NOOP", ["250 2.0.0 OK"]),
            long_line=Exchange("NOOP <600>", None, closed=True),
        )
    )
    assert result.verdict is Verdict.INSPECTED
    assert result.confidence >= 0.99
    tests = {s.test for s in result.signals if s.points_to == "inspection"}
    assert tests == {
        "banner-charset",
        "ehlo-masked",
        "forced-starttls",
        "split-segment",
        "long-line",
    }
    texts = " ".join(s.text for s in result.signals)
    assert "451 5.7.3" in texts and "Cisco PIX sanitized smtpd" in texts


def test_a_connector_without_exchange_auth_is_not_inspection() -> None:
    ehlo = [line for line in EXCHANGE_EHLO if "X-" not in line and "XEXCH" not in line]
    result = judge(transcript(ehlo=Exchange("EHLO", ehlo)))
    assert result.verdict is not Verdict.INSPECTED
    assert any(s.test == "exchange-auth" for s in result.signals)


def test_starttls_refused_without_echo_proves_nothing() -> None:
    result = judge(
        transcript(starttls=Exchange("STARTTLS", ["502 5.5.2 Error: command not recognized"]))
    )
    assert all(s.points_to != "inspection" for s in result.signals if s.test == "forced-starttls")


def test_unreachable_no_banner_and_refused() -> None:
    assert judge(ProbeTranscript("x:25", connect_error="refused")).verdict is Verdict.UNREACHABLE
    closed = ProbeTranscript("x:25", connected=True, banner_closed=True)
    assert judge(closed).verdict is Verdict.NO_BANNER
    busy = ProbeTranscript("x:25", connected=True, banner=["554 5.7.1 go away"])
    assert judge(busy).verdict is Verdict.REFUSED


def test_echoes_and_targets() -> None:
    assert echoes_x(['500 5.5.1 Command unrecognized: "XXXXXXXX"'], 8)
    assert not echoes_x(["500 5.3.3 Unrecognized command"], 4)
    assert parse_target("mail.example.com") == ("mail.example.com", 25)
    assert parse_target("127.1.2.11:2525") == ("127.1.2.11", 2525)
    assert parse_target("[::1]:25") == ("::1", 25)
