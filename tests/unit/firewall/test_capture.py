"""Captures, pcap files, the conn table and the buffered log: pure cores, exact ASA lines."""

from __future__ import annotations

import struct
from datetime import datetime

from sitemail.firewall.acl import Ace, AddressSpec
from sitemail.firewall.asa_cli import AsaCli
from sitemail.firewall.asa_cli_ops import ClearConnections, WriteFile
from sitemail.firewall.asa_logging import LogBuffer, logging_report
from sitemail.firewall.asa_runtime import AsaRuntime
from sitemail.firewall.asa_syslog import Flow, conn_built, conn_teardown
from sitemail.firewall.capture import Capture, Captures, capture_list, capture_report
from sitemail.firewall.conn_table import ConnTable, conn_report
from sitemail.firewall.pcap import pcap_file
from sitemail.firewall.tcp_segments import ACK, PSH, SYN, TcpSegments

T0 = datetime(2026, 1, 2, 10, 2, 3, 123456).timestamp()
CLIENT, SERVER = ("127.1.0.11", 40000), ("127.2.0.11", 25)


def segments() -> TcpSegments:
    return TcpSegments(CLIENT, SERVER, client_isn=1000, server_isn=5000)


def test_segments_follow_the_bytes_with_seq_and_ack() -> None:
    tcp = segments()
    syn, syn_ack, ack = tcp.handshake(T0)
    assert (syn.flags, syn.seq, syn.mss) == (SYN, 1000, 1460)
    assert (syn_ack.flags, syn_ack.seq, syn_ack.ack) == (SYN | ACK, 5000, 1001)
    assert (ack.seq, ack.ack) == (1001, 5001)
    banner = tcp.data(T0, False, b"220 mx\r\n")[0]
    assert (banner.flags, banner.seq, banner.ack) == (PSH | ACK, 5001, 1001)
    big = tcp.data(T0, True, b"x" * 3000)
    assert [len(s.payload) for s in big] == [1460, 1460, 80]
    assert [s.seq for s in big] == [1001, 2461, 3921] and big[0].ack == 5009
    fin = tcp.fin(T0, True)
    assert fin.seq == 4001 and tcp.fin(T0, False).ack == 4002


def test_show_capture_lines() -> None:
    tcp = segments()
    capture = Capture("CAPO", "outside")
    for segment in [*tcp.handshake(T0), *tcp.data(T0, False, b"220 **\r\n")]:
        capture.add(segment)
    assert capture_report(capture) == (
        "4 packets captured\n"
        "\n"
        "   1: 10:02:03.123456 127.1.0.11.40000 > 127.2.0.11.25: S 1000:1000(0) win 29200 "
        "<mss 1460>\n"
        "   2: 10:02:03.123456 127.2.0.11.25 > 127.1.0.11.40000: S 5000:5000(0) ack 1001 "
        "win 29200 <mss 1460>\n"
        "   3: 10:02:03.123456 127.1.0.11.40000 > 127.2.0.11.25: . ack 5001 win 29200\n"
        "   4: 10:02:03.123456 127.2.0.11.25 > 127.1.0.11.40000: P 5001:5009(8) ack 1001 "
        "win 29200\n"
        "4 packets shown\n"
    )
    detail = capture_report(capture, detail=True).splitlines()
    assert detail[2] == "   1: 10:02:03.123456 0200.7f01.000b 0200.7f02.000b 0x0800 Length: 58"
    assert detail[3].startswith("      127.1.0.11.40000 > 127.2.0.11.25: S [tcp sum ok] 1000:")
    dump = capture_report(capture, dump=True)
    assert "220 **" in dump.replace("\n", "")[-80:]


def test_show_capture_list_and_a_full_buffer() -> None:
    captures = Captures()
    match = Ace("permit", "tcp", AddressSpec("host", CLIENT[0]), AddressSpec("host", SERVER[0]))
    small = Capture("CAPI", "inside", Ace(**{**match.__dict__, "destination_port": 25}), 200)
    captures.put(small)
    captures.put(Capture("ALL", "outside", circular=True, buffer=200))
    tcp = segments()
    for _ in range(3):
        captures.record("inside", tcp.data(T0, True, b"y" * 50))
        captures.record("outside", tcp.data(T0, True, b"y" * 50))
    assert capture_list(captures) == (
        "capture CAPI type raw-data buffer 200 interface inside [Buffer Full - 104 bytes]\n"
        "  match tcp host 127.1.0.11 host 127.2.0.11 eq smtp\n"
        "capture ALL type raw-data buffer 200 circular-buffer interface outside "
        "[Capturing - 104 bytes]\n"
    )
    # The match takes both directions of the flow, and nothing else.
    other = TcpSegments(("127.9.9.9", 1), SERVER, client_isn=1, server_isn=2)
    assert small.wants(tcp.data(T0, False, b"z")[0]) and not small.wants(other.handshake(T0)[0])


def _checksum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_pcap_frames_carry_valid_ip_and_tcp_checksums() -> None:
    tcp = segments()
    data = pcap_file([*tcp.handshake(T0), *tcp.data(T0, True, b"EHLO a\r\n")])
    magic, major, minor, _, _, snaplen, link = struct.unpack("=IHHiIII", data[:24])
    assert (magic, major, minor, snaplen, link) == (0xA1B2C3D4, 2, 4, 65535, 1)
    offset, frames = 24, []
    while offset < len(data):
        seconds, micros, size, original = struct.unpack("=IIII", data[offset : offset + 16])
        assert (seconds + micros / 1e6, size) == (round(T0, 6), original)
        frames.append(data[offset + 16 : offset + 16 + size])
        offset += 16 + size
    assert len(frames) == 4
    for frame in frames:
        ip = frame[14:]
        assert frame[12:14] == b"\x08\x00" and _checksum_ok(ip[:20])
        total = struct.unpack("!H", ip[2:4])[0]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, total - 20)
        assert _checksum_ok(pseudo + ip[20:total])
    assert frames[-1].endswith(b"EHLO a\r\n")


FLOW = Flow("outside", "127.1.0.11", 40000, "inside", "127.2.0.11", 25)


def test_show_conn_and_the_connection_syslog_lines() -> None:
    table = ConnTable(first_id=7)
    entry = table.open(FLOW, 100.0)
    entry.bytes, entry.client_data, entry.server_data, entry.last = 1234, True, True, 101.0
    outbound = table.open(Flow("inside", "127.2.0.11", 5000, "outside", "127.1.0.11", 25), 100.0)
    table.close(outbound)
    assert conn_report(table, 102.5) == (
        "1 in use, 2 most used\n"
        "TCP outside 127.1.0.11:40000 inside 127.2.0.11:25, idle 0:00:01, bytes 1234, "
        "flags UIOB\n"
    )
    assert "Initiator: 127.1.0.11, Responder: 127.2.0.11" in conn_report(table, 102.5, detail=True)
    assert conn_built(FLOW, 7) == (
        "%ASA-6-302013: Built inbound TCP connection 7 for outside:127.1.0.11/40000 "
        "(127.1.0.11/40000) to inside:127.2.0.11/25 (127.2.0.11/25)"
    )
    assert conn_teardown(FLOW, 7, "0:00:05", 1234, "TCP FINs") == (
        "%ASA-6-302014: Teardown TCP connection 7 for outside:127.1.0.11/40000 to "
        "inside:127.2.0.11/25 duration 0:00:05 bytes 1234 TCP FINs"
    )


def test_the_log_buffer_keeps_the_newest_lines_within_its_size() -> None:
    buffer = LogBuffer(size=100)
    for n in range(5):
        buffer.add(f"Jan 02 2026 10:11:1{n}: %ASA-6-302013: {n}")
    assert len(buffer.lines()) == 2 and buffer.lines()[-1].endswith(": 4")
    report = logging_report(buffer)
    assert "    Buffer logging: level debugging, 5 messages logged\n" in report
    assert report.endswith("Jan 02 2026 10:11:14: %ASA-6-302013: 4\n")
    buffer.clear()
    assert buffer.lines() == [] and "0 messages logged" in logging_report(buffer)


def test_the_console_drives_captures_connections_and_the_log() -> None:
    runtime = AsaRuntime(clock=lambda: T0)
    cli = AsaCli(privileged=True, runtime=runtime)
    typed = "capture CAPO interface outside match tcp host 127.1.0.11 host 127.2.0.11 eq 25"
    assert cli.feed(typed).output == ""
    assert cli.feed("capture ALL type raw-data interface inside match ip any any").output == ""
    assert cli.feed("capture X buffer 9").output.startswith(
        " " * len("ciscoasa# capture X buffer ") + "^"
    )
    assert "must be specified" in cli.feed("capture Y circular-buffer").output
    shown = cli.feed("show capture").output
    assert "capture CAPO type raw-data interface outside [Capturing - 0 bytes]\n" in shown
    assert "  match ip any any\n" in shown
    runtime.captures.record("outside", segments().handshake(T0))
    assert cli.feed("sh cap CAPO").output.startswith("3 packets captured\n")
    result = cli.feed("copy /pcap capture:CAPO disk0:/capo.pcap")
    assert result.output == "!\n3 packets copied in 0.0 secs\n"
    (effect,) = result.effects
    assert isinstance(effect, WriteFile) and effect.name == "capo.pcap"
    assert "destination" in cli.feed("copy /pcap capture:CAPO ../x").output
    assert cli.feed("clear capture CAPO").output == ""
    assert cli.feed("show capture CAPO").output.startswith("0 packets captured\n")
    assert cli.feed("no capture CAPO").output == ""
    assert cli.feed("show capture CAPO").output == "ERROR: Capture <CAPO> does not exist\n"
    runtime.conns.open(FLOW, T0)
    assert cli.feed("show conn").output.startswith("1 in use, 1 most used\nTCP outside ")
    assert cli.feed("clear conn").effects == (ClearConnections(),)
    runtime.log.add("Jan 02 2026 10:11:12: %ASA-6-302013: x")
    assert cli.feed("show logging").output.endswith("%ASA-6-302013: x\n")
    cli.feed("clear logging buffer")
    assert "%ASA" not in cli.feed("show logging").output
