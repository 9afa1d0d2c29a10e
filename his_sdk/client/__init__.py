"""Agent-facing clients for the gateway: blocking and asyncio, one shared core."""

from his_sdk.client._async import AsyncHisClient
from his_sdk.client._base import (
    SearchPage,
    SearchParams,
    Token,
    channel_credentials,
    channel_options,
    translate_error,
)
from his_sdk.client._options import TlsConfig
from his_sdk.client._sync import HisClient

__all__ = [
    "AsyncHisClient",
    "HisClient",
    "SearchPage",
    "SearchParams",
    "TlsConfig",
    "Token",
    "channel_credentials",
    "channel_options",
    "translate_error",
]
