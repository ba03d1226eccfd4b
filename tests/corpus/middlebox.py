"""What a device between two sites does to SMTP (asa-esmtp.md 1.6, 1.7, 2, 6, 7.4).

``Middlebox.kind``:

- ``asa``: Cisco ASA ``inspect esmtp`` with ``_default_esmtp_map``: the banner
  masked to asterisks except ``2``, ``0`` and a space after ``0`` (unless
  ``mask_banner`` is off); EHLO keywords outside the known list masked to
  ``XXXXXXXA`` (same length, last letter ``A`` or a running ``A``, ``B``...).
- ``pix``: PIX ``fixup protocol smtp`` (Mailguard): banner masked as above;
  commands outside the RFC 821 seven (EHLO among them) reach the server as X's.
- ``strip``: an SMTP proxy that deletes STARTTLS, X-ANONYMOUSTLS and X-EXPS
  lines from the EHLO reply (F-Secure style); banner intact.
- ``acl``: port 25 dropped or refused; nothing reaches the server.
"""

from __future__ import annotations

from dataclasses import dataclass

KNOWN = frozenset(
    {
        "8BITMIME",
        "AUTH",
        "BINARYMIME",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "ETRN",
        "PIPELINING",
        "SIZE",
        "VRFY",
    }
)
PIX_VERBS = frozenset({"HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"})


def mask_banner(line: str) -> str:
    """Spec asa 1.6/7.3: keep the code and separator, ``2``, ``0``, and a space after ``0``."""
    out = [line[:4]]
    prev = line[3] if len(line) > 3 else ""
    for ch in line[4:]:
        if ch in "20" or (ch == " " and prev == "0"):
            out.append(ch)
        else:
            out.append("*")
        prev = ch
    return "".join(out)


def x_mask(command: str) -> str:
    """A command the inspection does not allow, as the server receives it."""
    return "".join(c if c == " " else "X" for c in command)


@dataclass(frozen=True)
class Middlebox:
    kind: str
    mask_banner: bool = True
    suffix: str = "A"  # "A" or "seq"
    mask_params: bool = False
    strip: frozenset[str] = frozenset({"STARTTLS", "X-ANONYMOUSTLS", "X-EXPS"})
    acl: str = ""  # the port-25 variant

    def banner(self, line: str) -> str:
        if self.kind in ("asa", "pix") and self.mask_banner:
            return mask_banner(line)
        return line

    def passes(self, command: str) -> bool:
        """Whether a client command reaches the server unchanged."""
        if self.kind != "pix":
            return True
        return command.split(" ", 1)[0].upper() in PIX_VERBS

    def ehlo(self, lines: list[str]) -> list[str]:
        if self.kind == "strip":
            kept = [lines[0]] + [
                ln for ln in lines[1:] if ln[4:].split(" ", 1)[0].upper() not in self.strip
            ]
            return [f"250-{ln[4:]}" for ln in kept[:-1]] + [f"250 {kept[-1][4:]}"]
        if self.kind not in ("asa", "pix"):
            return lines
        out = [lines[0]]
        letter = 0
        for ln in lines[1:]:
            head, text = ln[:4], ln[4:]
            word, sep, params = text.partition(" ")
            if word.upper() in KNOWN or word.upper().split("=")[0] in KNOWN:
                out.append(ln)
                continue
            last = "A" if self.suffix == "A" else chr(ord("A") + letter % 26)
            letter += 1
            masked = "X" * (len(word) - 1) + last
            if self.mask_params and params:
                params = x_mask(params)
            out.append(f"{head}{masked}{sep}{params}")
        return out
