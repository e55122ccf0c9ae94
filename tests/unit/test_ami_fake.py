"""The fake Asterisk itself, spoken to with raw sockets: if it lies, every service test lies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from core.protocols.ami import AMIMessage, AMIParser, encode_action
from core.transport.fake_ami import FakeAMIServer, FakeAMISession, Reply

USER, SECRET = "u", "s"


class Raw:
    """A minimal raw AMI client for poking at the fake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = AMIParser()
        self.n = 0

    @classmethod
    async def connect(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def next(self) -> AMIMessage:
        async with asyncio.timeout(2):
            while True:
                item = self.parser.next_event()
                if isinstance(item, AMIMessage):
                    return item
                if item is None:
                    data = await self.reader.read(65536)
                    if not data:
                        raise EOFError
                    self.parser.feed(data)

    async def send(self, name: str, **fields: str) -> str:
        self.n += 1
        self.writer.write(encode_action(name, fields, action_id=f"r-{self.n}"))
        await self.writer.drain()
        return f"r-{self.n}"

    async def login(self, secret: str = SECRET) -> AMIMessage:
        await self.send("Login", Username=USER, Secret=secret)
        return await self.next()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAMIServer]:
    async with FakeAMIServer(USER, SECRET) as server:
        yield server


@pytest.fixture
async def raw(fake: FakeAMIServer) -> AsyncIterator[Raw]:
    client = await Raw.connect(fake.port)
    yield client
    await client.close()


async def test_greeting_login_fully_booted(fake: FakeAMIServer, raw: Raw) -> None:
    resp = await raw.login()
    assert raw.parser.greeting is not None and raw.parser.greeting.version == "11.0.0"
    assert resp.response == "Success" and resp.message == "Authentication accepted"
    assert resp.action_id == "r-1"
    booted = await raw.next()
    assert booted.name == "FullyBooted" and booted["Status"] == "Fully Booted"
    await raw.send("Login", Username=USER, Secret=SECRET)
    assert (await raw.next()).message == "Already authenticated"


async def test_permission_denied_before_login(raw: Raw) -> None:
    await raw.send("QueueStatus")
    resp = await raw.next()
    assert resp.is_error and resp.message == "Permission denied"


async def test_bad_login_closes(fake: FakeAMIServer, raw: Raw) -> None:
    resp = await raw.login("wrong")
    assert resp.is_error and resp.message == "Authentication failed"
    with pytest.raises(EOFError):
        await raw.next()
    assert fake.stats.login_failures == 1


async def test_queue_member_state(fake: FakeAMIServer, raw: Raw) -> None:
    await raw.login()
    await raw.next()
    await raw.send("QueueAdd", Queue="helpline", Interface="PJSIP/agent0001", Paused="1")
    assert (await raw.next()).message == "Added interface to queue"
    added = await raw.next()
    assert added.name == "QueueMemberAdded" and added["Paused"] == "1"
    await raw.send("QueueAdd", Queue="nope", Interface="PJSIP/agent0001")
    assert (await raw.next()).message == "Unable to add interface to queue: No such queue"
    await raw.send("QueueAdd", Queue="helpline")
    assert (await raw.next()).message == "'Interface' not specified."
    await raw.send("QueuePause", Interface="PJSIP/agent0001", Paused="false")
    assert (await raw.next()).message == "Interface unpaused successfully"
    assert (await raw.next()).name == "QueueMemberPause"
    assert not fake.queues["helpline"]["PJSIP/agent0001"].paused
    await raw.send("QueuePause", Interface="PJSIP/none", Paused="true")
    assert (await raw.next()).message == "Interface not found"
    fake.add_member("helpline", "PJSIP/static01")
    await raw.send("QueueRemove", Queue="helpline", Interface="PJSIP/static01")
    assert (await raw.next()).message == "Member not dynamic"
    await raw.send("QueueRemove", Queue="helpline", Interface="PJSIP/agent0001")
    assert (await raw.next()).message == "Removed interface from queue"
    assert (await raw.next()).name == "QueueMemberRemoved"
    await raw.send("QueueRemove", Queue="helpline", Interface="PJSIP/agent0001")
    assert (await raw.next()).message == "Unable to remove interface: Not there"


async def test_queue_status_list_layout(fake: FakeAMIServer, raw: Raw) -> None:
    await raw.login()
    await raw.next()
    fake.add_member("helpline", "PJSIP/agent0001", name="एजेंट एक")
    fake.entries["helpline"].append({"Channel": "PJSIP/trunk-1", "Uniqueid": "1.1"})
    aid = await raw.send("QueueStatus")
    start = await raw.next()
    assert start.event_list == "start" and start.message == "Queue status will follow"
    names = []
    while True:
        event = await raw.next()
        assert event.action_id == aid
        names.append(event.name)
        if event.event_list == "complete":
            assert event["ListItems"] == "3"
            break
    assert names == ["QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete"]


async def test_misc_actions(fake: FakeAMIServer, raw: Raw) -> None:
    await raw.login()
    await raw.next()
    await raw.send("Ping")
    assert (await raw.next())["Ping"] == "Pong"
    await raw.send("Events", EventMask="off")
    assert (await raw.next())["Events"] == "Off"
    await raw.send("Command")
    assert (await raw.next()).message == "No command provided"
    await raw.send("Bogus")
    assert "Invalid/unknown command: Bogus" in ((await raw.next()).message or "")
    raw.writer.write(b"Foo: bar\r\n\r\n")
    assert (await raw.next()).message == "Missing action in request"
    await raw.send("Logoff")
    assert (await raw.next()).response == "Goodbye"
    with pytest.raises(EOFError):
        await raw.next()


async def test_custom_handler(fake: FakeAMIServer, raw: Raw) -> None:
    async def handler(session: FakeAMISession, action: AMIMessage) -> Reply | None:
        if action.get("Action") == "Originate":
            return [
                [("Response", "Success"), ("ActionID", action.action_id or "")],
                b"Event: OriginateResponse\r\nResponse: Failure\r\nReason: 3\r\n\r\n",
            ]
        return None

    fake.handler = handler
    await raw.login()
    await raw.next()
    await raw.send("Originate", Channel="PJSIP/1@trunk")
    assert (await raw.next()).response == "Success"
    assert (await raw.next())["Reason"] == "3"
    await raw.send("Ping")
    assert (await raw.next())["Ping"] == "Pong"


async def test_silent_answers_nothing(fake: FakeAMIServer, raw: Raw) -> None:
    await raw.login()
    await raw.next()
    fake.silent = True
    await raw.send("Ping")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await raw.next()
    assert len(fake.actions_named("Ping")) == 1


async def test_writetimeout_drops_a_client_that_does_not_read() -> None:
    """Asterisk's writetimeout: a reader that stops reading is disconnected, not buffered for."""
    async with FakeAMIServer(USER, SECRET, writetimeout=0.1, send_buffer=8192) as fake:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", fake.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        raw = Raw(reader, writer)
        await raw.login()
        await raw.next()
        # Stop reading; push events until the fake gives up on us.
        reached = []
        async with asyncio.timeout(5):
            while fake.stats.writetimeout_drops == 0:
                reached.append(await fake.push_event("Newstate", Pad="x" * 1000))
        assert reached[-1] == 0 and fake.stats.writetimeout_drops == 1
        await fake.wait_until(lambda: not fake.sessions)
        writer.close()


async def test_pause_resume_accepting(fake: FakeAMIServer) -> None:
    fake.pause_accepting()
    with pytest.raises(OSError):
        await Raw.connect(fake.port)
    await fake.resume_accepting()
    raw = await Raw.connect(fake.port)
    assert (await raw.login()).response == "Success"
    await raw.close()


async def test_an_answer_never_lands_inside_a_half_pushed_event(
    fake: FakeAMIServer, raw: Raw
) -> None:
    """Asterisk writes each message whole (TCP may cut it, never interleave another into it):
    a Ping answered while an event is half pushed comes after the event, and both parse."""
    await raw.login()
    assert (await raw.next()).name == "FullyBooted"
    event = b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\nTimestamp: 1700000000.5\r\n\r\n"
    cut = event.index(b"Cause")
    await fake.push_raw(event[:cut])
    await raw.send("Ping")
    await fake.wait_for_action("Ping")
    await asyncio.sleep(0.05)  # the answer, were it not held, would be written now
    await fake.push_raw(event[cut:])
    hangup, pong = await raw.next(), await raw.next()
    assert hangup.name == "Hangup" and hangup["Timestamp"] == "1700000000.5"
    assert hangup.get("Ping") is None and hangup.get("ActionID") is None
    assert pong.response == "Success" and pong["Ping"] == "Pong"
