"""The observer's bounded queue (pager.hub.Observer): what waits, and what is dropped."""

import asyncio
import logging
from types import SimpleNamespace

from pager.hub import Hub, Notification, Observer


class Tagged(Notification):
    __slots__ = ("tag",)  # tells notifications apart below


def make(kind: str, tag: int = 0) -> Tagged:
    n = Tagged({"responseTypes": [kind]})
    n.tag = tag
    return n


async def drain(o: Observer) -> list[tuple[str, int]]:
    out = []
    while o._first or o._changes:
        n = await o.next()
        out.append((n.kind, n.tag))
    return out


async def test_below_the_limit_nothing_is_dropped():
    o = Observer("peer", 3, [make("ping")])
    for i in range(3):
        o.offer(make("sessions", i))
    assert await drain(o) == [("ping", 0), ("sessions", 0), ("sessions", 1), ("sessions", 2)]
    assert o.dropped == o.replaced == 0


async def test_the_oldest_session_notifications_go_first():
    o = Observer("peer", 3, [])
    for i in range(10):
        o.offer(make("sessions", i))
    assert await drain(o) == [("sessions", 7), ("sessions", 8), ("sessions", 9)]
    assert o.dropped == 7


async def test_the_first_notifications_are_never_dropped():
    first = [make("sessions", -i) for i in range(1, 6)]  # a list split in five
    o = Observer("peer", 2, first)
    for i in range(10):
        o.offer(make("sessions", i))
    assert await drain(o) == [("sessions", -i) for i in range(1, 6)] + [
        ("sessions", 8),
        ("sessions", 9),
    ]


async def test_settings_are_dropped_only_for_newer_settings():
    o = Observer("peer", 3, [])
    o.offer(make("settings", 1))
    for i in range(5):
        o.offer(make("sessions", i))
    # the settings notification is the only one of its kind: session ones were dropped instead
    assert [(n.kind, n.tag) for n in o._changes] == [
        ("settings", 1),
        ("sessions", 3),
        ("sessions", 4),
    ]
    o.offer(make("settings", 2))
    o.offer(make("statistics", 1))
    o.offer(make("sessions", 5))
    assert await drain(o) == [("settings", 2), ("statistics", 1), ("sessions", 5)]
    assert (o.dropped, o.replaced) == (5, 1)


async def test_only_the_latest_settings_and_statistics_can_outgrow_the_limit():
    o = Observer("peer", 1, [])
    o.offer(make("settings", 1))
    o.offer(make("statistics", 1))
    o.offer(make("sessions", 1))
    assert len(o._changes) == 3  # neither could be dropped: nothing newer says what they say
    o.offer(make("settings", 2))
    o.offer(make("sessions", 2))
    assert await drain(o) == [("statistics", 1), ("settings", 2), ("sessions", 2)]


async def test_a_ping_is_queued_only_when_nothing_waits():
    o = Observer("peer", 10, [make("ping", 0)])
    o.offer(make("ping", 1))
    assert await drain(o) == [("ping", 0)]
    o.offer(make("sessions", 1))
    o.offer(make("ping", 2))
    assert await drain(o) == [("sessions", 1)]
    o.offer(make("ping", 3))
    assert await drain(o) == [("ping", 3)]


async def test_an_episode_is_logged_when_it_starts_and_when_it_ends(caplog):
    caplog.set_level(logging.WARNING, logger="pager.notify")
    o = Observer("peer:1", 2, [])
    for i in range(6):
        o.offer(make("sessions", i))
    o.offer(make("settings", 1))
    o.offer(make("settings", 2))  # the last session notification made room for it
    o.offer(make("sessions", 6))  # and now the older settings notification does
    assert [(n.kind, n.tag) for n in o._changes] == [("settings", 2), ("sessions", 6)]
    assert [r.getMessage() for r in caplog.records] == [
        "observer peer:1 is 2 notifications behind: dropping the oldest"
    ]
    await drain(o)
    waiting = asyncio.ensure_future(o.next())  # finds the queue empty: the episode ends
    await asyncio.sleep(0)
    assert caplog.records[-1].getMessage() == (
        "observer peer:1 caught up after 6 session notifications were dropped and 1 settings "
        "or statistics notifications replaced by newer ones"
    )
    o.offer(make("sessions", 9))
    assert (await asyncio.wait_for(waiting, 1)).tag == 9
    assert len(caplog.records) == 2


async def test_forgetting_wakes_the_sender_with_none():
    o = Observer("peer", 2, [make("ping")])
    o.offer(make("sessions", 1))
    o.forget()
    assert await o.next() is None


async def test_ending_or_forgetting_wakes_the_observer_with_nothing_more_to_send():
    for leave, ending in ((Observer.end, True), (Observer.forget, False)):
        o = Observer("peer", 3, [])
        waiting = asyncio.ensure_future(o.next())
        await asyncio.sleep(0)
        o.offer(make("sessions", 1))
        leave(o)
        assert await waiting is None  # the session notification offered went with the rest
        assert (o.ending, o.forgotten, o.leaving.is_set()) == (ending, not ending, True)
        assert await o.next() is None


async def test_end_all_waits_for_each_final_notification_within_its_bound():
    told, deaf = Observer("told", 3, []), Observer("deaf", 3, [])
    hub = SimpleNamespace(observers={told, deaf})  # end_all reads nothing else of a Hub
    delivered = asyncio.get_running_loop().create_future()

    async def observation(o: Observer, final: "asyncio.Future[None]") -> None:
        assert await o.next() is None and o.ending
        o.delivered = final
        o.gone.set()

    tasks = [
        asyncio.ensure_future(observation(told, delivered)),
        asyncio.ensure_future(observation(deaf, asyncio.get_running_loop().create_future())),
    ]
    asyncio.get_running_loop().call_later(0.1, delivered.set_result, None)
    started = asyncio.get_running_loop().time()
    await Hub.end_all(hub, within=0.3)  # type: ignore[arg-type]
    took = asyncio.get_running_loop().time() - started
    assert delivered.done() and 0.25 < took < 1.0  # waited for the first, gave up on the other
    await asyncio.gather(*tasks)
