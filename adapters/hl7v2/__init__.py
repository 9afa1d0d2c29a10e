"""HL7 v2 adapter: MLLP listener and sender, message store, v2-to-FHIR R4 conversion."""

from ._ack import AckInfo, build_ack, read_ack
from ._adapter import Hl7v2Adapter
from ._mllp import MllpConnection, MllpListener
from ._parser import Hl7ParseError, Message, Segment, parse_message
from ._sender import AckRejectedError, DeliveryFailedError, Hl7Sender
from ._settings import Hl7v2Settings
from ._store import MessageFilter, MessageStatus, OutboundStatus, StoredMessage

__all__ = [
    "AckInfo",
    "AckRejectedError",
    "DeliveryFailedError",
    "Hl7ParseError",
    "Hl7Sender",
    "Hl7v2Adapter",
    "Hl7v2Settings",
    "Message",
    "MessageFilter",
    "MessageStatus",
    "MllpConnection",
    "MllpListener",
    "OutboundStatus",
    "Segment",
    "StoredMessage",
    "build_ack",
    "parse_message",
    "read_ack",
]
