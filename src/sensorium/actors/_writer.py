"""The writer actor: batches readings by size and age, writes each batch in one
transaction on the primary, then settles the receipts.

Group commit: while one batch is being written, the next one fills up in the bounded
queue, so under load batches grow by themselves and an idle engine still commits
within ``batch_age_s``. A full queue blocks the device actors, which blocks the
sources: backpressure reaches the broker's socket and the HTTP edge (429).

Two batches may be written at once, each in its own transaction on its own connection
(the server's COPY of one batch is single-threaded; two keep both cores busy), but
their receipts settle strictly in order: a batch's receipts settle only once it and
every batch before it committed. Two batches never hold the same reading (the device
actors de-duplicate), and a batch only appends rows, so neither waits for the other's
locks.

A failed write is retried with backoff until it lands; when the connection dropped
during COMMIT, the batch id (written in the same transaction) says whether it landed,
so a retry never doubles a batch.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from sensorium.actors._receipt import Receipt
from sensorium.engine import BoundedQueue, Distribution
from sensorium.logs import get_logger
from sensorium.storage import DeadLetterRow, Pool, ReadingBatch, batch_committed, write_batch

__all__ = ["WriteRequest", "Writer", "WriterStatistics"]

log = get_logger(__name__)

_EPOCH_DAY = dt.date(1970, 1, 1)

_END = object()  # the queue is closed and drained
_YIELD_EVERY = 128  # requests taken between two checkpoints while building a batch
# A commit runs 20-300 ms here; one running longer is stuck behind the primary, and
# the next batch stops growing (see Writer._may_grow).
_GROW_WHILE_COMMIT_S = 1.0
_COMMITS_AT_ONCE = 2

# (device_key, metric_id, ts_us, value, seq)
Row = tuple[int, int, int, float, int | None]


@dataclass(slots=True)
class WriteRequest:
    rows: Sequence[Row] = ()
    receipts: Sequence[Receipt] = ()
    dead_letter: DeadLetterRow | None = None


BATCH_ROWS_BOUNDS = (10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000)
COMMIT_S_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    queued: int
    capacity: int
    batches: int
    readings: int
    dead_letters: int
    retries: int
    last_batch_rows: int
    last_commit_s: float
    oldest_unwritten_age_s: float
    batch_rows: Distribution  # readings per committed batch
    commit_s: Distribution  # seconds from a batch's first write attempt to its commit


@dataclass(slots=True)
class _Counters:
    batches: int = 0
    readings: int = 0
    dead_letters: int = 0
    retries: int = 0
    last_batch_rows: int = 0
    last_commit_s: float = 0.0
    batch_started: float | None = None  # the batch being built
    batch_rows: Distribution = field(default_factory=lambda: Distribution(BATCH_ROWS_BOUNDS))
    commit_s: Distribution = field(default_factory=lambda: Distribution(COMMIT_S_BOUNDS))


class Writer:
    def __init__(
        self,
        pool: Pool,
        *,
        batch_rows: int,
        batch_age_s: float,
        queue_size: int,
        batch_rows_max: int | None = None,
        timeout_s: float = 30.0,
        retry_cap_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._batch_rows = batch_rows
        self._batch_rows_max = max(batch_rows, batch_rows_max or 5 * batch_rows)
        self._batch_age_s = batch_age_s
        self._timeout_s = timeout_s
        self._retry_cap_s = retry_cap_s
        self._queue = BoundedQueue[WriteRequest](queue_size)
        self._known_days: set[int] = set()
        self._counters = _Counters()
        # batch id -> (trio time its commit began, when the batch began filling)
        self._commits: dict[int, tuple[float, float]] = {}

    # -- the actors' side ---------------------------------------------------------------

    async def submit(self, request: WriteRequest) -> None:
        """Queue a request; waits while the queue is full (backpressure)."""
        queue = self._queue
        try:
            queue.put_nowait(request)
        except trio.WouldBlock:
            await queue.put(request)

    def submit_nowait(self, request: WriteRequest) -> None:
        """Raises `trio.WouldBlock` when the queue is full."""
        self._queue.put_nowait(request)

    @property
    def saturated(self) -> bool:
        """The queue is full: whoever cannot wait should back off."""
        return len(self._queue) >= self._queue.capacity

    def close(self) -> None:
        """No more requests: the writer flushes what is queued and returns."""
        self._queue.close()

    # -- the writer's task --------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Build batches while the previous one commits: Python encodes the next batch
        on one core while PostgreSQL takes the COPY on the other. Commits stay one at a
        time and in order."""
        send, receive = trio.open_memory_channel[tuple[ReadingBatch, list[Receipt]]](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._commit_in_order, receive)
            ahead = trio.CancelScope()

            async def create_partitions_ahead() -> None:
                with ahead:
                    await self._create_partitions_ahead()

            nursery.start_soon(create_partitions_ahead)
            task_status.started()
            try:
                async with send:
                    while (built := await self._build()) is not None:
                        batch, receipts, ended = built
                        # Encoded here, while earlier batches commit, and in a worker
                        # thread: 40-100 ms of numpy would otherwise hold up this
                        # thread's event loop, and with it the committing connections'
                        # next statements (the server sat idle waiting for them).
                        await trio.to_thread.run_sync(batch.seal)
                        await send.send((batch, receipts))
                        self._counters.batch_started = None
                        if ended:
                            break
            finally:
                ahead.cancel()  # the committer finishes what it holds; this need not

    async def _create_partitions_ahead(self, *, days_ahead: int = 2) -> None:
        """Yesterday's, today's and the next days' partitions exist before a reading
        needs them (a batch still creates any other day it touches); checked hourly."""
        while True:
            today = int(time.time() // 86_400)
            wanted = set(range(today - 1, today + days_ahead + 1))
            try:
                await self._pool.execute(
                    "SELECT ensure_readings_partitions(d, d) FROM unnest($1::date[]) d",
                    [_EPOCH_DAY + dt.timedelta(days=day) for day in sorted(wanted)],
                )
                self._known_days |= wanted
            except Exception as exc:  # the primary away: the next batch creates its day
                log.warning("could not create partitions ahead", error=str(exc))
            await trio.sleep(3600)

    async def _build(self) -> tuple[ReadingBatch, list[Receipt], bool] | None:
        """The next batch: full, or old enough, once a commit slot is free (while both
        are busy, the batch keeps growing, up to batch_rows_max). None when the queue is
        closed and drained."""
        first = await self._next(deadline=None)
        if first is _END:
            return None
        assert isinstance(first, WriteRequest)
        batch = ReadingBatch(batch_id=secrets.randbits(63), started=trio.current_time())
        receipts: list[Receipt] = []
        self._counters.batch_started = batch.started
        self._add(batch, receipts, first)
        deadline = trio.current_time() + self._batch_age_s
        while True:
            full = batch.count >= self._batch_rows
            if full and not self._may_grow(batch.count):
                break
            taken = self._take_queued(
                batch, receipts, limit=self._batch_rows_max if full else self._batch_rows
            )
            if taken is None:
                return batch, receipts, True
            if taken == _YIELD_EVERY:
                # Taking queued requests never blocks while they keep coming: let the
                # rest of the process run now and then (the committer's replies from
                # PostgreSQL, the MQTT reader, HTTP), not once per 20,000 rows.
                await trio.lowlevel.checkpoint()
                continue
            if taken:
                continue  # the batch reached its limit: is it full, may it grow?
            request = await self._next(deadline=deadline)
            if request is None:
                if len(self._commits) < _COMMITS_AT_ONCE:
                    break  # old enough, and a commit slot can take it now
                deadline = trio.current_time() + 0.002
                continue
            if request is _END:
                return batch, receipts, True
            assert isinstance(request, WriteRequest)
            self._add(batch, receipts, request)
        return batch, receipts, False

    def _take_queued(
        self, batch: ReadingBatch, receipts: list[Receipt], *, limit: int
    ) -> int | None:
        """Add queued requests to ``batch`` without waiting, until it holds ``limit``
        rows, the queue is empty or `_YIELD_EVERY` were taken. How many were taken;
        None when the queue is closed and drained. The per-request path of the whole
        engine: every reading passes here, so it does no more than it must (`_add`
        inlined, the batch's rows and count in locals: 0.3 us a request against 0.5 us
        through a memory channel and `_add`, measured on 100,000)."""
        take = self._queue.get_nowait
        extend = batch.rows.extend
        count = batch.count
        taken = 0
        try:
            while taken < _YIELD_EVERY and count < limit:
                request = take()
                taken += 1
                if rows := request.rows:
                    extend(rows)
                    count += len(rows)
                if request.receipts:
                    receipts.extend(request.receipts)
                if request.dead_letter is not None:
                    batch.dead_letters.append(request.dead_letter)
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            return None
        finally:
            batch.count = count
        return taken

    def _may_grow(self, rows: int) -> bool:
        """May a full batch keep growing? While every commit slot is busy it could only
        wait: it grows instead (up to batch_rows_max), so a backlog drains in fewer,
        larger commits, each still acknowledged only once it commits. Not when the
        oldest commit is stuck (the primary slow or away): then the queue must fill so
        that backpressure reaches the sources (HTTP answers 429 at once)."""
        commits = self._commits
        return (
            len(commits) >= _COMMITS_AT_ONCE
            and rows < self._batch_rows_max
            and trio.current_time() - min(began for began, _ in commits.values())
            < _GROW_WHILE_COMMIT_S
        )

    async def _commit_in_order(
        self, receive: trio.MemoryReceiveChannel[tuple[ReadingBatch, list[Receipt]]]
    ) -> None:
        """Take batches as commit slots free up; write up to two at once; settle their
        receipts in the order the batches were made."""
        slots = trio.Semaphore(_COMMITS_AT_ONCE)
        before = trio.Event()
        before.set()  # nothing before the first batch
        async with receive, trio.open_nursery() as nursery:
            while True:
                await slots.acquire()
                try:
                    batch, receipts = await receive.receive()
                except trio.EndOfChannel:
                    break
                settled = trio.Event()
                self._commits[batch.batch_id] = (trio.current_time(), batch.started)
                nursery.start_soon(
                    self._commit_then_settle, batch, receipts, before, settled, slots
                )
                before = settled

    async def _commit_then_settle(
        self,
        batch: ReadingBatch,
        receipts: list[Receipt],
        before: trio.Event,
        settled: trio.Event,
        slots: trio.Semaphore,
    ) -> None:
        try:
            await self._commit(batch)
        finally:
            del self._commits[batch.batch_id]
            slots.release()
        await before.wait()  # the batches made earlier have settled
        for receipt in receipts:
            receipt.settle()
        settled.set()

    async def _next(self, *, deadline: float | None) -> WriteRequest | object | None:
        """The next request; None once ``deadline`` passes; `_END` when closed and drained."""
        try:
            return self._queue.get_nowait()
        except trio.EndOfChannel:
            return _END
        except trio.WouldBlock:
            pass
        with trio.move_on_at(deadline if deadline is not None else float("inf")):
            try:
                return await self._queue.get()
            except trio.EndOfChannel:
                return _END
        return None

    @staticmethod
    def _add(batch: ReadingBatch, receipts: list[Receipt], request: WriteRequest) -> None:
        if request.rows:
            batch.add_rows(request.rows)
        if request.dead_letter is not None:
            batch.dead_letters.append(request.dead_letter)
        if request.receipts:
            receipts.extend(request.receipts)

    async def _commit(self, batch: ReadingBatch) -> None:
        started = trio.current_time()
        attempt = 0
        while True:
            try:
                async with self._pool.acquire(timeout=self._timeout_s) as conn:
                    if attempt and await conn.run(
                        batch_committed, batch.batch_id, timeout=self._timeout_s
                    ):
                        break  # the earlier attempt's COMMIT did land
                    new_days = batch.days - self._known_days
                    if new_days:
                        # Day by day: one late reading from years ago must not create
                        # every partition in between.
                        await conn.execute(
                            "SELECT ensure_readings_partitions(d, d) FROM unnest($1::date[]) d",
                            [_EPOCH_DAY + dt.timedelta(days=day) for day in sorted(new_days)],
                        )
                    await conn.run(write_batch, batch, timeout=self._timeout_s)
                    self._known_days |= new_days
                break
            except trio.Cancelled:
                raise
            except Exception as exc:
                attempt += 1
                self._counters.retries += 1
                delay = min(0.05 * 2**attempt, self._retry_cap_s)
                log.warning(
                    "batch write failed; retrying",
                    attempt=attempt,
                    delay_s=delay,
                    rows=batch.count,
                    error=f"{type(exc).__name__}: {exc}",
                )
                await trio.sleep(delay)
        counters = self._counters
        counters.batches += 1
        counters.readings += batch.count
        counters.dead_letters += len(batch.dead_letters)
        counters.last_batch_rows = batch.count
        counters.last_commit_s = trio.current_time() - started
        counters.batch_rows.observe(batch.count)
        counters.commit_s.observe(counters.last_commit_s)

    def statistics(self) -> WriterStatistics:
        c = self._counters
        return WriterStatistics(
            queued=len(self._queue),
            capacity=self._queue.capacity,
            batches=c.batches,
            readings=c.readings,
            dead_letters=c.dead_letters,
            retries=c.retries,
            last_batch_rows=c.last_batch_rows,
            last_commit_s=c.last_commit_s,
            oldest_unwritten_age_s=max(
                (
                    trio.current_time() - t
                    for t in [c.batch_started, *(made for _, made in self._commits.values())]
                    if t
                ),
                default=0.0,
            ),
            batch_rows=c.batch_rows,
            commit_s=c.commit_s,
        )
