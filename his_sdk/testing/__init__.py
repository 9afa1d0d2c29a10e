"""Helpers that start real local servers for tests and demos (a Kafka-protocol broker)."""

from his_sdk.testing._kafka import TansuBroker, TansuUnavailableError, tansu_binary

__all__ = ["TansuBroker", "TansuUnavailableError", "tansu_binary"]
