"""HL7 v2 ingest benchmark: end-to-end MLLP messages/s with durable storage, ACK latency.

Usage: python bench/hl7v2_ingest.py [--messages 4000] [--senders 8] [--postgres URL]
       [--deferred [--processes 1]]

Eight senders each keep one message in flight (send, wait for the ACK, send the next) over
their own persistent connection. Messages are the shipped test samples with unique MSH-10s.
The parse-only rate of the PyPI ``hl7`` package on the same messages is printed as the
ceiling when that package is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.hl7v2 import Hl7v2Adapter, MllpConnection, parse_message, read_ack  # noqa: E402

SAMPLES = ["ADT01-23.hl7", "LAB-ORU-1.hl7", "VXU.hl7", "MDM-T02-01.hl7", "Sample-ORM.txt"]


def messages(n: int) -> list[bytes]:
    base = []
    for name in SAMPLES:
        msg = parse_message((ROOT / "tests/data/hl7v2" / name).read_bytes())
        # Original mode, so every message gets an ACK.
        msh = msg.msh.fields
        msh += [""] * max(0, 17 - len(msh))
        msh[15] = msh[16] = ""
        base.append(msg)
    out = []
    for i in range(n):
        msg = base[i % len(base)]
        msg.msh.fields[10] = f"BENCH{i:08d}"
        out.append(msg.to_er7().encode())
    return out


async def run(
    url: str, data: list[bytes], senders: int, deferred: bool, processes: int = 0
) -> dict[str, float]:
    settings: dict[str, object] = {
        "database_url": url,
        "listen": {"host": "127.0.0.1", "port": 0},
        "convert_before_ack": not deferred,
    }
    if processes:
        settings["conversion_processes"] = processes
    adapter = Hl7v2Adapter.from_settings(settings)
    await adapter.start()
    latencies: list[float] = []
    chunks = [data[i::senders] for i in range(senders)]

    async def sender(chunk: list[bytes]) -> None:
        conn = MllpConnection("127.0.0.1", adapter.listener_port or 0)
        for message in chunk:
            t0 = time.perf_counter()
            reply = await conn.request(message, 30)
            latencies.append(time.perf_counter() - t0)
            if read_ack(reply).code != "AA":
                raise RuntimeError(f"unexpected ACK {read_ack(reply)}")
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender(c) for c in chunks))
    elapsed = time.perf_counter() - started
    # Deferred mode acknowledges before converting: also time until everything is converted.
    while await asyncio.to_thread(adapter.store.pending_ids, 1):
        await asyncio.sleep(0.01)
    converted = time.perf_counter() - started
    await adapter.close()
    latencies.sort()
    return {
        "rate": len(data) / elapsed,
        "converted_rate": len(data) / converted,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def ceiling(data: list[bytes]) -> float | None:
    try:
        import hl7  # type: ignore[import-not-found]
    except ImportError:
        return None
    texts = [d.decode("utf-8", errors="replace") for d in data]
    started = time.perf_counter()
    for text in texts:
        hl7.parse(text)
    return len(texts) / (time.perf_counter() - started)


def own_parse_rate(data: list[bytes]) -> float:
    started = time.perf_counter()
    for d in data:
        parse_message(d)
    return len(data) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--postgres", default="")
    parser.add_argument(
        "--deferred",
        action="store_true",
        help="answer AA once stored and convert in the background",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="conversion_processes setting (worker processes for deferred conversion)",
    )
    args = parser.parse_args()
    data = messages(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", f"sqlite:///{tmp}/bench.db")]
        if args.postgres:
            targets.append(("postgresql", args.postgres))
        for name, url in targets:
            result = asyncio.run(run(url, data, args.senders, args.deferred, args.processes))
            mode = "deferred conversion" if args.deferred else "convert before ACK"
            if args.processes:
                mode += f", {args.processes} conversion process(es)"
            print(
                f"{name:10s} {mode}: {result['rate']:8.0f} msg/s  "
                f"ACK p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                f"(all converted: {result['converted_rate']:.0f} msg/s)"
            )
    print(f"own parser, parse only: {own_parse_rate(data):8.0f} msg/s")
    top = ceiling(data)
    print(
        f"hl7 package, parse only (ceiling): {top:8.0f} msg/s"
        if top
        else "hl7 package not installed: no ceiling"
    )


if __name__ == "__main__":
    main()
