"""Every message of the tierroute.v1 contracts round-trips, and every enum follows the rules."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message

from tierroute.v1 import common_pb2, model_service_pb2, router_service_pb2

_MODULES = (common_pb2, model_service_pb2, router_service_pb2)
_FD = _descriptor.FieldDescriptor


def _all_messages() -> list[_descriptor.Descriptor]:
    found: list[_descriptor.Descriptor] = []
    for module in _MODULES:
        found.extend(module.DESCRIPTOR.message_types_by_name.values())
    return found


def _all_enums() -> list[_descriptor.EnumDescriptor]:
    found: list[_descriptor.EnumDescriptor] = []
    for module in _MODULES:
        found.extend(module.DESCRIPTOR.enum_types_by_name.values())
    return found


def _sample(field: _descriptor.FieldDescriptor, depth: int) -> Any:
    if field.type == _FD.TYPE_STRING:
        return f"{field.name}-é✓"
    if field.type == _FD.TYPE_BOOL:
        return True
    if field.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        return 0.5
    if field.type == _FD.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.type == _FD.TYPE_MESSAGE:
        return _filled(field.message_type, depth + 1)
    return 7


def _filled(descriptor: _descriptor.Descriptor, depth: int = 0) -> Message:
    from google.protobuf import message_factory

    message = message_factory.GetMessageClass(descriptor)()
    if depth > 4:
        return message
    seen_oneofs: set[str] = set()
    for field in descriptor.fields:
        if field.containing_oneof is not None and not field.containing_oneof.name.startswith("_"):
            if field.containing_oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(field.containing_oneof.name)
        value = _sample(field, depth)
        if field.is_repeated:
            if field.type == _FD.TYPE_MESSAGE:
                getattr(message, field.name).add().CopyFrom(value)
            else:
                getattr(message, field.name).extend([value, value])
        elif field.type == _FD.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(value)
        else:
            setattr(message, field.name, value)
    return message


@pytest.mark.parametrize("descriptor", _all_messages(), ids=lambda d: d.full_name)
def test_message_round_trips(descriptor: _descriptor.Descriptor) -> None:
    original = _filled(descriptor)
    wire = original.SerializeToString()
    parsed = type(original).FromString(wire)
    assert parsed == original
    if descriptor.fields:
        assert wire, "a filled message must not serialise to nothing"


@pytest.mark.parametrize("enum", _all_enums(), ids=lambda e: e.full_name)
def test_enum_zero_is_unspecified(enum: _descriptor.EnumDescriptor) -> None:
    zero = enum.values_by_number[0]
    assert zero.name.endswith("_UNSPECIFIED")


def test_generate_stream_events_are_a_oneof() -> None:
    event = model_service_pb2.GenerateResponse(delta=common_pb2.TokenDelta(text="a"))
    assert event.WhichOneof("event") == "delta"
    event.finished.finish_reason = common_pb2.FINISH_REASON_STOP
    assert event.WhichOneof("event") == "finished"
    routed = router_service_pb2.RouterServiceGenerateResponse(
        escalated=router_service_pb2.Escalated(from_tier="small", to_tier="large")
    )
    assert routed.WhichOneof("event") == "escalated"


def test_optional_fields_track_presence() -> None:
    params = common_pb2.SamplingParams()
    assert not params.HasField("temperature")
    params.temperature = 0.0
    assert params.HasField("temperature")
