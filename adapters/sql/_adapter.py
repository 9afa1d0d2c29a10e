"""``SqlAdapter``: a legacy SQL database served as FHIR R4 resources via a YAML mapping."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
import sqlalchemy.exc
import sqlalchemy.pool
from fhir.resources.R4B.resource import Resource

import his_sdk.adapter
import his_sdk.errors
import his_sdk.search

from ._cache import ResourceCache
from ._clauses import Clause
from ._conditions import coerce, condition_columns, evaluate
from ._config import MappingError, MappingFile, load_mapping, load_settings
from ._errors import translate_driver_errors
from ._paging import Position, decode_position, encode_position
from ._source import BoundCareTeamLink, BoundSource, mapping_error
from ._template import RenderContext, as_text, zone_named
from ._write import BoundCreate, key_table

__all__ = ["SqlAdapter"]

_ID_PARAM = his_sdk.search.SearchParamDef(
    "_id", his_sdk.search.ParamType.TOKEN, "Logical id of the resource."
)


@dataclass(frozen=True)
class _Bound:
    """The mapping bound to the reflected database; built once per connection to it."""

    types: Mapping[str, list[BoundSource]]
    care_team: list[BoundCareTeamLink]
    aliases_for: Mapping[str, list[str]]
    dialect: str
    creates: Mapping[str, BoundCreate]
    key_tables: sa.MetaData


def _capabilities(mapping: MappingFile) -> his_sdk.adapter.AdapterCapabilities:
    types = {}
    reads = frozenset({his_sdk.adapter.Interaction.READ, his_sdk.adapter.Interaction.SEARCH})
    for name, spec in mapping.resources.items():
        interactions = reads
        if spec.write is not None and spec.write.create is not None:
            interactions = reads | {his_sdk.adapter.Interaction.CREATE}
        params = {"_id": _ID_PARAM}
        for pname, pspec in spec.params.items():
            params[pname] = his_sdk.search.SearchParamDef(
                pname, pspec.type, pspec.description, pspec.target
            )
        types[name] = his_sdk.adapter.TypeCapability(
            resource_type=name,
            interactions=interactions,
            search_params=params,
            documentation=spec.documentation,
        )
    return his_sdk.adapter.AdapterCapabilities(types=types)


def _engine(url: str, pool_size: int | None, echo: bool) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise MappingError("sql adapter settings: url: not a SQLAlchemy database URL") from None
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # One shared connection: an in-memory database exists once per connection.
        kwargs["poolclass"] = sqlalchemy.pool.StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    elif pool_size is not None:
        kwargs["pool_size"] = pool_size
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return sa.create_engine(parsed, **kwargs)
    except (sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
        raise MappingError(
            f"sql adapter settings: url: no installed driver for '{parsed.drivername}'"
        ) from exc


class SqlAdapter:
    """Serves a legacy SQL database as FHIR R4 resources, described by a mapping file.

    The mapping (``adapters/sql/MAPPING.md``) names, per resource type, the tables that hold
    it, how a row becomes a resource and how each search parameter becomes SQL. Reads and
    searches run on a synchronous SQLAlchemy engine in worker threads, so the event loop never
    waits on the database. Approved creates of the types whose mapping has a ``write.create``
    section are inserted as rows, once per idempotency key (``MAPPING.md``, "Writes").

    Args:
        url: SQLAlchemy URL of the legacy database.
        mapping: A shipped mapping name (``openemr``) or the path of a mapping YAML file.
        pool_size: Connections kept open (the driver's default when None).
        echo: Log every SQL statement (never with real patient data).

    Raises:
        MappingError: The mapping is invalid, the URL malformed or its driver missing.
    """

    def __init__(
        self,
        url: str,
        *,
        mapping: str | Path = "openemr",
        pool_size: int | None = None,
        echo: bool = False,
        resource_cache_size: int = 4096,
    ) -> None:
        self._mapping = load_mapping(mapping)
        self.cache = ResourceCache(resource_cache_size)
        self._engine = _engine(url, pool_size, echo)
        self._capabilities = _capabilities(self._mapping)
        self._render = RenderContext(
            value_maps=self._mapping.value_maps,
            code_systems=self._mapping.code_systems,
            zone=zone_named(self._mapping.timezone),
        )
        self._lock = threading.Lock()
        self._state: _Bound | None = None
        self._keys_ready = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from the config entry's settings (``url``, ``mapping``, ``pool_size``, ...).

        Raises:
            MappingError: A setting or the mapping is invalid.
        """
        parsed = load_settings(settings)
        return cls(
            parsed.url,
            mapping=parsed.mapping,
            pool_size=parsed.pool_size,
            echo=parsed.echo,
            resource_cache_size=parsed.resource_cache_size,
        )

    def capabilities(self) -> his_sdk.adapter.AdapterCapabilities:
        """The mapped resource types, each with read, search-type and its search parameters."""
        return self._capabilities

    async def start(self) -> None:
        """Connect and check that the database has every table and column the mapping names.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: The database cannot be reached.
            his_sdk.errors.UpstreamDataError: A mapped table or column is missing.
        """
        await asyncio.to_thread(self._bound)

    async def close(self) -> None:
        """Close every pooled connection; a later call reconnects."""
        with self._lock:
            self._state = None
        await asyncio.to_thread(self._engine.dispose)

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        """One resource by logical id.

        Raises:
            his_sdk.errors.NotFoundError: No source has a row for the id.
            his_sdk.errors.GoneError: The row is soft-deleted.
            his_sdk.errors.UnsupportedError: The type is not mapped.
            his_sdk.errors.UpstreamDataError: The row cannot become a valid resource.
            his_sdk.errors.UpstreamUnavailableError: The database cannot be reached.
        """
        return await asyncio.to_thread(self._read, resource_type, resource_id)

    async def search(self, query: his_sdk.search.SearchQuery) -> his_sdk.adapter.SearchPage:
        """One page of matches, ordered by source (as declared) and then by key.

        Raises:
            his_sdk.errors.InvalidRequestError: ``query.position`` is malformed.
            his_sdk.errors.UnsupportedParameterError: A criterion a source cannot evaluate.
            his_sdk.errors.UnsupportedError: The type is not mapped.
            his_sdk.errors.UpstreamDataError: A row cannot become a valid resource.
            his_sdk.errors.UpstreamUnavailableError: The database cannot be reached.
        """
        return await asyncio.to_thread(self._search, query)

    async def patient_facts(self, patient_id: str) -> his_sdk.adapter.PatientFacts:
        """Care team and consent of one patient, from the mapping's ``patient_facts``.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: The database cannot be reached.
        """
        return await asyncio.to_thread(self._patient_facts, patient_id)

    async def execute(self, write: his_sdk.adapter.ApprovedWrite) -> his_sdk.adapter.WriteOutcome:
        """Insert an approved create as a row, once per ``write.key``.

        Executing a key again returns the first result without writing.

        Raises:
            his_sdk.errors.UnsupportedError: Not a create, or the type has no ``write.create``.
            his_sdk.errors.InvalidRequestError: The resource lacks a required value or has one
                that does not fit its column.
            his_sdk.errors.UpstreamDataError: The database refused the row, or the row does not
                read back as valid FHIR (nothing is committed then).
            his_sdk.errors.UpstreamUnavailableError: The database cannot be reached.
        """
        return await asyncio.to_thread(self._execute, write)

    async def health(self) -> his_sdk.adapter.HealthStatus:
        """SERVING when ``SELECT 1`` succeeds, NOT_SERVING with the failure's kind otherwise."""
        try:
            await asyncio.to_thread(self._ping)
        except his_sdk.errors.HisError as exc:
            detail = exc.message if not exc.diagnostics else f"{exc.message} ({exc.diagnostics})"
            return his_sdk.adapter.HealthStatus(his_sdk.adapter.HealthState.NOT_SERVING, detail)
        return his_sdk.adapter.HealthStatus(his_sdk.adapter.HealthState.SERVING)

    # Everything below runs in worker threads.

    def _ping(self) -> None:
        with translate_driver_errors("health check"), self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()

    def _bound(self) -> _Bound:
        with self._lock:
            if self._state is None:
                self._state = self._bind()
            return self._state

    def _bind(self) -> _Bound:
        mapping = self._mapping
        wanted: set[str] = set()
        for spec in mapping.resources.values():
            for source in spec.sources:
                wanted.add(source.table)
                wanted.update(join.table for join in source.joins)
        links = mapping.patient_facts.care_team if mapping.patient_facts else []
        wanted.update(link.table for link in links)
        metadata = sa.MetaData()
        with translate_driver_errors("reading the database schema"), self._engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            missing = sorted(wanted - present)
            if missing:
                raise mapping_error(f"tables missing from the database: {', '.join(missing)}")
            metadata.reflect(bind=conn, only=sorted(wanted))
        tables = {name: metadata.tables[name] for name in wanted}
        consent = mapping.patient_facts.consent_opt_out if mapping.patient_facts else None
        consent_columns = list(condition_columns(consent)) if consent is not None else []
        types: dict[str, list[BoundSource]] = {}
        for name, spec in mapping.resources.items():
            extra = consent_columns if name == "Patient" else []
            types[name] = [
                BoundSource(name, source, tables, self._render, extra, self.cache)
                for source in spec.sources
            ]
        aliases: dict[str, list[str]] = defaultdict(list)
        for alias, uri in mapping.code_systems.items():
            aliases[uri].append(alias)

        def keys_for(target: str, resource_id: str) -> list[Any]:
            return [
                key for s in types.get(target, []) if (key := s.key_of(resource_id)) is not None
            ]

        key_tables = sa.MetaData()
        creates = self._bind_creates(types, keys_for, key_tables)
        return _Bound(
            types=types,
            care_team=[BoundCareTeamLink(link, tables, i) for i, link in enumerate(links)],
            aliases_for=dict(aliases),
            dialect=self._engine.dialect.name,
            creates=creates,
            key_tables=key_tables,
        )

    def _bind_creates(
        self, types: Mapping[str, list[BoundSource]], keys_for: Any, metadata: sa.MetaData
    ) -> dict[str, BoundCreate]:
        creates: dict[str, BoundCreate] = {}
        key_tables: dict[str, sa.Table] = {}
        for name, spec in self._mapping.resources.items():
            create = spec.write.create if spec.write is not None else None
            if create is None:
                continue
            source = next(s for s in types[name] if s.name == create.source)
            keys = None
            if create.key.table is not None:
                keys = key_tables.get(create.key.table)
                if keys is None:
                    keys = key_tables[create.key.table] = key_table(metadata, create.key.table)
            creates[name] = BoundCreate(
                name,
                create,
                source,
                value_maps=self._mapping.value_maps,
                code_systems=self._mapping.code_systems,
                zone=self._render.zone,
                keys_for=keys_for,
                keys=keys,
            )
        return creates

    def _ensure_key_tables(self, state: _Bound) -> None:
        # Created at the first write, not at start: read-only deployments never need them.
        if not state.key_tables.tables or self._keys_ready:
            return
        with self._lock:
            if self._keys_ready:
                return
            action = "creating the write key table"
            with translate_driver_errors(action), self._engine.begin() as conn:
                state.key_tables.create_all(conn, checkfirst=True)
            self._keys_ready = True

    def _execute(self, write: his_sdk.adapter.ApprovedWrite) -> his_sdk.adapter.WriteOutcome:
        state = self._bound()
        create = state.creates.get(write.resource_type)
        if write.interaction is not his_sdk.adapter.Interaction.CREATE or create is None:
            raise his_sdk.errors.UnsupportedError(
                f"the SQL adapter's mapping does not write {write.interaction.value} of "
                f"{write.resource_type}"
            )
        if write.resource is None:
            raise his_sdk.errors.InvalidRequestError("the approved create has no resource")
        now = datetime.datetime.now(datetime.UTC)
        row = create.row(json.loads(write.resource.model_dump_json()), now)
        self._ensure_key_tables(state)
        action = f"writing {write.resource_type}"
        with translate_driver_errors(action):
            try:
                return self._insert_once(create, row, write.key, now)
            except sqlalchemy.exc.IntegrityError:
                # A concurrent execution of the same key committed first (or the row breaks a
                # constraint, which the second attempt reports).
                return self._insert_once(create, row, write.key, now)

    def _insert_once(
        self, create: BoundCreate, row: dict[str, Any], key: str, now: datetime.datetime
    ) -> his_sdk.adapter.WriteOutcome:
        with self._engine.begin() as conn:
            found = create.find(conn, key)
            if found is not None:
                outcome = create.read_back(conn, found)
                return his_sdk.adapter.WriteOutcome(
                    outcome.resource_type,
                    outcome.resource_id,
                    outcome.version_id,
                    "already written for this key",
                )
            new_key = create.insert(conn, row, key, now)
            return create.read_back(conn, new_key)

    def _sources(self, state: _Bound, resource_type: str) -> list[BoundSource]:
        sources = state.types.get(resource_type)
        if sources is None:
            raise his_sdk.errors.UnsupportedError(
                f"resource type {resource_type} is not served by the SQL adapter"
            )
        return sources

    def _keys_for(self, state: _Bound, target: str, resource_id: str) -> list[Any]:
        sources = state.types.get(target)
        if sources is None:
            return [resource_id]
        return [key for s in sources if (key := s.key_of(resource_id)) is not None]

    def _read(self, resource_type: str, resource_id: str) -> Resource:
        state = self._bound()
        sources = self._sources(state, resource_type)
        with translate_driver_errors(f"reading {resource_type}"), self._engine.connect() as conn:
            for source in sources:
                key = source.key_of(resource_id)
                if key is None:
                    continue
                stmt = source.select().where(source.key == key)
                if source.filter is not True:
                    if source.filter is False:
                        continue
                    stmt = stmt.where(source.filter)
                row = conn.execute(stmt).first()
                if row is None:
                    continue
                data = source.row_data(row)
                if source.is_deleted(data):
                    raise his_sdk.errors.GoneError(f"{resource_type}/{resource_id} was deleted")
                return source.resource(data)
        raise his_sdk.errors.NotFoundError(f"{resource_type}/{resource_id} not found")

    def _start_at(
        self, query: his_sdk.search.SearchQuery, sources: Sequence[BoundSource]
    ) -> tuple[int, Any]:
        if query.position is None:
            return 0, None
        position = decode_position(query.position)
        for index, source in enumerate(sources):
            if source.name == position.source and position.resource_type == query.resource_type:
                if not isinstance(position.key, source.key_type or object):
                    break
                return index, position.key
        raise his_sdk.errors.InvalidRequestError("malformed paging position for this search")

    def _search(self, query: his_sdk.search.SearchQuery) -> his_sdk.adapter.SearchPage:
        state = self._bound()
        sources = self._sources(state, query.resource_type)
        start, after = self._start_at(query, sources)
        clauses: list[Clause] = []
        for source in sources:
            ctx = source.clause_context(
                state.dialect,
                state.aliases_for,
                lambda target, rid: self._keys_for(state, target, rid),
            )
            clauses.append(source.where_clause(query.criteria, ctx))
        wanted = max(query.count, 0) + 1
        found: list[tuple[BoundSource, dict[str, Any]]] = []
        total: int | None = None
        action = f"searching {query.resource_type}"
        with translate_driver_errors(action), self._engine.connect() as conn:
            for index, (source, clause) in enumerate(zip(sources, clauses, strict=True)):
                if index < start or clause is False or len(found) >= wanted or query.count <= 0:
                    continue
                stmt = source.select()
                if clause is not True:
                    stmt = stmt.where(clause)
                if index == start and after is not None:
                    stmt = stmt.where(source.key > after)
                stmt = stmt.order_by(source.key).limit(wanted - len(found))
                found.extend((source, source.row_data(row)) for row in conn.execute(stmt))
            if query.include_total:
                total = 0
                for source, clause in zip(sources, clauses, strict=True):
                    if clause is False:
                        continue
                    count = sa.select(sa.func.count()).select_from(source.from_clause)
                    if clause is not True:
                        count = count.where(clause)
                    total += int(conn.execute(count).scalar_one())
        page = found[: max(query.count, 0)]
        next_position = None
        if len(found) > len(page) and page:
            last_source, last_data = page[-1]
            next_position = encode_position(
                Position(query.resource_type, last_source.name, last_source.key_value(last_data))
            )
        resources = [source.resource(data) for source, data in page]
        return his_sdk.adapter.SearchPage(resources, next_position, total)

    def _patient_facts(self, patient_id: str) -> his_sdk.adapter.PatientFacts:
        state = self._bound()
        facts = self._mapping.patient_facts
        unknown = his_sdk.adapter.PatientFacts(patient_id, exists=False)
        with translate_driver_errors("reading patient facts"), self._engine.connect() as conn:
            for source in state.types.get("Patient", []):
                key = source.key_of(patient_id)
                if key is None or source.filter is False:
                    continue
                stmt = source.select().where(source.key == key)
                if source.filter is not True:
                    stmt = stmt.where(source.filter)
                row = conn.execute(stmt).first()
                if row is None:
                    continue
                data = source.row_data(row)
                if source.is_deleted(data):
                    return unknown
                opt_out = False
                if facts is not None and facts.consent_opt_out is not None:
                    opt_out = evaluate(facts.consent_opt_out, data)
                team = self._care_team(conn, state, key)
                return his_sdk.adapter.PatientFacts(
                    patient_id, exists=True, care_team=frozenset(team), consent_opt_out=opt_out
                )
        return unknown

    def _care_team(self, conn: sa.Connection, state: _Bound, key: Any) -> set[str]:
        team: set[str] = set()
        for link in state.care_team:
            try:
                patient_key = coerce(link.patient_type, key)
            except (ValueError, ArithmeticError):
                continue
            stmt = sa.select(link.practitioner).distinct().where(link.patient == patient_key)
            if link.filter is not True:
                if link.filter is False:
                    continue
                stmt = stmt.where(link.filter)
            for (value,) in conn.execute(stmt):
                team.add(link.reference.replace("{value}", as_text(value, self._render.zone)))
        return team
