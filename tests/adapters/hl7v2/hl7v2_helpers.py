"""Helpers for the HL7 v2 adapter tests: sample messages and an MLLP client."""

from __future__ import annotations

import pathlib

from adapters.hl7v2 import MllpConnection

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "hl7v2"
CORPUS = pathlib.Path(__file__).resolve().parents[4] / "shared" / "corpora"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def hl7(*segments: str) -> bytes:
    return "\r".join(segments).encode() + b"\r"


def adt(
    control_id: str = "C1",
    *,
    mrn: str = "MRN1",
    event: str = "A01",
    extra: str = "",
    version: str = "2.5.1",
    msh15: str = "",
    msh16: str = "",
) -> bytes:
    return hl7(
        f"MSH|^~\\&|SENDAPP|SENDFAC|RECV|RFAC|20240102030405+0000||ADT^{event}^ADT_A01|"
        f"{control_id}|P|{version}|||{msh15}|{msh16}",
        f"EVN|{event}|20240102030405",
        f"PID|1||{mrn}^^^HOSP^MR||Doe^Jane^Q||19800214|F|||1 Main St^^Town^ST^12345",
        "PV1|1|I|W1^101^A|||||||MED||||||||||V" + mrn + "^^^HOSP^VN|||||||||||||||||||||||||"
        "20240101080000+0000",
        *([extra] if extra else []),
    )


class Client:
    """An MLLP test client on one persistent connection."""

    def __init__(self, port: int, **kwargs: object) -> None:
        self.conn = MllpConnection("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]

    async def send(self, data: bytes, wait: float = 10.0) -> bytes:
        return await self.conn.request(data, wait)

    async def close(self) -> None:
        await self.conn.close()


def ack_code(reply: bytes) -> str:
    from adapters.hl7v2 import read_ack

    return read_ack(reply).code
