"""The outbox: AuditEvents appended to a hash chain in SQL, in the caller's transaction."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._balp import PendingEvent
from ._chain import GENESIS_HASH, ChainedEvent, canonical_json, chain_hash, envelope_json
from ._schema import chain_table, outbox_metadata, outbox_table

__all__ = ["Outbox", "OutboxRow"]


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted integers as inclusive ranges of consecutive values."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One unpublished outbox row, ready to send.

    Attributes:
        chain_id: The chain.
        seq: Position in the chain.
        event_id: The AuditEvent id.
        patient_key: The Kafka key (patient id), or None.
        envelope: The Kafka message value (see :meth:`ChainedEvent.to_json`).
        created_at: When the row was appended.
    """

    chain_id: str
    seq: int
    event_id: str
    patient_key: str | None
    envelope: str
    created_at: datetime.datetime


class Outbox:
    """AuditEvents waiting for (and kept for a while after) publication, as one hash chain.

    Appends lock the chain's head row, so concurrent appends to a chain (the background writer
    and synchronous writes, or several processes) are serialised and the sequence stays
    gapless: a transaction that rolls back releases its sequence numbers with it. Keep the
    caller's transactions at READ COMMITTED (the default of both databases) and short, since
    the head row stays locked until they commit.

    Args:
        engine: The database holding the outbox tables.
        chain_id: The chain this outbox appends to.
    """

    def __init__(self, engine: Engine, *, chain_id: str) -> None:
        self.engine = engine
        self.chain_id = chain_id

    def create(self) -> None:
        """Create the tables if missing and the chain's head row."""
        outbox_metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(chain_table.c.chain_id).where(chain_table.c.chain_id == self.chain_id)
            ).first()
            if exists is None:
                conn.execute(
                    chain_table.insert().values(
                        chain_id=self.chain_id, seq=0, hash=GENESIS_HASH, updated_at=_now()
                    )
                )

    def append(self, conn: Connection, events: Sequence[PendingEvent]) -> list[ChainedEvent]:
        """Append events to the chain inside the caller's transaction.

        Nothing is committed here: the events become durable when the caller's transaction
        commits, and disappear with it when it rolls back.

        Args:
            conn: A connection with an open transaction on the outbox database.
            events: Built events, in order.

        Returns:
            The chained events.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The insert failed; the caller's transaction must
                roll back (it does when the exception leaves ``engine.begin()``).
        """
        if not events:
            return []
        head = chain_table.c
        # Writing the head row first takes its lock (a row lock on PostgreSQL, the database
        # write lock on SQLite) before the head is read, so no concurrent append reads the
        # same head.
        touched = conn.execute(
            chain_table.update().where(head.chain_id == self.chain_id).values(seq=head.seq)
        )
        if touched.rowcount == 0:
            conn.execute(
                chain_table.insert().values(
                    chain_id=self.chain_id, seq=0, hash=GENESIS_HASH, updated_at=_now()
                )
            )
            seq, prev = 0, GENESIS_HASH
        else:
            row = conn.execute(
                sa.select(head.seq, head.hash).where(head.chain_id == self.chain_id)
            ).one()
            seq, prev = int(row.seq), str(row.hash)
        created = _now()
        rows = []
        chained = []
        for pending in events:
            seq += 1
            event_json = canonical_json(pending.event)
            digest = chain_hash(
                chain_id=self.chain_id,
                seq=seq,
                prev_hash=prev,
                patient_key=pending.patient_key,
                event_json=event_json,
            )
            rows.append(
                {
                    "chain_id": self.chain_id,
                    "seq": seq,
                    "event_id": pending.event_id,
                    "prev_hash": prev,
                    "hash": digest,
                    "patient_key": pending.patient_key,
                    "payload": event_json,
                    "created_at": created,
                    "published_at": None,
                }
            )
            chained.append(
                ChainedEvent(
                    event_id=pending.event_id,
                    chain_id=self.chain_id,
                    seq=seq,
                    prev_hash=prev,
                    hash=digest,
                    patient_key=pending.patient_key,
                    event=pending.event,
                )
            )
            prev = digest
        conn.execute(outbox_table.insert(), rows)
        conn.execute(
            chain_table.update()
            .where(head.chain_id == self.chain_id)
            .values(seq=seq, hash=prev, updated_at=created)
        )
        return chained

    def head(self) -> tuple[int, str]:
        """The chain's last sequence number and hash (0 and ``GENESIS_HASH`` when empty)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(chain_table.c.seq, chain_table.c.hash).where(
                    chain_table.c.chain_id == self.chain_id
                )
            ).first()
        return (0, GENESIS_HASH) if row is None else (int(row.seq), str(row.hash))

    def fetch_unpublished(self, limit: int) -> list[OutboxRow]:
        """The oldest unpublished rows of every chain, in chain order."""
        c = outbox_table.c
        query = (
            sa.select(
                c.chain_id,
                c.seq,
                c.event_id,
                c.prev_hash,
                c.hash,
                c.patient_key,
                c.payload,
                c.created_at,
            )
            .where(c.published_at.is_(None))
            .order_by(c.chain_id, c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            result = conn.execute(query).all()
        return [
            OutboxRow(
                chain_id=r.chain_id,
                seq=int(r.seq),
                event_id=r.event_id,
                patient_key=r.patient_key,
                envelope=envelope_json(
                    event_id=r.event_id,
                    chain_id=r.chain_id,
                    seq=int(r.seq),
                    prev_hash=r.prev_hash,
                    hash=r.hash,
                    patient_key=r.patient_key,
                    event_json=r.payload,
                ),
                created_at=r.created_at,
            )
            for r in result
        ]

    def mark_published(self, rows: Iterable[OutboxRow], at: datetime.datetime | None = None) -> int:
        """Record that the broker acknowledged these rows."""
        by_chain: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            by_chain[row.chain_id].append(row.seq)
        when = at or _now()
        c = outbox_table.c
        marked = 0
        with self.engine.begin() as conn:
            for chain_id, seqs in by_chain.items():
                # Consecutive sequence numbers become one range: a batch is normally a single
                # run, and a range is far cheaper for the database than a long IN list.
                for low, high in _runs(sorted(seqs)):
                    result = conn.execute(
                        outbox_table.update()
                        .where(c.chain_id == chain_id, c.seq >= low, c.seq <= high)
                        .values(published_at=when)
                    )
                    marked += result.rowcount
        return marked

    def mark_unpublished(
        self, since: datetime.datetime, until: datetime.datetime | None = None
    ) -> int:
        """Queue retained rows created in ``[since, until)`` for publishing again.

        Returns:
            How many rows were queued again.
        """
        c = outbox_table.c
        condition = sa.and_(c.created_at >= since, c.published_at.is_not(None))
        if until is not None:
            condition = sa.and_(condition, c.created_at < until)
        with self.engine.begin() as conn:
            result = conn.execute(outbox_table.update().where(condition).values(published_at=None))
        return result.rowcount

    def purge(self, published_before: datetime.datetime) -> int:
        """Delete rows published before ``published_before``; unpublished rows always stay."""
        c = outbox_table.c
        with self.engine.begin() as conn:
            result = conn.execute(outbox_table.delete().where(c.published_at < published_before))
        return result.rowcount

    def backlog(self) -> int:
        """How many rows wait for the broker."""
        c = outbox_table.c
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(outbox_table).where(c.published_at.is_(None))
            ).scalar_one()
        return int(count)

    def oldest_unpublished(self) -> datetime.datetime | None:
        """When the oldest row still waiting for the broker was appended."""
        c = outbox_table.c
        with self.engine.connect() as conn:
            value: datetime.datetime | None = conn.execute(
                sa.select(sa.func.min(c.created_at)).where(c.published_at.is_(None))
            ).scalar_one_or_none()
        return value

    def oldest_retained(self) -> datetime.datetime | None:
        """When the oldest row still in the outbox was appended."""
        c = outbox_table.c
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(c.created_at).order_by(c.created_at).limit(1)
            ).scalar_one_or_none()
        return value

    def events(
        self,
        *,
        since: datetime.datetime | None = None,
        chain_id: str | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ChainedEvent]:
        """Retained events in chain order, for export or verification."""
        c = outbox_table.c
        conditions = []
        if since is not None:
            conditions.append(c.created_at >= since)
        if chain_id is not None:
            conditions.append(c.chain_id == chain_id)
        last: tuple[str, int] = ("", 0)
        while True:
            query = (
                sa.select(
                    c.chain_id, c.seq, c.event_id, c.prev_hash, c.hash, c.patient_key, c.payload
                )
                .where(*conditions, sa.tuple_(c.chain_id, c.seq) > sa.tuple_(*last))
                .order_by(c.chain_id, c.seq)
                .limit(batch_size)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for r in rows:
                yield ChainedEvent.from_json(
                    envelope_json(
                        event_id=r.event_id,
                        chain_id=r.chain_id,
                        seq=int(r.seq),
                        prev_hash=r.prev_hash,
                        hash=r.hash,
                        patient_key=r.patient_key,
                        event_json=r.payload,
                    )
                )
            last = (rows[-1].chain_id, int(rows[-1].seq))
