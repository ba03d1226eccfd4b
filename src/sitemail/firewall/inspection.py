"""The ESMTP inspection engine of an ASA/PIX, sans-I/O (spec §7).

One :class:`EsmtpInspector` sits between the client and the server of one TCP
connection.  The relay hands it every segment it reads (``feed_client`` /
``feed_server``) and carries out the actions it returns: bytes to forward,
syslog lines to write, or the end of the connection.  It has no sockets, no
clock and no asyncio, so every behaviour is tested by feeding bytes.

What it reproduces, and why it is built the way it is:

* The ASA edits packets in place.  Every rewrite replaces bytes one for one,
  so what leaves has the length of what came in (§7.2.1); only a dropped
  connection (and PIX 4.x's fake ``250 OK``) breaks that.
* The ASA never writes SMTP replies of its own (§7.2.2): every error a client
  sees comes from the real server reacting to masked input.
* Client segments are judged one by one (§1.9, §8.4): a segment that holds
  no line end and does not start with a whole allowed verb is masked at once.
  That is why a telnet user typing ``HELO`` one key at a time sends
  ``XXXX`` and why ``NO`` + ``OP\\r\\n`` reaches the server as ``XXXX\\r\\n``.
* Server replies are matched to commands through a FIFO, so pipelined
  commands (``PIPELINING`` passes the EHLO filter) keep working.
* Lines are read with the SMTP core's grammar in its bytes form
  (:mod:`sitemail.protocols.smtp`: verbs, reply codes, paths, EHLO keywords),
  so the engine passes as a command exactly what the server will take as one.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from typing import Literal

from sitemail.firewall import asa_syslog
from sitemail.firewall.asa_syslog import Direction, Flow
from sitemail.firewall.body_lines import MIME_FIELD as _MIME_FIELD
from sitemail.firewall.body_lines import special_lines
from sitemail.firewall.counters import InspectCounters
from sitemail.firewall.esmtp_policy import (
    EHLO_PARAMETER_NAMES,
    EsmtpPolicy,
    LimitRule,
    NameRule,
    Outcome,
)
from sitemail.firewall.inspect_actions import (
    Action,
    DropConnection,
    Inspector,
    InspectState,
    PassThrough,
    ResetConnection,
    SegmentSummary,
    Syslog,
    ToClient,
    ToServer,
    summarize,
)
from sitemail.protocols.smtp.address import path_span
from sitemail.protocols.smtp.command import command_verb, leading_verb
from sitemail.protocols.smtp.dotstuff import DotDecoder
from sitemail.protocols.smtp.ehlo import ehlo_keyword_span
from sitemail.protocols.smtp.reply import is_last_reply_line, reply_code
from sitemail.protocols.smtp.text import split_eol_bytes

__all__ = [
    "Action",
    "DropConnection",
    "EsmtpInspector",
    "InspectState",
    "Inspector",
    "PassThrough",
    "ResetConnection",
    "SegmentSummary",
    "Syslog",
    "ToClient",
    "ToServer",
    "make_inspector",
    "summarize",
]


def make_inspector(
    policy: EsmtpPolicy | None,
    flow: Flow | None = None,
    counters: InspectCounters | None = None,
) -> Inspector:
    """An engine for ``policy``, or a pass-through when inspection is off (``None``)."""
    if policy is None:
        return PassThrough()
    return EsmtpInspector(policy, flow=flow, counters=counters)


# --- byte helpers -----------------------------------------------------------------------

_CR, _LF, _SP = 0x0D, 0x0A, 0x20
_X = ord("X")
_STAR = ord("*")
_ZERO = ord("0")


def _table(keep: bytes) -> bytes:
    return bytes(b if b in keep else _X for b in range(256))


_X_KEEP_SPACE = _table(b" \r\n")
_X_ALL = _table(b"\r\n")

_MIME_NAME = re.compile(rb'(?i)\b(?:file)?name\*?\s*=\s*(?:"([^"\r\n]*)"?|([^;\s]+))')
_HEAD_MAX = 4096  # bytes of each DATA line kept for header checks (bounded memory)


class _Terminate(Exception):
    """Raised inside the engine when a rule ends the connection."""

    def __init__(self, action: Literal["drop-connection", "reset"], reason: str) -> None:
        super().__init__(reason)
        self.action = action
        self.reason = reason


class _LineMode(enum.Enum):
    START = 0  # at the start of a command line
    BUFFER = 1  # an accepted partial line, held until its end
    REJECT = 2  # a rejected line, masked as it streams through
    STREAM = 3  # an accepted line longer than any buffer, streamed through


# --- the engine -------------------------------------------------------------------------


class EsmtpInspector:
    """ESMTP inspection of one connection (spec §7.3).

    ``feed_client`` / ``feed_server`` take one segment each (one ``recv()``)
    and return the actions, in order.  After a drop or reset every call
    returns ``[]``.
    """

    def __init__(
        self,
        policy: EsmtpPolicy | None = None,
        *,
        flow: Flow | None = None,
        counters: InspectCounters | None = None,
    ) -> None:
        self.policy = policy or EsmtpPolicy()
        self.flow = flow or Flow()
        self.counters = counters if counters is not None else InspectCounters()
        self._out: list[Action] = []
        self._pending_kind: type[ToServer] | type[ToClient] | None = None
        self._pending_bytes = bytearray()
        self._closed = False
        self._banner_done = False
        self._client = InspectState.CMD  # CMD, AUTH, DATA_HDR, DATA_BODY or TLS_PASS
        # FIFO of the verbs forwarded, to match replies with pipelining.
        self._expect: deque[str] = deque()
        # Client command line assembly.
        self._mode = _LineMode.START
        self._cbuf = bytearray()
        self._line_len = 0
        self._line_flagged = False
        self._rcpt_count = 0
        # DATA tracking.
        self._dlen = 0
        self._dhead = bytearray()
        self._dtail = b""
        self._d_flagged = False
        self._header_total = 0
        self._body_total = 0
        self._total_flagged = False
        self._mime_field = False
        self._held_dot = False
        # What the server's DATA reader makes of the bytes passed: it alone says
        # where the data ends (CRLF.CRLF only, never a bare LF or CR).
        self._dots = DotDecoder()
        # Server reply assembly.
        self._sbuf = bytearray()
        self._reply_verb: str | None = None  # expectation of the reply being read
        self._reply_index = 0
        self._reply_masked = 0
        self._overflow_head: bytes | None = None  # head of a reply line streamed unbuffered
        self._overflow_prev = 0

    # -- public --------------------------------------------------------------------------

    @property
    def state(self) -> InspectState:
        if self._closed:
            return InspectState.CLOSED
        if self._client is InspectState.CMD and not self._banner_done:
            return InspectState.BANNER
        return self._client

    def feed_client(self, segment: bytes) -> list[Action]:
        """Inspect one segment from the client; returns the actions to carry out."""
        if self._closed or not segment:
            return []
        self.counters.packet += 1
        try:
            data = bytes(segment)
            while data:
                data = self._client_bytes(data)
        except _Terminate as stop:
            return self._terminate(stop)
        return self._take()

    def feed_server(self, segment: bytes) -> list[Action]:
        """Inspect one segment from the server; returns the actions to carry out."""
        if self._closed or not segment:
            return []
        self.counters.packet += 1
        try:
            self._server_bytes(bytes(segment))
        except _Terminate as stop:
            return self._terminate(stop)
        return self._take()

    # -- output --------------------------------------------------------------------------

    def _to_server(self, data: bytes) -> None:
        self._pending(ToServer, data)

    def _to_client(self, data: bytes) -> None:
        self._pending(ToClient, data)

    def _pending(self, kind: type[ToServer] | type[ToClient], data: bytes) -> None:
        # Bytes going the same way are gathered in one buffer (linear time for
        # large DATA segments) and become one action when something else comes.
        if not data:
            return
        if self._pending_kind is not kind:
            self._flush()
            self._pending_kind = kind
        self._pending_bytes += data

    def _flush(self) -> None:
        if self._pending_kind is not None:
            self._out.append(self._pending_kind(bytes(self._pending_bytes)))
        self._pending_kind = None
        self._pending_bytes.clear()

    def _log(self, message: str) -> None:
        self._flush()
        self._out.append(Syslog(message))

    def _take(self) -> list[Action]:
        self._flush()
        out, self._out = self._out, []
        return out

    def _terminate(self, stop: _Terminate) -> list[Action]:
        # The packet that broke the rule is dropped with everything else it carried.
        self._pending_kind = None
        self._pending_bytes.clear()
        kept: list[Action] = [a for a in self._out if isinstance(a, Syslog)]
        self._out = []
        settings = self.policy.syslog
        if settings.log_flow_terminated:
            kept.append(Syslog(asa_syslog.flow_terminated(settings, self.flow)))
        self._closed = True
        if stop.action == "reset":
            self.counters.reset_drop += 1
            kept.append(ResetConnection(stop.reason))
        else:
            self.counters.drop += 1
            kept.append(DropConnection(stop.reason))
        return kept

    # -- rules ---------------------------------------------------------------------------

    def _apply(self, outcome: Outcome, direction: Direction) -> bool:
        """Carry out a matched rule; True when the caller must mask the matching part."""
        settings = self.policy.syslog
        self.counters.match(outcome.class_id)
        if outcome.log:
            self._log(asa_syslog.classification(settings, self.flow, direction, outcome))
        if outcome.action in ("drop-connection", "reset"):
            reason = f"matched Class {outcome.class_id}: {outcome.criterion}"
            raise _Terminate(outcome.action, reason)
        return outcome.action == "mask"

    def _limit(self, rule: LimitRule | None, value: int) -> bool:
        """Apply ``rule`` if ``value`` is over its threshold; True when it matched."""
        if rule is None or value <= rule.threshold:
            return False
        self._apply(rule.outcome, "Request")
        return True

    # -- client side ---------------------------------------------------------------------

    def _client_bytes(self, data: bytes) -> bytes:
        """Consume some of ``data`` in the current state; return the rest."""
        state = self._client
        if state is InspectState.TLS_PASS or state is InspectState.AUTH:
            # After STARTTLS nothing can be read; during AUTH the ASA only tracks
            # the exchange (§1.5), so base64 lines are not taken for commands.
            self._to_server(data)
            return b""
        if state is InspectState.DATA_HDR or state is InspectState.DATA_BODY:
            return self._data_bytes(data)
        return self._command_bytes(data)

    def _command_bytes(self, data: bytes) -> bytes:
        end = data.find(b"\n")
        if self._mode is _LineMode.REJECT or self._mode is _LineMode.STREAM:
            part = data if end < 0 else data[: end + 1]
            self._line_len += len(part)
            self._check_line_length()
            if self._mode is _LineMode.REJECT:
                self._reject_fragment(part, line_done=end >= 0)
            else:
                self._to_server(part)
            if end >= 0:
                self._mode = _LineMode.START
            return data[len(part) :]
        if self._mode is _LineMode.BUFFER:
            if end < 0:
                self._cbuf += data
                self._line_len = len(self._cbuf)
                self._check_line_length()
                self._maybe_stream()
                return b""
            line = bytes(self._cbuf) + data[: end + 1]
            self._cbuf.clear()
            self._mode = _LineMode.START
            self._command_line(line)
            return data[end + 1 :]
        # At the start of a line.
        self._line_len = 0
        self._line_flagged = False
        if end >= 0:
            self._command_line(data[: end + 1])
            return data[end + 1 :]
        if self.policy.per_segment_checks and not self._starts_with_verb(data):
            self._mode = _LineMode.REJECT
            return data
        self._mode = _LineMode.BUFFER
        return data

    def _check_line_length(self) -> None:
        if not self._line_flagged and self._limit(self.policy.cmd_line_max, self._line_len):
            self._line_flagged = True

    def _maybe_stream(self) -> None:
        # Without a length rule an accepted line could grow for ever: pass it on.
        if self.policy.cmd_line_max is None and len(self._cbuf) > self.policy.command_buffer_max:
            self._expect.append(command_verb(bytes(self._cbuf)))
            self._to_server(bytes(self._cbuf))
            self._cbuf.clear()
            self._mode = _LineMode.STREAM

    def _allowed(self, verb: str) -> bool:
        if verb == "STARTTLS":
            return self.policy.allow_tls
        return verb in self.policy.allowed_verbs

    def _starts_with_verb(self, fragment: bytes) -> bool:
        """Does a partial line begin with a whole allowed verb and a separator?"""
        verb = leading_verb(fragment)
        if not verb:
            return False
        return self._allowed(verb)

    def _command_line(self, line: bytes) -> None:
        # _line_flagged carries over from the partial line, so a log-only
        # length rule logs once per line.
        self._line_len = len(line)
        self._check_line_length()
        verb = command_verb(line)
        rule = _find_rule(self.policy.verb_rules, verb.lower())
        if rule is not None and self._apply(rule.outcome, "Request"):
            self._reject_line(line)
            return
        if not self._allowed(verb):
            self._reject_line(line)
            return
        if verb == "MAIL":
            self._rcpt_count = 0
            line = self._check_address(line, sender=True)
        elif verb == "RCPT":
            self._rcpt_count += 1
            self._limit(self.policy.rcpt_max, self._rcpt_count)
            line = self._check_address(line, sender=False)
        elif verb == "RSET":
            self._rcpt_count = 0
        self._to_server(line)
        self._expect.append(verb)

    def _check_address(self, line: bytes, *, sender: bool) -> bytes:
        policy = self.policy
        span = path_span(line)
        if span is None:
            return line
        start, end = span
        address = line[start:end]
        if sender:
            self._limit(policy.sender_addr_max, len(address))
        elif policy.mail_relay is not None:
            domain = address.rpartition(b"@")[2].decode("latin-1").lower()
            local = policy.mail_relay.domain.lower()
            if domain and domain != local and not domain.endswith("." + local):
                action = policy.mail_relay.action
                self._log(
                    asa_syslog.parameter(
                        policy.syslog, self.flow, action, "mail-relay", "No Mail Relay allowed"
                    )
                )
                if action == "drop-connection":
                    raise _Terminate("drop-connection", "mail-relay: No Mail Relay allowed")
        if policy.special_character is None:
            return line
        if not any(c in address for c in policy.special_characters):
            return line
        text = address.decode("latin-1")
        if policy.special_character == "drop-connection":
            self._log(asa_syslog.address_pattern_dropped(policy.syslog, self.flow, text))
            raise _Terminate("drop-connection", "special-character in mail address")
        # "log": the character becomes a blank, as the legacy SMTP check does (§1.10).
        self._log(asa_syslog.address_char_replaced(policy.syslog, self.flow, text))
        table = bytes.maketrans(policy.special_characters, b" " * len(policy.special_characters))
        return line[:start] + address.translate(table) + line[end:]

    def _x_mask(self, data: bytes) -> bytes:
        table = _X_KEEP_SPACE if self.policy.x_mask_keep_space else _X_ALL
        return data.translate(table)

    def _reject_line(self, line: bytes) -> None:
        action = self.policy.unknown_command_action
        if action == "fake-ok":
            # PIX 4.x: never forwarded; the PIX itself says OK (§2).
            self._to_client(self.policy.fake_ok_reply)
            return
        if action == "noop":
            text, eol = split_eol_bytes(line)
            if len(text) >= 4:
                # [unv] padding: NOOP then spaces, same length.
                self._to_server(b"NOOP" + b" " * (len(text) - 4) + eol)
                self._expect.append("NOOP")
                return
        self._to_server(self._x_mask(line))
        self._expect.append("")

    def _reject_fragment(self, part: bytes, *, line_done: bool) -> None:
        # Part of a line judged per segment.  NOOP cannot be written into a
        # fragment, so the PIX 5.x mode masks fragments with X as the ASA does.
        if self.policy.unknown_command_action == "fake-ok":
            if line_done:
                self._to_client(self.policy.fake_ok_reply)
            return
        self._to_server(self._x_mask(part))
        if line_done:
            self._expect.append("")

    # -- DATA ----------------------------------------------------------------------------

    def _start_data(self) -> None:
        self._client = InspectState.DATA_HDR
        self._dlen = 0
        self._dhead.clear()
        self._dtail = b""
        self._d_flagged = False
        self._header_total = 0
        self._body_total = 0
        self._total_flagged = False
        self._mime_field = False
        self._held_dot = False
        self._dots = DotDecoder()

    def _data_bytes(self, data: bytes) -> bytes:
        if self._held_dot:
            self._held_dot = False
            if data.startswith((b"\r\n", b"\n")):
                # PIX bug CSCds90792: the split terminator never reaches the server.
                return data[2:] if data.startswith(b"\r\n") else data[1:]
            data = b"." + data
        if self._client is InspectState.DATA_BODY and self._dlen == 0:
            last = data.rfind(b"\n")
            if last >= 0:
                # Whole body lines go through in bulk: no Python per line.
                return self._body_lines(data, last + 1)
        pos, size = 0, len(data)
        while pos < size:
            end = data.find(b"\n", pos)
            stop = size if end < 0 else end + 1
            part = data[pos:stop]
            pos = stop
            if (
                self.policy.pix_dotcrlf_bug
                and self._client is InspectState.DATA_BODY
                and self._dlen == 0
                and part == b"."
                and pos == size
            ):
                self._held_dot = True
                return b""
            self._dlen += len(part)
            self._dtail = (self._dtail + part[-2:])[-2:]
            room = _HEAD_MAX - len(self._dhead)
            if room > 0:
                self._dhead += part[:room]
            self._to_server(part)
            self._dots.feed(part)  # parts end at an LF, so "done" can only come at the end
            if end < 0:
                # A CR at the end of a part may be the first half of the line's CRLF.
                self._check_data_line(self._dlen - (self._dtail[-1:] == b"\r"))
                return b""
            text_len = self._dlen - (2 if self._dtail == b"\r\n" else 1)
            self._check_data_line(text_len)
            self._data_line_done()
            if self._client is not InspectState.DATA_HDR:
                # Back to commands, or into the body: the caller goes on from here
                # (the body's whole lines then take the bulk path).
                return data[pos:]
        return b""

    def _body_lines(self, data: bytes, whole: int) -> bytes:
        """Forward the body's whole lines ``data[:whole]`` in bulk; return what is left.

        The server's DATA reader (the SMTP core's :class:`DotDecoder`) says
        where the data ends.  The body's rules are per line, but only a few
        lines can match one: lines longer than the body line limit, the lines
        of a MIME ``Content-Type``/``Content-Disposition`` field, and the line
        where the body length limit is crossed.  Regular expressions find
        those; they go through the per-line path (so the rules and the order of
        syslog lines stay as they were), everything between them is one slice.
        """
        chunk = data[:whole]
        _, used = self._dots.feed(chunk)
        done = self._dots.done
        end = used if done else whole
        # When done, the data ended with the line ".\r\n", which is not body.
        body = chunk[: end - 3] if done else chunk
        cursor = 0
        policy = self.policy
        total = None if self._total_flagged else policy.body_length_max
        special = special_lines(
            body,
            line_limit=None if policy.body_line_max is None else policy.body_line_max.threshold,
            length_left=None if total is None else total.threshold - self._body_total,
            mime=policy.mime_filename_max is not None,
            mime_field_open=self._mime_field,
        )
        for start, stop in special:
            if start > cursor:
                self._to_server(body[cursor:start])
                self._body_total += start - cursor
                self._mime_field = False  # lines that are neither a field nor its continuation
            self._whole_body_line(body[start:stop])
            cursor = stop
        if cursor < len(body):
            self._to_server(body[cursor:])
            self._body_total += len(body) - cursor
            self._mime_field = False
        if done:
            self._to_server(b".\r\n")
            self._end_of_data()
        return data[end:]

    def _whole_body_line(self, line: bytes) -> None:
        """One complete body line through the per-line rules (the bulk path's exceptions)."""
        self._dlen = len(line)
        self._dtail = line[-2:]
        self._dhead = bytearray(line[:_HEAD_MAX])
        self._to_server(line)
        self._check_data_line(len(line) - (2 if self._dtail == b"\r\n" else 1))
        self._line_rules()  # the decoder already saw past this line: no end of data here

    def _check_data_line(self, length: int) -> None:
        # Line limits count the text without CRLF, as RFC 5322's 998 does.
        if self._d_flagged:
            return
        header = self._client is InspectState.DATA_HDR
        rule = self.policy.header_line_max if header else self.policy.body_line_max
        if self._limit(rule, length):
            self._d_flagged = True

    def _data_line_done(self) -> None:
        if self._dots.done:
            # The server's end of data (CRLF.CRLF, RFC 5321 §4.1.1.4), in the
            # header section too; ".\n" after a bare LF and the like are body.
            self._line_reset()
            self._end_of_data()
            return
        self._line_rules()

    def _line_reset(self) -> None:
        self._dlen = 0
        self._dhead.clear()
        self._dtail = b""
        self._d_flagged = False

    def _end_of_data(self) -> None:
        self._client = InspectState.CMD
        self._rcpt_count = 0
        self._expect.append(".")

    def _line_rules(self) -> None:
        """The rules of one finished DATA line that is not the end of data."""
        line = bytes(self._dhead)
        length = self._dlen
        self._line_reset()
        if self._client is InspectState.DATA_HDR:
            if line in (b"\r\n", b"\n"):
                self._client = InspectState.DATA_BODY
                self._mime_field = False
                return
            self._header_total += length
            if not self._total_flagged and self._limit(
                self.policy.header_length_max, self._header_total
            ):
                self._total_flagged = True
            self._check_mime(line)
            return
        self._body_total += length
        if not self._total_flagged and self._limit(self.policy.body_length_max, self._body_total):
            self._total_flagged = True
        self._check_mime(line)

    def _check_mime(self, line: bytes) -> None:
        if _MIME_FIELD.match(line):
            self._mime_field = True
        elif line[:1] not in (b" ", b"\t"):
            self._mime_field = False
        if not self._mime_field or self.policy.mime_filename_max is None:
            return
        for found in _MIME_NAME.finditer(line):
            name = found.group(1) if found.group(1) is not None else found.group(2)
            self._limit(self.policy.mime_filename_max, len(name))

    # -- server side ---------------------------------------------------------------------

    def _server_bytes(self, data: bytes) -> None:
        while data:
            if self._client is InspectState.TLS_PASS:
                self._to_client(data)
                return
            end = data.find(b"\n")
            if self._overflow_head is not None:
                part = data if end < 0 else data[: end + 1]
                data = data[len(part) :]
                self._overflow_fragment(part, line_done=end >= 0)
                continue
            if end < 0:
                self._sbuf += data
                if len(self._sbuf) > self.policy.reply_line_buffer_max:
                    fragment = bytes(self._sbuf)
                    self._sbuf.clear()
                    self._overflow_head = fragment[:4]
                    self._overflow_prev = fragment[3] if len(fragment) > 3 else 0
                    self._to_client(self._banner_fragment(fragment, 0))
                return
            line = bytes(self._sbuf) + data[: end + 1]
            self._sbuf.clear()
            data = data[end + 1 :]
            self._reply_line(line)

    def _overflow_fragment(self, part: bytes, *, line_done: bool) -> None:
        # A reply line too long to hold: banner masking continues byte by byte,
        # anything else passes as it is.
        self._to_client(self._banner_fragment(part, 4))
        if line_done:
            head = self._overflow_head or b""
            self._overflow_head = None
            self._reply_line_done(head)

    def _banner_fragment(self, part: bytes, offset: int) -> bytes:
        if self._banner_done or not self.policy.mask_banner:
            return part
        masked, self._overflow_prev = self._mask_banner(part, offset, self._overflow_prev)
        return masked

    def _mask_banner(self, data: bytes, offset: int, prev: int) -> tuple[bytes, int]:
        """Mask banner bytes; ``offset`` is the line position of ``data[0]``."""
        policy = self.policy
        everything = policy.mode == "pix44"
        out = bytearray(data)
        keep_space = policy.banner_keep_space_after0
        for i, byte in enumerate(data):
            if offset + i >= 4 and byte not in (_CR, _LF):
                kept = byte in policy.banner_keep_chars or (
                    byte == _SP and keep_space and prev == _ZERO
                )
                if everything or not kept:
                    out[i] = _STAR
            prev = byte
        return bytes(out), prev

    def _reply_line(self, line: bytes) -> None:
        if not self._banner_done:
            if self.policy.mask_banner:
                masked, _ = self._mask_banner(line, 0, 0)
                self._to_client(masked)
            else:
                self._to_client(line)
            if is_last_reply_line(line):
                self._banner_done = True
                self.counters.mask_banner += self.policy.mask_banner
            return
        if self._reply_verb is None:
            self._start_reply()
        if self._reply_verb == "EHLO" and self._reply_index > 0 and reply_code(line) == 250:
            line = self._mask_ehlo_line(line)
        self._to_client(line)
        self._reply_index += 1
        if is_last_reply_line(line):
            self._reply_line_done(line)

    def _start_reply(self) -> None:
        if self._client is InspectState.AUTH:
            self._reply_verb = ""
        else:
            self._reply_verb = self._expect.popleft() if self._expect else ""
        self._reply_index = 0
        self._reply_masked = 0

    def _reply_line_done(self, head: bytes) -> None:
        if not self._banner_done:
            if is_last_reply_line(head):
                self._banner_done = True
                self.counters.mask_banner += self.policy.mask_banner
            return
        if self._reply_verb is None:
            self._start_reply()
        if not is_last_reply_line(head):
            self._reply_index += 1
            return
        verb, code = self._reply_verb, reply_code(head)
        self._reply_verb = None
        if self._client is InspectState.AUTH:
            if code != 334:
                self._client = InspectState.CMD
        elif verb == "AUTH" and code == 334:
            self._client = InspectState.AUTH
        elif verb == "DATA" and code == 354:
            self._start_data()
        elif verb == "STARTTLS" and code == 220:
            self._client = InspectState.TLS_PASS
            if self.policy.allow_tls_log:
                self._log(asa_syslog.tls_started(self.policy.syslog, self.flow))

    def _mask_ehlo_line(self, line: bytes) -> bytes:
        span = ehlo_keyword_span(line)
        if span is None:
            return line
        start, end = span
        keyword = line[start:end]
        if not self._ehlo_masks(keyword.upper().split(b"=")[0].decode("latin-1")):
            return line
        if self.policy.ehlo_mask_suffix == "A":
            suffix = b"A"
        else:
            suffix = bytes([ord("A") + min(self._reply_masked, 25)])
        self._reply_masked += 1
        masked = b"X" * (len(keyword) - 1) + suffix
        text, eol = split_eol_bytes(line)
        params = text[end:]
        if self.policy.ehlo_mask_params:
            params = params.translate(_X_KEEP_SPACE)
        return line[:start] + masked + params + eol

    def _ehlo_masks(self, name: str) -> bool:
        """Apply the EHLO rules to one keyword; True when it must be masked."""
        policy = self.policy
        if name == "STARTTLS":
            # "The STARTTLS indication is removed" unless allow-tls (§1.7, §1.8).
            return not policy.allow_tls
        if name in policy.ehlo_known_keywords:
            parameter = EHLO_PARAMETER_NAMES.get(name, name.lower())
        else:
            parameter = "others"
        rule = _find_rule(policy.ehlo_rules, parameter)
        if rule is None:
            return False
        return self._apply(rule.outcome, "Response")


def _find_rule(rules: tuple[NameRule, ...], name: str) -> NameRule | None:
    for rule in rules:
        if name in rule.names:
            return rule
    return None
