"""The packet codec: every packet type round-trips, and no input raises anything but
MalformedPacket."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_hub.mqtt import codec

TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
TOPICS = st.text(
    alphabet=st.characters(blacklist_characters="\x00+#", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)
IDS = st.integers(min_value=1, max_value=0xFFFF)

PACKETS = st.one_of(
    st.builds(
        codec.Connect,
        client_id=st.text(alphabet=TEXT, max_size=20),
        keepalive=st.integers(0, 0xFFFF),
        clean_session=st.booleans(),
        username=st.none() | st.text(alphabet=TEXT, max_size=30),
        password=st.none() | st.binary(max_size=30),
    ).filter(lambda c: c.username is not None or c.password is None),
    st.builds(codec.ConnAck, st.booleans(), st.integers(0, 5)),
    st.builds(
        lambda t, p, q, i, r, d: codec.Publish(t, p, q, i if q else None, r, d and q > 0),
        TOPICS, st.binary(max_size=300), st.integers(0, 2), IDS, st.booleans(), st.booleans(),
    ),
    st.builds(codec.PubAck, IDS),
    st.builds(
        codec.Subscribe,
        IDS,
        st.lists(st.tuples(TOPICS, st.integers(0, 2)), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(
        codec.SubAck, IDS, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1).map(tuple)
    ),
    st.builds(codec.Unsubscribe, IDS, st.lists(TOPICS, min_size=1, max_size=4).map(tuple)),
    st.builds(codec.UnsubAck, IDS),
    st.just(codec.PingReq()),
    st.just(codec.PingResp()),
    st.just(codec.Disconnect()),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(PACKETS)
def test_every_packet_type_round_trips(packet: codec.Packet) -> None:
    data = codec.encode(packet)
    decoded, used = codec.decode_bytes(data)
    assert decoded == packet
    assert used == len(data)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_malformed_packet(data: bytes) -> None:
    try:
        codec.decode_bytes(data)
    except codec.MalformedPacket:
        pass


@settings(max_examples=300, deadline=None)
@given(PACKETS, st.data())
def test_a_wrong_remaining_length_is_rejected(packet: codec.Packet, data: st.DataObject) -> None:
    encoded = codec.encode(packet)
    body = encoded[2:] if encoded[1] < 128 else None
    if body is None or not body:
        return
    delta = data.draw(st.sampled_from([-1, 1]))
    broken = bytes([encoded[0], len(body) + delta]) + body
    with pytest.raises(codec.MalformedPacket):
        _decode_stream(broken)


def _decode_stream(data: bytes) -> list[codec.Packet]:
    """Every packet in `data` (an understated length leaves bytes that are no packet)."""
    packets = []
    while data:
        packet, used = codec.decode_bytes(data)
        packets.append(packet)
        data = data[used:]
    return packets


def test_reserved_flags_and_qos3_are_rejected() -> None:
    with pytest.raises(codec.MalformedPacket, match="reserved flags"):
        codec.decode(0x80, b"\x00\x01\x00\x01a\x00")  # SUBSCRIBE must carry flags 0b0010
    with pytest.raises(codec.MalformedPacket, match="QoS 3"):
        codec.decode(0x36, b"\x00\x01a\x00\x01")


def test_the_stream_reader_frames_packets_and_enforces_the_size_limit() -> None:
    async def read(data: bytes, limit: int) -> list[codec.Packet]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        out = []
        while (packet := await codec.read_packet(reader, limit)) is not None:
            out.append(packet)
        return out

    two = codec.encode(codec.PingReq()) + codec.encode(codec.PubAck(7))
    assert asyncio.run(read(two, 100)) == [codec.PingReq(), codec.PubAck(7)]
    big = codec.encode(codec.Publish("t", b"x" * 200))
    with pytest.raises(codec.MalformedPacket, match="over the limit"):
        asyncio.run(read(big, 100))
    with pytest.raises(codec.MalformedPacket, match="ended inside"):
        asyncio.run(read(big[:50], 1000))
