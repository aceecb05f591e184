"""A loopback server that speaks just enough Kafka to authenticate a client: ApiVersions,
SaslHandshake and SaslAuthenticate, checking PLAIN or SCRAM (RFC 5802) credentials of one user,
optionally behind TLS. The embedded broker has no working SASL (BROKER.md), so this is where a
real aiokafka connection proves that stockflow's settings reach the wire intact."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
from types import TracebackType
from typing import Any

from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    ApiVersionResponse_v1,
    SaslAuthenticateResponse_v0,
    SaslAuthenticateResponse_v1,
    SaslHandShakeResponse_v0,
    SaslHandShakeResponse_v1,
)

__all__ = ["FakeSaslBroker"]

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
SASL_AUTHENTICATION_FAILED = 58
ITERATIONS = 4096


class FakeSaslBroker:
    """``authenticated`` lists the users that proved their password; ``peer_certificates`` the
    client certificates seen (mutual TLS)."""

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.mechanism = mechanism
        self.username = username
        self.password = password
        self.ssl_context = ssl_context
        self.authenticated: list[str] = []
        self.failures: list[str] = []
        self.peer_certificates: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> FakeSaslBroker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        if peer:
            self.peer_certificates.append(peer)
        scram: dict[str, str] = {}
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                data = await reader.readexactly(size)
                api_key, version, correlation_id = struct.unpack(">hhi", data[:8])
                (client_id_length,) = struct.unpack(">h", data[8:10])
                body = data[10 + max(client_id_length, 0) :]
                response = self._answer(api_key, version, body, scram)
                frame = struct.pack(">i", correlation_id) + response
                writer.write(struct.pack(">i", len(frame)) + frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, api_key: int, version: int, body: bytes, scram: dict[str, str]) -> bytes:
        if api_key == API_VERSIONS:
            versions = [(API_VERSIONS, 0, 2), (SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 1)]
            if version == 0:
                return bytes(ApiVersionResponse_v0(0, versions).encode())
            return bytes(ApiVersionResponse_v1(0, versions, 0).encode())
        if api_key == SASL_HANDSHAKE:
            (length,) = struct.unpack(">h", body[:2])
            asked = body[2 : 2 + length].decode()
            error = 0 if asked == self.mechanism else 33  # UNSUPPORTED_SASL_MECHANISM
            handshake = SaslHandShakeResponse_v1 if version else SaslHandShakeResponse_v0
            return bytes(handshake(error, [self.mechanism]).encode())
        if api_key == SASL_AUTHENTICATE:
            (length,) = struct.unpack(">i", body[:4])
            token = body[4 : 4 + length]
            error, message, reply = self._authenticate(token, scram)
            if version == 0:
                return bytes(SaslAuthenticateResponse_v0(error, message, reply).encode())
            return bytes(SaslAuthenticateResponse_v1(error, message, reply, 0).encode())
        raise ConnectionError(f"unexpected api key {api_key}")

    def _authenticate(self, token: bytes, scram: dict[str, str]) -> tuple[int, str, bytes]:
        if self.mechanism == "PLAIN":
            _, user, password = token.decode().split("\0")
            return self._verdict(user, password == self.password, b"")
        hash_name = self.mechanism.removeprefix("SCRAM-").replace("-", "").lower()
        message = token.decode()
        if "first" not in scram:  # client-first: "n,,n=user,r=nonce"
            bare = message.removeprefix("n,,")
            fields = dict(part.split("=", 1) for part in bare.split(","))
            salt = base64.b64encode(os.urandom(16)).decode()
            server_first = f"r={fields['r']}{os.urandom(8).hex()},s={salt},i={ITERATIONS}"
            scram.update(first=bare, server_first=server_first, user=fields["n"], salt=salt)
            return 0, "", server_first.encode()
        without_proof, _, proof = message.rpartition(",p=")
        auth_message = f"{scram['first']},{scram['server_first']},{without_proof}".encode()
        salted = hashlib.pbkdf2_hmac(
            hash_name, self.password.encode(), base64.b64decode(scram["salt"]), ITERATIONS
        )
        client_key = hmac.digest(salted, b"Client Key", hash_name)
        stored_key = hashlib.new(hash_name, client_key).digest()
        signature = hmac.digest(stored_key, auth_message, hash_name)
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        ok = hmac.compare_digest(base64.b64decode(proof), expected)
        server_key = hmac.digest(salted, b"Server Key", hash_name)
        server_signature = base64.b64encode(hmac.digest(server_key, auth_message, hash_name))
        return self._verdict(scram["user"], ok, b"v=" + server_signature)

    def _verdict(self, user: str, ok: bool, reply: bytes) -> tuple[int, str, bytes]:
        if ok and user == self.username:
            self.authenticated.append(user)
            return 0, "", reply
        self.failures.append(user)
        return SASL_AUTHENTICATION_FAILED, "authentication failed", b""
