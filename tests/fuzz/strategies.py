"""Hypothesis strategies for the request messages of every RPC, sent as raw bytes.

Each strategy draws a :class:`Case`: the bytes to put on the wire (a valid message, the same
with garbage appended or cut short, both arms of the prompt ``oneof``, or random bytes), the
call's metadata and its deadline. Values aim at the edges: empty and over-the-limit sizes,
odd Unicode (NUL, bidi controls, emoji sequences, combining marks, very long lines), NaN,
infinities, negative and huge numbers, and enum values no ``.proto`` defines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message
from hypothesis import strategies as st

from tierroute.v1 import common_pb2, model_service_pb2, router_service_pb2

GOOD_KEY = "tr-fuzz-all-8c41d2"
"""API key of a tenant allowed everything (a test value, not a secret)."""
PLAIN_KEY = "tr-fuzz-plain-51ab0e"
"""API key of a tenant with no extra permissions."""
DEFAULT_TIMEOUT_SECONDS = 10.0
"""Deadline of a call that does not test deadlines: long enough that reaching it is a hang."""
SHORT_TIMEOUT_SECONDS = 1.0
"""Calls with a deadline below this may legitimately end in DEADLINE_EXCEEDED."""
HUGE_TEXT_CHARS = 70_000
"""Longer than the router's prompt limit (64 KiB) and the scripted model's context in words."""

ODD_PIECES = (
    "\x00",
    "\x00\x00hidden",
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u05e9\u05dc\u05d5\u05dd",  # right-to-left mark, Hebrew
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # ZWJ emoji sequence
    "\U0001f1eb\U0001f1f7",  # flag (regional indicators)
    "e" + "\u0301" * 40,  # a pile of combining accents
    "Z\u0351\u0352\u0357\u035b\u0323\u0324",
    "\u200b\u200c\u200d\u2060",  # zero-width characters
    "\ufeff",  # byte-order mark
    "\r\n\t\v\f",
    "   \t\n ",
    "\U0010ffff\ufffe\uffff",  # non-characters
    "\u0000\u0001\u001f\u007f\u0080\u009f",  # C0/C1 controls
    "```python\nprint('x')\n```",
    "prove step by step that \u221a2 is irrational",
    "hard",
    "\\u0000 %s %n {0} ${x} <script>",
)

# Surrogates cannot be UTF-8 encoded; protobuf refuses them before anything is sent.
_CHARS = st.characters(exclude_categories=["Cs"])
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_ODD = st.sampled_from(ODD_PIECES)
T = TypeVar("T")


def _repeat(piece: str, count: int) -> str:
    return piece * count


def mostly(
    usual: st.SearchStrategy[T], wild: st.SearchStrategy[T], wild_percent: int = 25
) -> st.SearchStrategy[T]:
    """``usual`` values, and ``wild`` ones in ``wild_percent`` % of draws.

    Uniform choices would make almost every request invalid somewhere, and the fuzz would
    only ever exercise the first check that rejects it.
    """
    return _mostly(usual, wild, wild_percent)


_PERCENT = st.sampled_from(range(100))  # near-uniform, unlike integers(), which favours 0


@st.composite
def _mostly(
    draw: st.DrawFn, usual: st.SearchStrategy[T], wild: st.SearchStrategy[T], wild_percent: int
) -> T:
    # Hypothesis favours the simplest choice (index 0), so the usual values sit at the low end.
    return draw(wild if draw(_PERCENT) >= 100 - wild_percent else usual)


short_texts = st.one_of(
    st.text(_CHARS, min_size=1, max_size=40),
    st.lists(st.one_of(_ODD, st.text(_CHARS, max_size=8)), min_size=1, max_size=8).map("".join),
    st.sampled_from(("What is 2+2?", "hard question", "hello", "Prove it step by step.")),
)
long_texts = st.one_of(
    # Long lines, up to past the limits, cheap to draw: a piece times a count.
    st.builds(
        _repeat,
        st.one_of(_ODD, st.text(_CHARS, min_size=1, max_size=3)),
        st.integers(0, HUGE_TEXT_CHARS // 3),
    ),
    st.builds(
        _repeat,
        st.sampled_from(("word ", "a", "\u00e9", "\U0001f600")),
        st.sampled_from((16_383, 16_384, 65_535, 65_536, HUGE_TEXT_CHARS)),
    ),
    st.just(""),
    st.sampled_from(ODD_PIECES),
)
texts = mostly(short_texts, long_texts, 15)
"""Strings of every shape the contract's text fields may receive."""

wild_doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from((-0.0, 1e-300, 5e-324, -1e-9, 1.0000000001, 2.0000001, 1e308)),
    st.sampled_from((math.inf, -math.inf, math.nan)),
)


def doubles(low: float, high: float) -> st.SearchStrategy[float]:
    """Mostly values in [low, high]; a tenth from anywhere, NaN and infinities included."""
    return mostly(st.floats(low, high), wild_doubles, 10)


uint32 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from((1023, 1024, 1025, 2047, 2048, 2**31 - 1, 2**31, 2**32 - 1)),
)
uint64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from((0, 2**63 - 1, 2**63, 2**64 - 1)))
enum_values = st.one_of(
    st.integers(-5, 8),
    st.sampled_from((-(2**31), 2**31 - 1, 99, 1000)),
    st.integers(-(2**31), 2**31 - 1),
)
"""Raw int32 values for enum fields: the defined ones and ones no ``.proto`` defines."""


_MESSAGE = st.tuples(mostly(st.sampled_from((1, 2, 3)), enum_values, 10), texts)
_FEW_MESSAGES = st.lists(_MESSAGE, max_size=3)
_MANY_MESSAGES = st.lists(_MESSAGE, max_size=10)


@st.composite
def chats(draw: st.DrawFn) -> common_pb2.Chat:
    """A chat of 0-10 messages with any role (mostly valid ones), usually ending with the user."""
    messages = draw(_FEW_MESSAGES if draw(st.booleans()) else _MANY_MESSAGES)
    if messages and draw(st.integers(0, 3)) > 0:
        messages[-1] = (common_pb2.ROLE_USER, messages[-1][1])
    return common_pb2.Chat(
        # Raw ints, defined or not: proto3 enums are open.
        messages=[
            common_pb2.ChatMessage(role=role, content=text)  # type: ignore[arg-type]
            for role, text in messages
        ]
    )


@st.composite
def prompts(draw: st.DrawFn) -> common_pb2.Prompt | None:
    """A prompt with text, a chat or neither arm set; ``None`` leaves the field out."""
    kind = draw(st.sampled_from(("text",) * 5 + ("chat",) * 3 + ("empty", "absent")))
    if kind == "absent":
        return None
    if kind == "text":
        return common_pb2.Prompt(text=draw(texts))
    if kind == "chat":
        return common_pb2.Prompt(chat=draw(chats()))
    return common_pb2.Prompt()


_STOPS = mostly(st.lists(short_texts, max_size=3), st.lists(texts, max_size=12), 10)
_MAX_TOKENS = mostly(st.integers(0, 8), uint32, 10)
_TEMPERATURES = doubles(0.0, 2.0)
_TOP_PS = doubles(0.01, 1.0)


@st.composite
def sampling_params(draw: st.DrawFn) -> common_pb2.SamplingParams | None:
    """Decoding parameters with extreme numbers; unset optional fields stay unset."""
    if draw(st.integers(0, 3)) == 0:
        return None
    params = common_pb2.SamplingParams(max_tokens=draw(_MAX_TOKENS), stop=draw(_STOPS))
    if draw(st.booleans()):
        params.temperature = draw(_TEMPERATURES)
    if draw(st.booleans()):
        params.top_p = draw(_TOP_PS)
    if draw(st.booleans()):
        params.seed = draw(uint64)
    return params


_HINTS = mostly(
    st.sampled_from(("",) * 6 + ("small", "large")),
    st.one_of(st.sampled_from(("xl", "SMALL", "small ", "small\x00")), texts),
    10,
)
_MODES = mostly(st.integers(0, 4), enum_values, 10)
_COSTS = doubles(0.0, 0.01)
_THRESHOLDS = doubles(0.0, 1.0)


@st.composite
def route_options(draw: st.DrawFn) -> router_service_pb2.RouteOptions | None:
    """Routing options: every fallback mode and unknown ones, odd tier hints, odd numbers."""
    if draw(st.integers(0, 3)) == 0:
        return None
    options = router_service_pb2.RouteOptions(tier_hint=draw(_HINTS))
    options.fallback_mode = draw(_MODES)  # type: ignore[assignment]  # raw int, maybe unknown
    if draw(st.integers(0, 3)) == 0:
        options.max_cost_usd = draw(_COSTS)
    if draw(st.booleans()):
        options.fallback_threshold = draw(_THRESHOLDS)
    return options


request_ids = mostly(
    st.one_of(st.just(""), st.text(_PRINTABLE, max_size=64)),
    st.one_of(st.text(_CHARS, max_size=140), texts),
    10,
)


@dataclass(frozen=True)
class Case:
    """One call: the bytes on the wire, the message they decode to, metadata and deadline."""

    payload: bytes
    message: Message | None
    """What the server decodes (``None`` when the bytes are not a valid message)."""
    form: str
    """How the payload was made: valid, garbage, truncated, both_arms, random."""
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    authorization: str | None = field(default=None)
    """The ``authorization`` value sent, if any."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Failure reports show this; a 5 MB payload in full helps nobody.
        printer.text(self.short())

    def short(self) -> str:
        """The case with long values cut (for failure messages)."""
        meta = [(k, v if len(v) <= 80 else f"{v[:80]!r}...({len(v)})") for k, v in self.metadata]
        head = self.payload[:200]
        return (
            f"Case(form={self.form!r}, payload[{len(self.payload)}]={head!r}..., "
            f"metadata={meta!r}, timeout={self.timeout!r})"
        )


def _decode(message_type: type[Message], payload: bytes) -> Message | None:
    try:
        return message_type.FromString(payload)
    except Exception:  # DecodeError: the server cannot decode these bytes either
        return None


_FORMS = st.sampled_from(("valid",) * 12 + ("garbage", "truncated", "random", "both_arms"))
_GARBAGE = st.binary(min_size=1, max_size=64)
_RANDOM = st.binary(max_size=256)


def _wire(
    draw: st.DrawFn, message: Message, with_prompt: bool
) -> tuple[bytes, Message | None, str]:
    """The message's bytes, or a corruption of them, and the message the bytes decode to."""
    valid = message.SerializeToString()
    form = draw(_FORMS)
    if form == "valid" or (form == "both_arms" and not with_prompt):
        return valid, message, "valid"
    if form == "garbage":
        payload = valid + draw(_GARBAGE)
    elif form == "truncated":
        payload = valid[: draw(st.integers(0, max(len(valid) - 1, 0)))]
    elif form == "random":
        payload = draw(_RANDOM)
    else:
        # Field 1 (prompt) twice: a text arm, then a chat arm. The parser merges the two
        # Prompt messages and the last arm wins; the server must cope with either.
        other = type(message)()
        other.prompt.chat.CopyFrom(draw(chats()))  # type: ignore[attr-defined]
        first = type(message)()
        first.prompt.text = draw(texts)  # type: ignore[attr-defined]
        payload = first.SerializeToString() + valid + other.SerializeToString()
    return payload, _decode(type(message), payload), form


_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_."
authorizations = mostly(
    st.sampled_from((f"Bearer {GOOD_KEY}",) * 4 + (f"Bearer {PLAIN_KEY}",)),
    st.one_of(
        st.sampled_from(
            (
                f"bearer {GOOD_KEY}",  # the scheme is case-insensitive
                f"Bearer   {GOOD_KEY}  ",
                f"Basic {GOOD_KEY}",
                f"Bearer {GOOD_KEY[:-1]}",
                f"Bearer {GOOD_KEY}x",
                "Bearer ",
                "Bearer",
                "",
                GOOD_KEY,
            )
        ),
        st.text(_PRINTABLE, max_size=64).map(lambda s: f"Bearer {s}"),
        st.text(_PRINTABLE, max_size=64),
        st.integers(0, 12_000).map(lambda n: "Bearer " + "k" * n),
    ),
    10,
)
"""``authorization`` values: the good keys (most often), near misses, junk, oversized."""


_IDS = st.text(_PRINTABLE, max_size=200)
_TENANTS = st.text(_PRINTABLE, max_size=80)
_NAMES = st.lists(
    st.text(st.sampled_from(_KEY_CHARS), min_size=1, max_size=20).filter(
        lambda k: not k.startswith("grpc-") and k not in ("authorization", "te")
    ),
    max_size=3,
)
_BINARY_VALUES = st.binary(max_size=64)
_VALUES = st.text(_PRINTABLE, max_size=64)


@st.composite
def metadata(
    draw: st.DrawFn, with_auth: bool
) -> tuple[tuple[tuple[str, str | bytes], ...], str | None]:
    """Random call metadata: request ids, tenants, unknown keys, binary headers, a key."""
    pairs: list[tuple[str, str | bytes]] = []
    auth = None
    if with_auth and draw(_PERCENT) < 95:
        auth = draw(authorizations)
        pairs.append(("authorization", auth))
    if draw(st.booleans()):
        pairs.append(("x-request-id", draw(_IDS)))
    if draw(st.integers(0, 3)) == 0:
        pairs.append(("x-tenant", draw(_TENANTS)))
    for name in draw(_NAMES):
        if draw(st.booleans()):
            pairs.append((f"{name}-bin", draw(_BINARY_VALUES)))
        else:
            pairs.append((name, draw(_VALUES)))
    return tuple(pairs), auth


timeouts = mostly(st.just(DEFAULT_TIMEOUT_SECONDS), st.floats(0.0005, SHORT_TIMEOUT_SECONDS / 2), 5)


def cases(
    messages: st.SearchStrategy[Message], with_prompt: bool, with_auth: bool
) -> st.SearchStrategy[Case]:
    """Cases for one RPC from a strategy of its request messages."""

    call_metadata = metadata(with_auth)

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        payload, decoded, form = _wire(draw, draw(messages), with_prompt)
        pairs, auth = draw(call_metadata)
        return Case(payload, decoded, form, pairs, draw(timeouts), auth)

    return build()


def _route(
    prompt: common_pb2.Prompt | None, options: router_service_pb2.RouteOptions | None
) -> router_service_pb2.RouteRequest:
    request = router_service_pb2.RouteRequest()
    if prompt is not None:
        request.prompt.CopyFrom(prompt)
    if options is not None:
        request.options.CopyFrom(options)
    return request


def _generate(
    factory: Callable[[], Message],
    prompt: common_pb2.Prompt | None,
    sampling: common_pb2.SamplingParams | None,
    request_id: str,
) -> Message:
    request = factory()
    if prompt is not None:
        request.prompt.CopyFrom(prompt)  # type: ignore[attr-defined]
    if sampling is not None:
        request.sampling.CopyFrom(sampling)  # type: ignore[attr-defined]
    request.request_id = request_id  # type: ignore[attr-defined]
    return request


@st.composite
def _router_generate(draw: st.DrawFn) -> router_service_pb2.RouterServiceGenerateRequest:
    request = _generate(
        router_service_pb2.RouterServiceGenerateRequest,
        draw(prompts()),
        draw(sampling_params()),
        draw(request_ids),
    )
    options = draw(route_options())
    if options is not None:
        request.options.CopyFrom(options)  # type: ignore[attr-defined]
    return request  # type: ignore[return-value]


route_cases = cases(st.builds(_route, prompts(), route_options()), True, True)
router_generate_cases = cases(_router_generate(), True, True)
list_tiers_cases = cases(st.just(router_service_pb2.ListTiersRequest()), False, True)
model_generate_cases = cases(
    st.builds(
        _generate,
        st.just(model_service_pb2.GenerateRequest),
        prompts(),
        sampling_params(),
        request_ids,
    ),
    True,
    False,
)
model_info_cases = cases(st.just(model_service_pb2.GetModelInfoRequest()), False, False)
