"""Small protobuf pieces every translator uses: durations, percentages, packed configs, the ADS source."""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

__all__ = ["ads", "duration", "fractional_percent", "headers_to_add", "packed"]


def duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def fractional_percent(value: float) -> percent_pb2.FractionalPercent:
    """``value`` % in millionths, so that 0.0001 % still counts."""
    return percent_pb2.FractionalPercent(
        numerator=round(value * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def packed(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def ads() -> config_source_pb2.ConfigSource:
    """Resources that come over the same ADS stream (EDS, RDS, SDS)."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )


def headers_to_add(headers: Mapping[str, str]) -> list[base_pb2.HeaderValueOption]:
    """Headers set on a request or an answer, replacing any of the same name."""
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, value=value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
        )
        for key, value in headers.items()
    ]
