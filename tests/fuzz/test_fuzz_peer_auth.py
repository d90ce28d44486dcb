"""Property-based fuzzing of the TLS and peer-authentication paths of a model service.

A real model service process (the scripted engine) serves mutual TLS, pins the router's
certificate name (``auth.allowed_peer_sans``) and requires the shared secret from a file,
which is rotated half way (the previous secret retired at once). Deterministic hypothesis
runs then send:

- calls from every kind of client (the router's certificate, another certificate of the same
  CA, one without SANs, one of another CA, none) with generated ``authorization`` values, to
  ``Generate``, ``GetModelInfo`` and health: the exact status each must get is known
  (handshake refused: UNAVAILABLE; wrong name: PERMISSION_DENIED; wrong secret:
  UNAUTHENTICATED; health open to the CA's certificates);
- client certificates with generated DNS and URI names near the pinned one (case, trailing
  dot, wildcard, prefix, suffix, the name as a URI): only the exact name is served;
- arbitrary bytes, and a TLS record header followed by arbitrary bytes, on the TLS port.

Afterwards the service is SERVING, answers the router's certificate, and logged no error.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tls_files import ROUTER_DNS, TlsFiles, client_pem, make_tls_files
from tierroute.launch import ServiceProcess
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
AUTH_CASES = 1200
NAME_CASES = 150
BYTES_CASES = 150
IDENTITIES = ("router", "intruder", "no_san", "rogue", "none")
METHODS = ("Generate", "GetModelInfo", "Health")
SCHEMES = ("Bearer ", "bearer ", "BEARER ", "Bearer", "Basic ", "", "Bearer  ")


def _fuzz(cases: int) -> settings:
    """The fuzz settings for ``cases`` examples."""
    return settings(
        max_examples=cases,
        deadline=None,
        derandomize=True,  # the same cases on every run: CI failures reproduce
        database=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )


@dataclass
class Secured:
    """The running service, its files, and one channel per kind of client."""

    service: ServiceProcess
    tls: TlsFiles
    secret_file: Path
    channels: dict[str, grpc.Channel]
    log: Path

    @property
    def target(self) -> str:
        return f"localhost:{self.service.port}"


def _credentials(tls: TlsFiles, identity: str) -> grpc.ChannelCredentials:
    ca = tls.ca.read_bytes()
    pairs = {
        "router": (tls.router_cert, tls.router_key),
        "intruder": (tls.intruder_cert, tls.intruder_key),
        "no_san": (tls.client_cert, tls.client_key),
        "rogue": (tls.rogue_client_cert, tls.rogue_client_key),
    }
    if identity not in pairs:
        return grpc.ssl_channel_credentials(ca)
    cert, key = pairs[identity]
    return grpc.ssl_channel_credentials(ca, key.read_bytes(), cert.read_bytes())


def _wait_serving(channel: grpc.Channel, service: ServiceProcess) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert service.process.poll() is None, "\n".join(service.output_tail())
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise AssertionError("the model service was not SERVING within 60 s")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("fuzz-peer-auth")
    tls = make_tls_files(directory / "certs")
    secret_file = directory / "peer-secret"
    secret_file.write_text(secrets.token_hex(24) + "\n")
    env = {
        "TIERROUTE_SERVER__TLS__CERT_FILE": str(tls.server_cert),
        "TIERROUTE_SERVER__TLS__KEY_FILE": str(tls.server_key),
        "TIERROUTE_SERVER__TLS__CLIENT_CA_FILE": str(tls.ca),
        "TIERROUTE_SERVER__TLS__REQUIRE_CLIENT_AUTH": "true",
        "TIERROUTE_AUTH__MODE": "shared_secret",
        "TIERROUTE_AUTH__SHARED_SECRET_FILE": str(secret_file),
        "TIERROUTE_AUTH__PREVIOUS_SECRET_SECONDS": "0",
        "TIERROUTE_AUTH__ALLOWED_PEER_SANS": json.dumps([ROUTER_DNS]),
    }
    log = directory / "model.log"
    service = ServiceProcess(
        "model_svc.scripted_server",
        ["--tier", "small", "--max-streams", "8", "--token-delay", "0"],
        env=env,
        cwd=ROOT,
        log_path=log,
    )
    channels: dict[str, grpc.Channel] = {}
    try:
        for identity in IDENTITIES:
            channels[identity] = grpc.secure_channel(
                f"localhost:{service.port}", _credentials(tls, identity)
            )
        _wait_serving(channels["router"], service)
        yield Secured(service, tls, secret_file, channels, log)
    finally:
        for channel in channels.values():
            channel.close()
        service.stop()


def _call(channel: grpc.Channel, method: str, authorization: str | None) -> grpc.StatusCode:
    metadata = (("authorization", authorization),) if authorization is not None else ()
    try:
        if method == "Health":
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5, metadata=metadata
            )
            return grpc.StatusCode.OK
        stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
        if method == "GetModelInfo":
            info = stub.GetModelInfo(
                model_service_pb2.GetModelInfoRequest(), timeout=5, metadata=metadata
            )
            assert info.tier == "small"
            return grpc.StatusCode.OK
        request = model_service_pb2.GenerateRequest(
            prompt=common_pb2.Prompt(text="hi there"),
            sampling=common_pb2.SamplingParams(max_tokens=4),
        )
        events = list(stub.Generate(request, timeout=5, metadata=metadata))
        assert events[-1].WhichOneof("event") == "finished"
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return,attr-defined]


def _expected(
    identity: str, method: str, authorization: str | None, secret: str
) -> grpc.StatusCode:
    """What the service must answer: the handshake, then the name, then the secret."""
    if identity in ("rogue", "none"):
        return grpc.StatusCode.UNAVAILABLE  # no certificate of the client CA: no handshake
    if method == "Health":
        return grpc.StatusCode.OK  # open to any certificate of the CA
    if identity != "router":
        return grpc.StatusCode.PERMISSION_DENIED
    value = authorization or ""
    if value[:7].lower() == "bearer " and value[7:].strip() == secret:
        return grpc.StatusCode.OK
    return grpc.StatusCode.UNAUTHENTICATED


def _printable(max_size: int) -> st.SearchStrategy[str]:
    # gRPC metadata values are printable ASCII.
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=max_size)


def _authorizations(secret: str, retired: str | None) -> st.SearchStrategy[str | None]:
    near = st.one_of(
        st.just(secret),
        st.builds(lambda pad: secret + pad, st.sampled_from([" ", "  "])),
        st.builds(lambda pad: pad + secret, st.sampled_from([" ", "  "])),
        st.builds(lambda n: secret[:n], st.integers(0, len(secret) - 1)),
        st.builds(lambda extra: secret + extra, _printable(8).filter(lambda s: s.strip() != "")),
        st.builds(
            lambda i: secret[:i] + ("x" if secret[i] != "x" else "y") + secret[i + 1 :],
            st.integers(0, len(secret) - 1),
        ),
        st.just(secret.upper()),
        _printable(64),
    )
    if retired is not None:
        near = st.one_of(near, st.just(retired))
    return st.one_of(
        st.none(),
        st.builds(lambda scheme, body: scheme + body, st.sampled_from(SCHEMES), near),
    )


def _run_auth(secured: Secured, cases: int, retired: str | None, counts: Counter[str]) -> None:
    secret = secured.secret_file.read_text().strip()
    case = st.tuples(
        st.sampled_from(IDENTITIES), st.sampled_from(METHODS), _authorizations(secret, retired)
    )

    @_fuzz(cases)
    @given(case)
    def property_(drawn: tuple[str, str, str | None]) -> None:
        identity, method, authorization = drawn
        got = _call(secured.channels[identity], method, authorization)
        assert got == _expected(identity, method, authorization, secret), drawn
        counts[got.name] += 1

    property_()


def _assert_healthy(secured: Secured) -> None:
    secret = secured.secret_file.read_text().strip()
    assert secured.service.process.poll() is None, "the model service exited"
    assert _call(secured.channels["router"], "Generate", f"Bearer {secret}") == grpc.StatusCode.OK
    errors = [
        line
        for line in secured.log.read_text(errors="replace").splitlines()
        if line.startswith("{") and json.loads(line).get("level") in ("error", "critical")
    ]
    assert not errors, "errors logged:\n" + "\n".join(errors[:5])


def test_every_client_and_authorization_gets_exactly_its_status(secured: Secured) -> None:
    counts: Counter[str] = Counter()
    _run_auth(secured, AUTH_CASES // 2, None, counts)
    retired = secured.secret_file.read_text().strip()
    secured.secret_file.write_text(secrets.token_hex(24) + "\n")  # rotated under the service
    _run_auth(secured, AUTH_CASES - AUTH_CASES // 2, retired, counts)
    # Every outcome was reached, not only refusals.
    assert set(counts) == {"OK", "UNAVAILABLE", "PERMISSION_DENIED", "UNAUTHENTICATED"}, counts
    assert sum(counts.values()) >= AUTH_CASES * 0.9, counts
    _assert_healthy(secured)


def _names() -> st.SearchStrategy[list[x509.GeneralName]]:
    variants = st.one_of(
        st.just(ROUTER_DNS),
        st.sampled_from(
            [
                ROUTER_DNS.upper(),
                ROUTER_DNS + ".",
                "*.tierroute.svc",
                "x" + ROUTER_DNS,
                ROUTER_DNS + "x",
                ROUTER_DNS.replace(".", "-"),
                "router",
            ]
        ),
        st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}", fullmatch=True),
    )
    dns = variants.map(lambda n: x509.DNSName(n))
    uri = st.sampled_from(
        [f"spiffe://{ROUTER_DNS}", f"dns:{ROUTER_DNS}", "spiffe://cluster.local/ns/x/sa/router"]
    ).map(lambda u: x509.UniformResourceIdentifier(u))
    return st.lists(st.one_of(dns, uri), min_size=0, max_size=3)


def test_only_a_certificate_naming_the_pinned_router_is_served(secured: Secured) -> None:
    secret = secured.secret_file.read_text().strip()
    counts: Counter[str] = Counter()

    @_fuzz(NAME_CASES)
    @given(_names())
    def property_(names: list[x509.GeneralName]) -> None:
        cert, key = client_pem(secured.tls, names)
        pinned = any(isinstance(n, x509.DNSName) and n.value == ROUTER_DNS for n in names)
        credentials = grpc.ssl_channel_credentials(secured.tls.ca.read_bytes(), key, cert)
        with grpc.secure_channel(secured.target, credentials) as channel:
            got = _call(channel, "GetModelInfo", f"Bearer {secret}")
        wanted = grpc.StatusCode.OK if pinned else grpc.StatusCode.PERMISSION_DENIED
        assert got == wanted, [str(n.value) for n in names]
        counts[got.name] += 1

    property_()
    assert counts["OK"] > 0 and counts["PERMISSION_DENIED"] > 0, counts
    _assert_healthy(secured)


def test_garbage_on_the_tls_port_leaves_the_service_serving(secured: Secured) -> None:
    record = st.builds(
        lambda version, body: bytes([0x16, 0x03, version]) + len(body).to_bytes(2, "big") + body,
        st.integers(0, 4),
        st.binary(max_size=512),
    )

    @_fuzz(BYTES_CASES)
    @given(st.one_of(st.binary(min_size=1, max_size=2048), record))
    def property_(payload: bytes) -> None:
        with socket.create_connection(("127.0.0.1", secured.service.port), timeout=5) as raw:
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            try:
                while raw.recv(4096):
                    pass  # the server answers with an alert or closes
            except (ConnectionResetError, TimeoutError):
                pass

    property_()
    _assert_healthy(secured)
