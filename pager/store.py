"""The SQLite store: the only module that speaks SQL.

One file holds everything the transmitter must not forget (spec §10). The live state is
loaded once at start and mirrored in memory by the engine; every change is written here in
one transaction, and the request is answered only after that transaction commits. WAL with
synchronous=NORMAL makes a commit survive a crash or `kill -9` of the process.
"""

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiosqlite

from pager.domain.model import Archived, Change, Device, Session, Settings, State
from pager.domain.pagemodes import AlertCode, Source, Transmission
from pager.domain.statistics import Counters
from pager.domain.timefmt import fmt, parse

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = tuple[Any, ...]  # a row as sqlite3 returns it


class StoreError(Exception):
    """The store cannot be opened or used as it is (corrupt, newer schema, unwritable)."""


class StoreUnavailable(Exception):
    """A read or write failed (disk full, I/O error, file gone read-only); nothing of it was
    kept. The store stays open and works again when the disk does."""


# Schema migrations by version number: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE device (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        global_sequence INTEGER NOT NULL,
        next_session_id INTEGER NOT NULL,
        next_transmission_id INTEGER NOT NULL,
        num_sessions INTEGER NOT NULL,
        guests_served INTEGER NOT NULL,
        on_time INTEGER NOT NULL,
        total_wait INTEGER NOT NULL,
        statistics_generation INTEGER NOT NULL,
        clear_mark_since TEXT,
        system_id INTEGER NOT NULL,
        default_goal INTEGER NOT NULL,
        clear_mark INTEGER NOT NULL,
        clock_offset INTEGER NOT NULL,
        history_count INTEGER NOT NULL,
        transmission_count INTEGER NOT NULL
    );
    INSERT INTO device VALUES (1, 0, 1, 1, 0, 0, 0, 0, 0, NULL, 0, 300, 24, 0, 0, 0);
    CREATE TABLE session (
        id INTEGER PRIMARY KEY,
        sequence INTEGER NOT NULL,
        uuid TEXT NOT NULL,
        number INTEGER NOT NULL UNIQUE,
        party_size INTEGER NOT NULL,
        goal INTEGER NOT NULL,
        created TEXT NOT NULL,
        notified TEXT,
        label TEXT
    );
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        sequence INTEGER NOT NULL,
        uuid TEXT NOT NULL,
        number INTEGER NOT NULL,
        party_size INTEGER NOT NULL,
        goal INTEGER NOT NULL,
        created TEXT NOT NULL,
        notified TEXT,
        label TEXT,
        cleared TEXT NOT NULL,
        clear_type TEXT NOT NULL
    );
    CREATE TABLE transmission (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        number INTEGER NOT NULL,
        system_id INTEGER NOT NULL,
        page_mode TEXT NOT NULL,
        message TEXT,
        codes TEXT NOT NULL,
        session_id INTEGER
    );
    CREATE INDEX transmission_by_number ON transmission (number, id);
    """,
    """
    CREATE TABLE receipt (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        flowinfo INTEGER NOT NULL,
        mid INTEGER NOT NULL,
        datagram BLOB NOT NULL
    );
    ALTER TABLE device ADD COLUMN resets INTEGER NOT NULL DEFAULT 0;
    """,
    # Without the index of `number`: the engine keeps one active session per number, and the
    # index was one more page written by every commit that creates or ends a session.
    # `Store.load` checks the rule instead.
    """
    CREATE TABLE session_v3 (
        id INTEGER PRIMARY KEY,
        sequence INTEGER NOT NULL,
        uuid TEXT NOT NULL,
        number INTEGER NOT NULL,
        party_size INTEGER NOT NULL,
        goal INTEGER NOT NULL,
        created TEXT NOT NULL,
        notified TEXT,
        label TEXT
    );
    INSERT INTO session_v3 SELECT * FROM session;
    DROP TABLE session;
    ALTER TABLE session_v3 RENAME TO session;
    """,
    # The interface each page came in by (pages before LRSN came over CoAP), and LRSN's
    # power and colour of a page.
    """
    ALTER TABLE transmission ADD COLUMN source TEXT NOT NULL DEFAULT 'coap';
    ALTER TABLE transmission ADD COLUMN power INTEGER;
    ALTER TABLE transmission ADD COLUMN color TEXT;
    """,
    # Receipts in a ring: a receipt goes to slot `id` modulo the store's receipt limit, over
    # the one that many ids older. Appending them, with the older ones deleted a batch at a
    # time, had a commit allocate and free pages; a slot is rewritten in place. `Store.open`
    # moves the rows of another limit (and these, slotted by id) into their slots.
    """
    CREATE TABLE receipt_v5 (
        slot INTEGER PRIMARY KEY,
        id INTEGER NOT NULL,
        time REAL NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        flowinfo INTEGER NOT NULL,
        mid INTEGER NOT NULL,
        datagram BLOB NOT NULL
    );
    INSERT INTO receipt_v5 SELECT id, id, time, host, port, flowinfo, mid, datagram FROM receipt;
    DROP TABLE receipt;
    ALTER TABLE receipt_v5 RENAME TO receipt;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# The write-ahead log is copied into the database file (a checkpoint) once it holds about
# this many pages. A copy costs about the same whether the log holds 1,000 pages or 10,000
# (the same few pages are rewritten over and over), and commits wait while its last part
# runs, so a longer log means fewer waits; the log file stays at about 10 MB (40 MB in a store
# created with 4 KiB pages, before PAGE_SIZE), and what the commits add while a checkpoint
# copies. SQLite's own automatic checkpoint
# is off: it would run inside a commit, on the event loop (see `Store._checkpoint`).
WAL_CHECKPOINT_PAGES = 10_000
# A commit writes every page it changed to the log whole, each checksummed, and the pages of
# one request's change hold a few rows each of several tables: small pages are less to copy.
PAGE_SIZE = 1024
# How many pages a commit is assumed to write until the first checkpoint has measured it.
_PAGES_PER_COMMIT_GUESS = 8

# How long a commit waits for another process's write lock (the sqlite3 shell's, say) before
# it fails; sqlite3's own default. Such a commit waits in aiosqlite's thread, not on the loop.
BUSY_WAIT_SECONDS = 5.0

_RECEIPT_UPSERT = (
    "INSERT INTO receipt VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (slot) DO UPDATE SET"
    " id = excluded.id, time = excluded.time, host = excluded.host, port = excluded.port,"
    " flowinfo = excluded.flowinfo, mid = excluded.mid, datagram = excluded.datagram"
)

_DEVICE_COLUMNS = (
    "global_sequence, next_session_id, next_transmission_id, num_sessions, guests_served, "
    "on_time, total_wait, statistics_generation, clear_mark_since, system_id, default_goal, "
    "clear_mark, clock_offset"
)
_SESSION_COLUMNS = "id, sequence, uuid, number, party_size, goal, created, notified, label"


class History(NamedTuple):
    """Archived sessions as of one committed state, and that state's globalSessionSequence."""

    sequence: int
    sessions: list[Archived]


class Receipt(NamedTuple):
    """What a retransmission of a Confirmable request that changed something needs: who sent
    it (the peer's socket address), its message id, and the answer as sent. Kept with the
    change, in the same transaction, so that a retransmission reaching the emulator after a
    restart is answered from here, not processed again (spec §1)."""

    time: float  # wall-clock seconds (time.time()) when it was answered
    host: str
    port: int
    flowinfo: int
    mid: int
    datagram: bytes


def _ts(t: datetime | None) -> str | None:
    return None if t is None else fmt(t)


def _dt(text: str | None) -> datetime | None:
    return None if text is None else parse(text)


def _session_row(s: Session) -> Row:
    return (
        s.id,
        s.sequence,
        s.uuid,
        s.number,
        s.party_size,
        s.goal,
        fmt(s.created),
        _ts(s.notified),
        s.label,
    )


def _session(row: Row) -> Session:
    return Session(
        row[0], row[1], row[2], row[3], row[4], row[5], parse(row[6]), _dt(row[7]), row[8]
    )


def _archived_row(a: Archived) -> Row:
    return (*_session_row(a.session), fmt(a.cleared), a.clear_type)


def _archived(row: Row) -> Archived:
    return Archived(_session(row[:9]), parse(row[9]), row[10])


def _device_row(d: Device) -> Row:
    c, s = d.counters, d.settings
    return (
        d.global_sequence,
        d.next_session_id,
        d.next_transmission_id,
        c.num_sessions,
        c.guests_served,
        c.on_time,
        c.total_wait,
        d.statistics_generation,
        _ts(d.clear_mark_since),
        s.system_id,
        s.default_goal,
        s.clear_mark,
        d.clock_offset,
    )


def _device(row: Row) -> Device:
    return Device(
        global_sequence=row[0],
        next_session_id=row[1],
        next_transmission_id=row[2],
        counters=Counters(row[3], row[4], row[5], row[6]),
        statistics_generation=row[7],
        clear_mark_since=_dt(row[8]),
        settings=Settings(row[9], row[10], row[11]),
        clock_offset=row[12],
    )


def _transmission_row(t: Transmission) -> Row:
    codes = json.dumps([[c.code, c.value] for c in t.override_codes], separators=(",", ":"))
    return (
        t.id,
        fmt(t.time),
        t.number,
        t.system_id,
        t.page_mode,
        t.message,
        codes,
        t.session_id,
        t.source,
        t.power,
        t.color,
    )


def _transmission(row: Row) -> Transmission:
    codes = tuple(AlertCode(code, value) for code, value in json.loads(row[6]))
    source: Source = "lrsn" if row[8] == "lrsn" else "coap"
    return Transmission(
        id=row[0],
        time=parse(row[1]),
        number=row[2],
        system_id=row[3],
        page_mode=row[4],
        message=row[5],
        override_codes=codes,
        session_id=row[7],
        source=source,
        power=row[9],
        color=row[10],
    )


def _lock(path: Path) -> int:
    """Take the store's lock; it is held until its descriptor is closed, by Store.close or
    by the kernel when the process ends, however it ends (kill -9 included).

    The lock is an flock on a file beside the store rather than on the store itself:
    SQLite's own locks are POSIX locks, which this process would lose if it closed any
    other descriptor of the store's file, and an flock leaves them alone, so other readers
    (the sqlite3 shell, a backup) open the store as usual. The lock file is never deleted:
    deleting it while another process is about to lock it would let two processes each lock
    a different file of that name.
    """
    real = path.resolve()  # one lock for every name a symbolic link gives the store
    lock_path = real.with_name(real.name + "-lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(
            f"cannot open store {path}: cannot create its lock file {lock_path}: {e.strerror}"
        ) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"store {path} is already open in another process or emulator;"
            " a store serves one emulator at a time"
        ) from None
    except OSError as e:
        os.close(fd)
        raise StoreError(f"cannot lock store {path} ({lock_path}): {e.strerror}") from e
    return fd


def _transaction(
    db: sqlite3.Connection,
    work: Callable[[sqlite3.Connection, dict[str, int]], None],
    counts: dict[str, int],
) -> None:
    try:
        work(db, counts)
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _waiting(
    db: sqlite3.Connection,
    work: Callable[[sqlite3.Connection, dict[str, int]], None],
    counts: dict[str, int],
) -> None:
    """`_transaction`, waiting up to BUSY_WAIT_SECONDS for another process's lock."""
    db.execute(f"PRAGMA busy_timeout={int(BUSY_WAIT_SECONDS * 1000)}")
    try:
        _transaction(db, work, counts)
    finally:
        db.execute("PRAGMA busy_timeout=0")


# ---- aiosqlite beyond its public API ----------------------------------------------------
# aiosqlite runs every call in a thread of its own connection and wakes the event loop with
# the result. For a commit that round trip (queue, thread wake-up, the GIL handed back and
# forth, the loop woken from the other thread) costs several times the transaction itself,
# and aiosqlite has no public call for anything else, so the store reaches into it here and
# nowhere else: it runs a commit directly on the sqlite3 connection aiosqlite opened (made
# with check_same_thread=False), on the loop thread, while the store's lock guarantees that
# aiosqlite's thread is idle, and it runs a function of its own in that thread for the work
# that may block (a checkpoint, a wait for another process's lock, a read of history).
# aiosqlite is pinned exactly for this; `_Aiosqlite.check` refuses a version that lacks it.


class _Aiosqlite:
    """The parts of an `aiosqlite.Connection` that are not its public API."""

    # what the store relies on: its running flag, the sqlite3 connection, and the call that
    # runs a function in its thread
    RELIES_ON = ("_running", "_connection", "_execute")

    def __init__(self, conn: aiosqlite.Connection):
        self._aio = conn

    @classmethod
    def check(cls, conn: aiosqlite.Connection) -> "_Aiosqlite":
        """Fail at open, not at the first commit, if this aiosqlite is not the one the store
        was written against."""
        version = getattr(aiosqlite, "__version__", "unknown")
        missing = [name for name in cls.RELIES_ON if not hasattr(conn, name)]
        if missing or not asyncio.iscoroutinefunction(conn._execute):
            raise StoreError(
                f"aiosqlite {version} lacks what the store relies on"
                f" ({', '.join(missing) or '_execute as a coroutine'}); install the version"
                " pyproject.toml pins"
            )
        if not isinstance(conn._connection, sqlite3.Connection):
            raise StoreError(f"aiosqlite {version} keeps no sqlite3 connection in _connection")
        return cls(conn)

    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection, for use on the loop thread while aiosqlite's thread is idle;
        closed, it fails as aiosqlite's own calls do."""
        db = self._aio._connection
        if not self._aio._running or db is None:
            raise ValueError("Connection closed")
        return db

    async def in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in aiosqlite's thread, after whatever is queued there."""
        run = self._aio._execute  # unannotated: aiosqlite's private call (checked at open)
        result: T = await run(lambda: work(self.sqlite()))  # type: ignore[no-untyped-call]
        return result


class Store:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        history_limit: int,
        file_lock: int,
        receipt_window: float,
        receipt_limit: int,
    ):
        self._conn = conn
        self._aio = _Aiosqlite(conn)
        self._file_lock = file_lock  # the descriptor holding _lock(path)
        self.path = path
        self.history_limit = history_limit
        # The newest `receipt_limit` receipts are kept (a ring of that many slots), and the
        # ones within the window loaded: the bounds of the in-memory duplicate detection.
        self.receipt_window = receipt_window
        self.receipt_limit = receipt_limit
        self._receipt_next = 1  # the id of the next receipt
        # One connection, so statements of concurrent callers must not interleave: a read
        # between another caller's BEGIN and COMMIT would see uncommitted rows.
        self._lock = asyncio.Lock()
        self._counts = {"history": 0, "transmission": 0}  # rows in the capped tables
        self.resets = 0  # factory resets this store has seen (see `reset`)
        self._reader: aiosqlite.Connection | None = None  # history's own, opened on first use
        # Held for each read of history (one at a time in the reader's thread anyway) and by a
        # checkpoint: a read holds a snapshot of the log, and a checkpoint that met one would
        # leave the log to grow (see `_checkpoint`).
        self._reading = asyncio.Lock()
        # checkpoints: commits since the last one, and how many commits fill the log
        self._since_checkpoint = 0
        self._checkpoint_every = WAL_CHECKPOINT_PAGES // _PAGES_PER_COMMIT_GUESS
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpointer: aiosqlite.Connection | None = None  # opened by `open`

    @classmethod
    async def open(
        cls,
        path: str | Path,
        history_limit: int = 100_000,
        receipt_window: float = 49.0,
        receipt_limit: int = 20_000,
    ) -> "Store":
        """Open the store at `path` (a new one if there is no file), for this process alone.

        A store that is already open elsewhere, read-only, corrupt or newer than this
        emulator is refused with StoreError and left as it was.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError(f"cannot open store {path}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise StoreError(f"cannot open store {path}: it is a folder, not a file")
        lock = _lock(path)
        try:
            # sqlite3 opens the transaction itself at a transaction's first write;
            # check_same_thread=False lets commits run on the loop thread (see _Aiosqlite).
            conn = await aiosqlite.connect(
                path,
                isolation_level="IMMEDIATE",
                check_same_thread=False,
                timeout=BUSY_WAIT_SECONDS,
            )
        except sqlite3.Error as e:
            os.close(lock)
            raise StoreError(f"cannot open store {path}: {e}") from e
        store = cls(conn, path, history_limit, lock, receipt_window, receipt_limit)
        try:
            _Aiosqlite.check(conn)
            await store._migrate()
            await store._check_writable()
            # the checkpoint's own (see `_checkpoint`), opened with the store and its log
            # read once: a store's descriptors are all open from the start
            store._checkpointer = await aiosqlite.connect(path, isolation_level=None)
            async with store._checkpointer.execute("SELECT count(*) FROM device") as cursor:
                await cursor.fetchall()
            # a commit on the loop must not wait for a lock there: it waits in the thread
            await conn.execute("PRAGMA busy_timeout=0")
        except BaseException as e:
            await store.close()
            if isinstance(e, sqlite3.DatabaseError):
                if e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:
                    raise StoreError(
                        f"store {path} is read-only: every change would fail; "
                        "make it writable, or use another store"
                    ) from e
                raise StoreError(f"store {path} is not a usable pager store: {e}") from e
            raise
        return store

    async def _check_writable(self) -> None:
        """Fail now rather than at the first change if SQLite opened the file read-only (it
        does so silently when the file is write-protected), writing nothing: a statement
        that changes no row still needs a writable file."""
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            await self._conn.execute("UPDATE device SET singleton = singleton WHERE 0")
        finally:
            await self._conn.execute("ROLLBACK")

    async def _one(self, sql: str, args: tuple[object, ...] = ()) -> Row:
        """The one row a statement of the opening returns."""
        row = await (await self._conn.execute(sql, args)).fetchone()
        if row is None:
            raise StoreError(f"store {self.path} is not a usable pager store: {sql} found nothing")
        return tuple(row)

    async def _migrate(self) -> None:
        # A new store's page size; SQLite fixes it when the first page is written.
        await self._conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA wal_autocheckpoint=0")  # see WAL_CHECKPOINT_PAGES
        # A log that grew past its bound (another process's reader kept it, or the commits
        # wrote more pages than guessed) is cut back to it when SQLite starts it again.
        (page,) = await self._one("PRAGMA page_size")
        await self._conn.execute(f"PRAGMA journal_size_limit={WAL_CHECKPOINT_PAGES * page}")
        (version,) = await self._one("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this emulator's "
                f"{SCHEMA_VERSION}; refusing to touch it"
            )
        self.created = version == 0
        for v in range(version, SCHEMA_VERSION):
            await self._conn.executescript(
                f"BEGIN; {MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;"
            )
        counts = await self._one("SELECT history_count, transmission_count, resets FROM device")
        self._counts["history"], self._counts["transmission"], self.resets = counts
        await self._slot_receipts()

    async def _slot_receipts(self) -> None:
        """Put the newest `receipt_limit` receipts in their slots, if any row is not in its
        own (another limit last time, or rows from before the ring), and forget the rest."""
        limit = self.receipt_limit
        (misplaced,) = await self._one(
            "SELECT count(*) FROM receipt WHERE slot <> id % ? OR slot >= ?", (limit, limit)
        )
        if misplaced:
            await self._conn.executescript(
                f"""BEGIN;
                CREATE TEMP TABLE kept AS SELECT * FROM receipt ORDER BY id DESC LIMIT {limit};
                DELETE FROM receipt;
                INSERT OR REPLACE INTO receipt SELECT id % {limit}, id, time, host, port,
                    flowinfo, mid, datagram FROM kept ORDER BY id;
                DROP TABLE kept;
                COMMIT;"""
            )
        (newest,) = await self._one("SELECT max(id) FROM receipt")
        self._receipt_next = 1 if newest is None else newest + 1

    async def close(self) -> None:
        """Close the connections and let go of the lock; closing again does nothing."""
        if self._file_lock < 0:
            return
        try:
            if self._checkpointing is not None:
                await self._checkpointing
            if self._checkpointer is not None:
                await self._checkpointer.close()
            if self._reader is not None:
                await self._reader.close()
            await self._conn.close()
        finally:
            os.close(self._file_lock)
            self._file_lock = -1

    async def load(self) -> State:
        (device,) = await self._query(f"SELECT {_DEVICE_COLUMNS} FROM device")
        rows = await self._query(f"SELECT {_SESSION_COLUMNS} FROM session")
        sessions: dict[int, Session] = {}
        for s in map(_session, rows):
            other = sessions.setdefault(s.number, s)
            if other is not s:
                raise StoreError(
                    f"store {self.path} holds two active sessions for one number: "
                    f"number {s.number}, session ids {other.id} and {s.id}"
                )
        return State(_device(device), sessions)

    async def _write(self, work: Callable[[sqlite3.Connection, dict[str, int]], None]) -> None:
        """Run `work(db, counts)` as one transaction; returns once it is committed.

        It runs on the loop thread (see `_Aiosqlite`): in WAL mode with synchronous=NORMAL a
        commit writes to the log and does not wait for the disk, and nothing else may block
        it: checkpoints are not run by commits (`_checkpoint`), and a commit that would wait
        for another process's lock waits in aiosqlite's thread instead. `counts` are the
        capped tables' row counts, kept only if the transaction commits.
        """
        async with self._lock:
            # Copied under the lock: a transaction queued behind another must count on top
            # of what that one left.
            counts = dict(self._counts)
            try:
                try:
                    _transaction(self._aio.sqlite(), work, counts)
                except sqlite3.OperationalError as e:
                    if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                    counts = dict(self._counts)
                    await self._aio.in_thread(lambda db: _waiting(db, work, counts))
            except sqlite3.Error as e:
                raise StoreUnavailable(f"the store could not be written: {e}") from e
            self._counts = counts
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._checkpoint_every and self._checkpointing is None:
            self._checkpointing = asyncio.create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, off the event loop, in two steps.

        The bulk of it is copied on a connection of the checkpoint's own while commits go on.
        Then, holding the lock (no commit) and with no read of history under way, what those
        commits added: a log no commit writes to meanwhile is copied whole, so that SQLite
        starts it again from its beginning. Commits wait only for that second, short copy.
        """
        try:
            before = 0  # the log's frames as the first step found it
            try:
                if self._checkpointer is not None:
                    sql = "PRAGMA wal_checkpoint(PASSIVE)"
                    async with self._checkpointer.execute(sql) as cursor:
                        row = await cursor.fetchone()
                    before = 0 if row is None else row[1]
            except sqlite3.Error as e:  # the second step copies it all then
                log.warning("checkpoint beside the commits failed: %s", e)
            # No read of history either: a read under way keeps the frames it may need, and
            # SQLite starts the log again only after a checkpoint that copied it whole, so
            # reads one after another would have it grow with every commit. Commits wait for
            # the read under way too: while it lasted, they would grow the log past its bound.
            async with self._lock, self._reading:
                commits, self._since_checkpoint = self._since_checkpoint, 0
                busy, pages, copied = await self._aio.in_thread(
                    lambda db: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                )
                # Only a log copied whole was started again by the commits since the last
                # checkpoint, and then its pages are theirs: when the next one is due. One
                # that another process's reader kept would count older pages too.
                # A commit between the steps may have started the log again after the first
                # copied it whole: the commits counted wrote its frames and these.
                written = pages + before if pages < before else pages
                if not busy and 0 < pages == copied:
                    self._checkpoint_every = max(1, commits * WAL_CHECKPOINT_PAGES // written)
        except (sqlite3.Error, ValueError) as e:  # a disk error, or the store closing
            log.warning("checkpoint of the store's write-ahead log failed: %s", e)
        finally:
            self._checkpointing = None

    async def _query(self, sql: str, args: Iterable[object] = ()) -> list[Row]:
        async with self._lock:
            try:
                cur = await self._conn.execute(sql, tuple(args))
                return [tuple(row) for row in await cur.fetchall()]
            except sqlite3.Error as e:
                raise StoreUnavailable(f"the store could not be read: {e}") from e

    async def commit(self, changes: Sequence[Change], receipts: Sequence[Receipt] = ()) -> None:
        """Write a batch of changes and their receipts, in one transaction; returns once
        committed.

        Only each session's final fate in the batch is written (a session created and
        cleared in the same batch goes straight to history), and the device row once.
        """
        archived: dict[int, Archived] = {}
        saved: dict[int, Session] = {}
        transmissions: list[Transmission] = []
        for change in changes:
            for s in change.saved:
                saved[s.id] = s
            for a in change.archived:
                archived[a.session.id] = a
                saved.pop(a.session.id, None)
            transmissions.extend(change.transmissions)
        archived_rows = [_archived_row(a) for a in archived.values()]
        saved_rows = [_session_row(s) for s in saved.values()]
        transmission_rows = [_transmission_row(t) for t in transmissions]
        device_row = _device_row(changes[-1].device)
        keep, kept = self._keeping(receipts)

        def work(db: sqlite3.Connection, counts: dict[str, int]) -> None:
            keep(db)
            if archived_rows:
                db.executemany("DELETE FROM session WHERE id = ?", [(r[0],) for r in archived_rows])
                self._append(db, counts, "history", archived_rows)
            if saved_rows:
                db.executemany(
                    f"INSERT OR REPLACE INTO session ({_SESSION_COLUMNS}) VALUES "
                    f"({','.join('?' * 9)})",
                    saved_rows,
                )
            if transmission_rows:
                self._append(db, counts, "transmission", transmission_rows)
            db.execute(
                f"UPDATE device SET ({_DEVICE_COLUMNS}, history_count, transmission_count)"
                f" = ({','.join('?' * 15)})",
                (*device_row, counts["history"], counts["transmission"]),
            )

        await self._write(work)
        kept()

    def _keeping(
        self, receipts: Sequence[Receipt]
    ) -> tuple[Callable[[sqlite3.Connection], None], Callable[[], None]]:
        """(keep, kept): `keep(db)` writes the receipts into their slots within a
        transaction; `kept()` records that it committed. One committer calls at a time."""
        first, limit = self._receipt_next, self.receipt_limit
        rows = [((first + i) % limit, first + i, *r) for i, r in enumerate(receipts)]

        def keep(db: sqlite3.Connection) -> None:
            if len(rows) == 1:
                db.execute(_RECEIPT_UPSERT, rows[0])
            elif rows:
                db.executemany(_RECEIPT_UPSERT, rows)

        def kept() -> None:
            self._receipt_next = first + len(rows)

        return keep, kept

    async def receipts(self) -> list[Receipt]:
        """The receipts still within the window, oldest first (loaded at start)."""
        rows = await self._query(
            "SELECT time, host, port, flowinfo, mid, datagram FROM receipt "
            "WHERE time >= ? ORDER BY id",
            (time.time() - self.receipt_window,),
        )
        return [Receipt(*r) for r in rows]

    def _append(
        self, db: sqlite3.Connection, counts: dict[str, int], table: str, rows: list[Row]
    ) -> None:
        """Insert rows into a capped table, dropping its oldest rows beyond the limit.

        The row counts live in memory (loaded at open) and are written with the device row,
        so that capping costs no query unless rows must go.
        """
        db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
        counts[table] += len(rows)
        excess = counts[table] - self.history_limit
        if excess > 0:
            db.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?)",
                (excess,),
            )
            counts[table] = self.history_limit

    # ---- history: read through a connection of its own ----------------------------------
    # A whole history is up to `history_limit` rows. Read through the writer's connection it
    # would hold the lock, and the connection's thread, for as long as it takes, and every
    # write would wait behind it; WAL lets readers run beside the writer, each on the last
    # committed state, so history is read through a read-only connection of its own, and its
    # rows are parsed in that connection's thread, not on the event loop.

    async def history(self, after: int | None = None, limit: int | None = None) -> History:
        """Archived sessions, with the globalSessionSequence of the same committed state: read
        apart, a commit between the two reads would give rows the sequence does not count."""
        args = (-1 if after is None else after, -1 if limit is None else limit)

        def read(db: sqlite3.Connection) -> tuple[int, list[Row]]:
            db.execute("BEGIN")  # one snapshot for both statements
            try:
                (sequence,) = db.execute("SELECT global_sequence FROM device").fetchone()
                rows = db.execute(
                    f"SELECT {_SESSION_COLUMNS}, cleared, clear_type FROM history "
                    "WHERE id > ? ORDER BY id LIMIT ?",
                    args,
                ).fetchall()
            finally:
                db.execute("COMMIT")
            return sequence, rows

        sequence, rows = await self._read(read)
        reader = self._reader  # opened by the read
        assert reader is not None
        # parsed after the read, in the reader's thread: a checkpoint waits for the read only
        sessions = await _Aiosqlite(reader).in_thread(lambda _: [_archived(r) for r in rows])
        return History(sequence, sessions)

    async def history_version(self) -> int:
        """A number that changes whenever anything was committed to the store since it was
        last asked for (SQLite's data_version): two reads of history between two equal
        versions read the same rows."""
        version: int = await self._read(lambda db: db.execute("PRAGMA data_version").fetchone()[0])
        return version

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            async with self._reading:
                if self._reader is None:
                    self._reader = await aiosqlite.connect(
                        f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
                    )
                return await _Aiosqlite(self._reader).in_thread(work)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"the store could not be read: {e}") from e

    async def delete_history(self, receipts: Sequence[Receipt] = ()) -> None:
        keep, kept = self._keeping(receipts)

        def work(db: sqlite3.Connection, counts: dict[str, int]) -> None:
            keep(db)
            db.execute("DELETE FROM history")
            db.execute("UPDATE device SET history_count = 0")
            counts["history"] = 0

        await self._write(work)
        kept()

    async def transmissions(
        self, number: int | None = None, after_id: int | None = None
    ) -> list[Transmission]:
        where, args = ["id > ?"], [-1 if after_id is None else after_id]
        if number is not None:
            where.append("number = ?")
            args.append(number)
        rows = await self._query(
            f"SELECT * FROM transmission WHERE {' AND '.join(where)} ORDER BY id", args
        )
        return [_transmission(r) for r in rows]

    async def latest_transmissions(self) -> dict[int, Transmission]:
        """Each pager's latest transmission, by number."""
        rows = await self._query(
            "SELECT * FROM transmission WHERE id IN "
            "(SELECT max(id) FROM transmission GROUP BY number)"
        )
        return {t.number: t for t in map(_transmission, rows)}

    async def reset(self) -> None:
        """Back to a new store: no sessions, history or transmissions, default settings.

        `resets` counts them: the sequence numbers start again, so whatever they identify
        (the session list's ETag) must also name the reset."""

        def work(db: sqlite3.Connection, counts: dict[str, int]) -> None:
            db.execute("UPDATE device SET resets = resets + 1")
            for table in ("session", "history", "transmission"):
                db.execute(f"DELETE FROM {table}")
            db.execute(
                f"UPDATE device SET ({_DEVICE_COLUMNS}, history_count, "
                f"transmission_count) = ({','.join('?' * 15)})",
                (*_device_row(Device()), 0, 0),
            )
            counts.update(history=0, transmission=0)

        await self._write(work)
        self.resets += 1

    async def bulk_archive(self, archived: Sequence[Archived], device: Device) -> None:
        """Write archived sessions straight into history, and `device`, in one transaction;
        see `Engine.archive_in_bulk`, the one caller."""
        rows = [_archived_row(a) for a in archived]
        device_row = _device_row(device)

        def work(db: sqlite3.Connection, counts: dict[str, int]) -> None:
            self._append(db, counts, "history", rows)
            db.execute(
                f"UPDATE device SET ({_DEVICE_COLUMNS}, history_count) = ({','.join('?' * 14)})",
                (*device_row, counts["history"]),
            )

        await self._write(work)
