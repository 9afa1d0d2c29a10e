"""Keyset paging across the sources of a type, totals and malformed positions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import his_sdk.errors
import his_sdk.search
from tests.adapters.sql.sql_helpers import SMALL_BUNDLE, Seeded, Truth

# Observation sources in mapping order; ids name the source by prefix/suffix.
SOURCE_ORDER = ["lab", "bp", "wt", "ht", "temp", "hr", "rr", "spo2", "bmi"]


def source_rank(resource_id: str) -> tuple[int, int]:
    if resource_id.startswith("lab-"):
        return 0, int(resource_id[4:])
    _, row, suffix = resource_id.split("-")
    return SOURCE_ORDER.index(suffix), int(row)


async def walk(
    seeded: Seeded, query: his_sdk.search.SearchQuery
) -> tuple[list[str], set[int | None]]:
    ids: list[str] = []
    totals: set[int | None] = set()
    position = None
    for _ in range(10_000):
        page = await seeded.adapter.search(
            his_sdk.search.SearchQuery(
                query.resource_type, query.criteria, query.count, position, query.include_total
            )
        )
        assert len(page.resources) <= query.count
        ids += [r.id for r in page.resources]
        totals.add(page.total)
        position = page.next_position
        if position is None:
            return ids, totals
        assert page.resources, "a page with a next position must not be empty"
    raise AssertionError("paging did not end")


def query(seeded: Seeded, resource_type: str, params: list[tuple[str, str]], count: int) -> Any:
    definitions = seeded.adapter.capabilities().types[resource_type].search_params
    criteria = his_sdk.search.parse_criteria(resource_type, params, definitions)
    return his_sdk.search.SearchQuery(resource_type, criteria, count=count, include_total=True)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 50])
async def test_walking_pages_yields_each_match_once_in_order(seeded: Seeded, count: int) -> None:
    small_mrn = Truth.of([SMALL_BUNDLE]).patients[0]["mrn"]
    small = seeded.pid_by_mrn[small_mrn]
    searches = [("Observation", [("patient", small)]), ("Encounter", [("patient", small)])]
    if count >= 3:
        searches += [
            ("Observation", []),
            ("Condition", [("clinical-status", "resolved")]),
            ("Observation", [("category", "vital-signs"), ("date", "ge2000")]),
        ]
    for resource_type, params in searches:
        everything = await seeded.search(resource_type, params, count=5000)
        ids, totals = await walk(seeded, query(seeded, resource_type, params, count))
        assert ids == [r.id for r in everything], (resource_type, params)
        assert len(set(ids)) == len(ids)
        assert totals == {len(everything)}
        if resource_type == "Observation":
            assert [source_rank(i) for i in ids] == sorted(source_rank(i) for i in ids)
        else:
            assert [int(i) for i in ids] == sorted(int(i) for i in ids)


async def test_total_only_when_asked_and_count_zero(seeded: Seeded) -> None:
    plain = await seeded.adapter.search(his_sdk.search.SearchQuery("Observation", count=5))
    assert plain.total is None
    assert len(plain.resources) == 5 and plain.next_position is not None
    counted = await seeded.adapter.search(
        his_sdk.search.SearchQuery("Observation", count=0, include_total=True)
    )
    assert counted.resources == [] and counted.next_position is None
    assert counted.total == len(seeded.truth.observations)
    empty = await seeded.adapter.search(query(seeded, "Encounter", [("class", "XYZ")], 10))
    assert empty.resources == [] and empty.next_position is None and empty.total == 0


def _encode(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


async def test_malformed_positions_are_rejected(seeded: Seeded) -> None:
    first = await seeded.adapter.search(his_sdk.search.SearchQuery("Observation", count=2))
    assert first.next_position is not None
    page = await seeded.adapter.search(his_sdk.search.SearchQuery("Encounter", count=2))
    assert page.next_position is not None
    bad = [
        "",
        "!!!",
        "bm90IGpzb24",  # "not json"
        _encode([1, 2]),
        _encode({"v": 1, "t": "Observation", "s": "lab"}),
        _encode({"v": 2, "t": "Observation", "s": "lab", "k": 1}),
        _encode({"v": 1, "t": "Observation", "s": "nope", "k": 1}),
        _encode({"v": 1, "t": "Observation", "s": "lab", "k": "x"}),
        _encode({"v": 1, "t": "Observation", "s": "lab", "k": True}),
        _encode({"v": 1, "t": "Observation", "s": "lab", "k": 1, "extra": 1}),
        page.next_position,  # another type's position
    ]
    for position in bad:
        with pytest.raises(his_sdk.errors.InvalidRequestError) as caught:
            await seeded.adapter.search(
                his_sdk.search.SearchQuery("Observation", count=2, position=position)
            )
        assert caught.value.grpc_status_code.name == "INVALID_ARGUMENT"
    again = await seeded.adapter.search(
        his_sdk.search.SearchQuery("Observation", count=2, position=first.next_position)
    )
    assert {r.id for r in again.resources}.isdisjoint(r.id for r in first.resources)
