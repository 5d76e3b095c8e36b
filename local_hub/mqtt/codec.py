"""A strict, framed codec for MQTT 3.1.1's eleven packet types.

Reading is framed: the fixed header and its remaining length come first, then exactly that many
bytes are read, and only then is the body parsed, so a packet that overstates or understates its
length is rejected instead of eating the next packet. Every violation of the specification the
server can see (reserved flags, bad lengths, invalid UTF-8, QoS 3, trailing bytes, ...) raises
`MalformedPacket` and nothing else.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

__all__ = [
    "MAX_TOPIC",
    "ConnAck",
    "Connect",
    "Disconnect",
    "MalformedPacket",
    "Packet",
    "PingReq",
    "PingResp",
    "PubAck",
    "Publish",
    "SubAck",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "decode",
    "decode_bytes",
    "encode",
    "read_packet",
]

MAX_REMAINING = 268_435_455
MAX_TOPIC = 0xFFFF  # a UTF-8 string's two-byte length prefix


class MalformedPacket(ValueError):
    """The bytes are not a valid MQTT 3.1.1 packet."""


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    keepalive: int
    clean_session: bool = False
    username: str | None = None
    password: bytes | None = None
    will_topic: str | None = None
    will_message: bytes | None = None
    will_qos: int = 0
    will_retain: bool = False
    protocol_name: str = "MQTT"
    protocol_level: int = 4


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    return_code: int


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    packet_id: int | None = None
    retain: bool = False
    dup: bool = False


@dataclass(frozen=True, slots=True)
class PubAck:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubAck:
    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    pass


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    pass


Packet = (
    Connect | ConnAck | Publish | PubAck | Subscribe | SubAck | Unsubscribe | UnsubAck | PingReq
    | PingResp | Disconnect
)  # fmt: skip

# -- encoding --------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str) -> bytes:
    return _bin(text.encode())


def _bin(data: bytes) -> bytes:
    if len(data) > MAX_TOPIC:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def _frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def encode(packet: Packet) -> bytes:
    """The wire bytes of `packet`."""
    match packet:
        case Publish(topic, payload, qos, packet_id, retain, dup):
            first = 0x30 | (dup << 3) | (qos << 1) | retain
            body = _str(topic)
            if qos:
                if packet_id is None:
                    raise ValueError("a QoS 1 or 2 PUBLISH needs a packet id")
                body += struct.pack("!H", packet_id)
            return _frame(first, body + payload)
        case PubAck(packet_id):
            return _frame(0x40, struct.pack("!H", packet_id))
        case ConnAck(session_present, return_code):
            return _frame(0x20, bytes([int(session_present), return_code]))
        case SubAck(packet_id, codes):
            return _frame(0x90, struct.pack("!H", packet_id) + bytes(codes))
        case UnsubAck(packet_id):
            return _frame(0xB0, struct.pack("!H", packet_id))
        case PingReq():
            return b"\xc0\x00"
        case PingResp():
            return b"\xd0\x00"
        case Disconnect():
            return b"\xe0\x00"
        case Subscribe(packet_id, topics):
            body = struct.pack("!H", packet_id)
            body += b"".join(_str(t) + bytes([q]) for t, q in topics)
            return _frame(0x82, body)
        case Unsubscribe(packet_id, topics):
            body = struct.pack("!H", packet_id) + b"".join(_str(t) for t in topics)
            return _frame(0xA2, body)
        case Connect():
            return _encode_connect(packet)
    raise TypeError(f"not a packet: {packet!r}")


def _encode_connect(p: Connect) -> bytes:
    flags = (p.clean_session << 1) | ((p.will_topic is not None) << 2)
    flags |= (p.will_qos << 3) | (p.will_retain << 5)
    flags |= ((p.password is not None) << 6) | ((p.username is not None) << 7)
    body = _str(p.protocol_name) + bytes([p.protocol_level, flags])
    body += struct.pack("!H", p.keepalive) + _str(p.client_id)
    if p.will_topic is not None:
        body += _str(p.will_topic) + _bin(p.will_message or b"")
    if p.username is not None:
        body += _str(p.username)
    if p.password is not None:
        body += _bin(p.password)
    return _frame(0x10, body)


# -- decoding --------------------------------------------------------------------------------


class _Body:
    """A cursor over one packet body that raises MalformedPacket on any overrun."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MalformedPacket("the packet ends in the middle of a field")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("a string is not valid UTF-8") from None
        if "\x00" in text:
            raise MalformedPacket("a string contains U+0000")
        return text

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def done(self) -> None:
        if self.pos != len(self.data):
            raise MalformedPacket("the packet has bytes after its last field")


def _packet_id(body: _Body) -> int:
    packet_id = body.u16()
    if packet_id == 0:
        raise MalformedPacket("packet id 0 is not allowed")
    return packet_id


def _decode_connect(body: _Body) -> Connect:
    name = body.string()
    level = body.u8()
    flags = body.u8()
    if name != "MQTT" and not (name == "MQIsdp" and level == 3):
        raise MalformedPacket(f"unknown protocol name {name!r}")
    if flags & 0x01:
        raise MalformedPacket("the CONNECT reserved flag is set")
    will, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    has_password, has_username = bool(flags & 0x40), bool(flags & 0x80)
    if not will and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain set without a will")
    if will_qos == 3:
        raise MalformedPacket("will QoS 3 is invalid")
    if has_password and not has_username:
        raise MalformedPacket("a password without a user name")
    keepalive = body.u16()
    client_id = body.string()
    will_topic = body.string() if will else None
    will_message = body.binary() if will else None
    username = body.string() if has_username else None
    password = body.binary() if has_password else None
    body.done()
    return Connect(
        client_id, keepalive, bool(flags & 0x02), username, password, will_topic, will_message,
        will_qos, will_retain, name, level,
    )  # fmt: skip


def _decode_publish(flags: int, body: _Body) -> Publish:
    qos = (flags >> 1) & 0x03
    dup = bool(flags & 0x08)
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    if qos == 0 and dup:
        raise MalformedPacket("PUBLISH with QoS 0 and DUP set")
    topic = body.string()
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket("a PUBLISH topic must be non-empty and have no wildcards")
    packet_id = _packet_id(body) if qos else None
    return Publish(topic, body.rest(), qos, packet_id, bool(flags & 0x01), dup)


def _decode_subscribe(body: _Body) -> Subscribe:
    packet_id = _packet_id(body)
    topics = []
    while body.pos < len(body.data):
        topic = body.string()
        qos = body.u8()
        if qos > 2:
            raise MalformedPacket("a SUBSCRIBE requests QoS above 2 or sets reserved bits")
        if not topic:
            raise MalformedPacket("an empty topic filter")
        topics.append((topic, qos))
    if not topics:
        raise MalformedPacket("a SUBSCRIBE without topic filters")
    return Subscribe(packet_id, tuple(topics))


def _decode_unsubscribe(body: _Body) -> Unsubscribe:
    packet_id = _packet_id(body)
    topics = []
    while body.pos < len(body.data):
        topics.append(body.string())
    if not topics:
        raise MalformedPacket("an UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, tuple(topics))


_REQUIRED_FLAGS = {1: 0, 2: 0, 4: 0, 8: 2, 9: 0, 10: 2, 11: 0, 12: 0, 13: 0, 14: 0}
_EMPTY: dict[int, Packet] = {12: PingReq(), 13: PingResp(), 14: Disconnect()}


def decode(first: int, data: bytes) -> Packet:
    """Parse one packet from its first byte and its whole body.

    Raises:
        MalformedPacket: the packet breaks MQTT 3.1.1.
    """
    kind, flags = first >> 4, first & 0x0F
    if kind == 3:
        return _decode_publish(flags, _Body(data))
    if kind not in _REQUIRED_FLAGS:
        raise MalformedPacket(f"packet type {kind} is not supported")
    if flags != _REQUIRED_FLAGS[kind]:
        raise MalformedPacket(f"packet type {kind} has reserved flags {flags:#x}")
    body = _Body(data)
    packet: Packet
    if kind in _EMPTY:
        packet = _EMPTY[kind]
    elif kind == 1:
        return _decode_connect(body)
    elif kind == 2:
        ack_flags = body.u8()
        if ack_flags & 0xFE:
            raise MalformedPacket("CONNACK reserved flags set")
        packet = ConnAck(bool(ack_flags), body.u8())
    elif kind == 4:
        packet = PubAck(_packet_id(body))
    elif kind == 8:
        return _decode_subscribe(body)
    elif kind == 9:
        packet = SubAck(_packet_id(body), tuple(body.rest()))
        if not packet.return_codes or any(c not in (0, 1, 2, 0x80) for c in packet.return_codes):
            raise MalformedPacket("SUBACK return codes are invalid")
    elif kind == 10:
        return _decode_unsubscribe(body)
    else:
        packet = UnsubAck(_packet_id(body))
    body.done()
    return packet


def decode_bytes(data: bytes) -> tuple[Packet, int]:
    """Parse the first packet of `data`; returns it and how many bytes it took."""
    if len(data) < 2:
        raise MalformedPacket("the packet is shorter than a fixed header")
    length, multiplier, pos = 0, 1, 1
    while True:
        if pos >= len(data) or pos > 4:
            raise MalformedPacket("the remaining length is truncated or longer than 4 bytes")
        byte = data[pos]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        pos += 1
        if not byte & 0x80:
            break
    if pos + length > len(data):
        raise MalformedPacket("the packet is shorter than its remaining length")
    return decode(data[0], data[pos : pos + length]), pos + length


async def read_packet(reader: asyncio.StreamReader, max_size: int) -> Packet | None:
    """Read one whole packet; None at a clean end of stream before a packet starts.

    Raises:
        MalformedPacket: a malformed packet, one larger than `max_size`, or a stream that ends
            inside a packet.
    """
    first_byte = await reader.read(1)
    if not first_byte:
        return None
    length, multiplier = 0, 1
    for _ in range(4):
        byte = await reader.read(1)
        if not byte:
            raise MalformedPacket("the stream ended inside a fixed header")
        length += (byte[0] & 0x7F) * multiplier
        multiplier *= 128
        if not byte[0] & 0x80:
            break
    else:
        raise MalformedPacket("the remaining length is longer than 4 bytes")
    if length > max_size:
        raise MalformedPacket(f"a packet of {length} bytes is over the limit of {max_size}")
    try:
        data = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise MalformedPacket("the stream ended inside a packet") from None
    return decode(first_byte[0], data)
