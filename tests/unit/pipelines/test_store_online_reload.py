"""A full reload swaps a version atomically: readers see the old data or the new, never a mix or a gap.

A reader on its own connection (the model server's) reads continuously while a `replace=True`
write (a `full` ingestion) runs against a real SQLite file and a real redis-server. The write
is held at its inner steps until the reader has read there: SQLite between loading the new
table and committing the swap, Redis after writing the new generation (before the switch)
and after the switch (before the old generation is unlinked). Every answer must be one of
the two whole states, and once a reader saw the new one it never sees the old again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pandas as pd
import pytest

from fti_pipelines.store.online import EntityRead, OnlineStore, open_online_store
from fti_pipelines.store.online.redis import write as redis_write
from support.wait import wait_until

ROWS = 3000  # more than one Redis script call's worth (write.BATCH)
A, B, C = 1, 2, ROWS + 1  # A in both, B only in the old data, C only in the new


def data(keys: list[int], x: int, day: str) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "t": [pd.Timestamp(day, tz="UTC")] * len(keys), "x": [x] * len(keys)})


OLD = data(list(range(1, ROWS + 1)), 1, "2026-01-02")
# The new data: an older event time (a full reload replaces whatever the stored times), B gone, C new.
NEW = data([k for k in range(1, ROWS + 2) if k != B], 2, "2026-01-01")
OLD_STATE = (1, 1, None)
NEW_STATE = (2, None, 2)


class Reader(threading.Thread):
    """Reads A, B and C in one call (get_many) and A through a prepared entity reader, until stopped."""

    def __init__(self, uri: str):
        super().__init__(daemon=True)
        self.store = open_online_store(uri)  # a connection of its own, like a model server's
        self.entity = self.store.entity_reader([EntityRead("g", 1, ("x",))])
        self.reads = 0
        self.seen: list[tuple] = []
        self.bad: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        # A model server's prepared readers, built on the thread that reads (its own cursor);
        # SQLite's complete reader answers no row for a gap, which would be a spurious 404.
        readers = self.store.prepared_readers()
        complete = readers.complete_reader([EntityRead("g", 1, ("x",))]) if readers is not None else None
        try:
            while not self.stop.is_set():
                rows = self.store.get_many("g", 1, [(A,), (B,), (C,)], ["x"])
                state = tuple(None if r is None else r["x"] for r in rows)
                one = self.entity({"k": A})
                if state not in (OLD_STATE, NEW_STATE):
                    self.bad.append(f"get_many read a mix or a gap: {state}")
                if one[0] is None or one[1] not in (1, 2):
                    self.bad.append(f"the entity reader read {list(one)} for a key in both versions")
                whole = complete(A) if complete is not None else (1,)
                if whole is None or whole[0] not in (1, 2):
                    self.bad.append(f"the complete reader read {whole} for a key in both versions")
                # two calls, one after the other: the switch may come between them, never back
                for seen in (state, NEW_STATE if one[1] == 2 else OLD_STATE):
                    if self.seen and self.seen[-1] == NEW_STATE and seen == OLD_STATE:
                        self.bad.append("the old data came back after the new was read")
                    self.seen.append(seen)
                self.reads += 1
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
            self.bad.append(f"{type(exc).__name__}: {exc}")
        finally:
            if readers is not None:
                readers.close()
            self.store.close()


def pause(reader: Reader, where: str) -> Callable[[], None]:
    """Wait until the reader has read a few more times (at this step of the write)."""

    def wait() -> None:
        start = reader.reads
        wait_until(lambda: reader.reads >= start + 5 or reader.bad, timeout=60, interval=0.01, description=f"reads {where}")

    return wait


@pytest.fixture
def store(online_store) -> OnlineStore:
    online_store.write("g", 1, ["k"], "t", OLD)
    return online_store


def test_readers_see_the_old_or_the_new_data_never_a_mix_during_a_full_reload(store, monkeypatch) -> None:
    reader = Reader(store.uri)
    reader.start()
    try:
        pause(reader, "before the reload")()
        staged = store.stage("g", 1, ["k"], "t", NEW, replace=True)
        if store.uri.startswith("redis"):
            # Redis writes everything at commit: hold it after the new generation is written
            # (its one send comes right before the switch) and after the switch.
            send, unlink = redis_write.send_pipelined, redis_write.unlink_matching

            def held_send(client, batches):
                out = send(client, batches)
                pause(reader, "with the new generation written, not yet switched to")()
                return out

            def held_unlink(r, pattern, keep=None):
                if keep is not None:  # the clean-up after the switch
                    pause(reader, "after the switch, before the old generation goes")()
                return unlink(r, pattern, keep)

            monkeypatch.setattr(redis_write, "send_pipelined", held_send)
            monkeypatch.setattr(redis_write, "unlink_matching", held_unlink)
        staged.load()  # SQLite: the new table is filled inside the open transaction
        pause(reader, "with the new data loaded, not committed")()
        assert staged.commit() == ROWS
        pause(reader, "after the reload")()
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    assert not reader.bad, reader.bad[:5]
    assert reader.seen[0] == OLD_STATE and reader.seen[-1] == NEW_STATE
    assert set(reader.seen) == {OLD_STATE, NEW_STATE}
    assert store.version_info("g", 1)["rows"] == ROWS


@pytest.mark.redis
def test_a_redis_reload_that_died_before_its_switch_leaves_nothing_visible(redis_url, monkeypatch) -> None:
    import redis

    store = open_online_store(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        store.write("h", 1, ["k"], "t", OLD)
        staged = store.stage("h", 1, ["k"], "t", NEW, replace=True)

        send = redis_write.send_pipelined

        def die(client, batches):
            send(client, batches)  # the new generation is written whole
            raise ConnectionError("killed before the switch")

        with monkeypatch.context() as patch:
            patch.setattr(redis_write, "send_pipelined", die)
            with pytest.raises(ConnectionError):
                staged.commit()
        assert [r and r["x"] for r in store.get_many("h", 1, [(A,), (B,), (C,)], ["x"])] == list(OLD_STATE)
        assert client.exists("fti:h:v1#2:1") == 1, "the dead reload's generation is left, unread"
        # The next reload writes under a new number; its switch removes every older key.
        assert store.write("h", 1, ["k"], "t", NEW.head(10), replace=True) == 10
        assert len(list(client.scan_iter(match="fti:h:v1*", count=5000))) == 10
        assert store.get("h", 1, (B,)) is None and store.version_info("h", 1)["rows"] == 10
        # Dropping the version removes every generation's keys and the metadata.
        assert store.drop_version("h", 1) == 10
        assert not list(client.scan_iter(match="fti*:h:v1*")) and store.version_info("h", 1) is None
        assert store.drop_version("h", 1) == 0  # dropping twice is harmless
    finally:
        client.close()
        store.close()
