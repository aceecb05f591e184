"""Issue 7, security: SASL and TLS settings reach aiokafka exactly, and the password is never
printed.

The embedded broker has no working SASL and no TLS (BROKER.md), so the client side is checked
three ways: the arguments Faust's own conversion hands to aiokafka, the aiokafka clients Faust
builds for the worker, and a real aiokafka connection authenticating (and, for SSL, completing
a mutual TLS handshake) against :class:`FakeSaslBroker`, which checks the password.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.conn import create_conn
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stockflow import ConfigurationError, Settings, create_app
from stockflow.testing import free_port

from certificates import CA_NAME, CLIENT_NAME, Certificates
from fake_sasl_broker import FakeSaslBroker

USER = "alice"
PASSWORD = "pw-SENTINEL-7f3a9c"  # unique, so that a leak anywhere is found by grep
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_PROTOCOLS = ["SASL_PLAINTEXT", "SASL_SSL"]


def make_settings(**overrides: Any) -> Settings:
    return Settings(broker="kafka://127.0.0.1:9", store="memory://", web_enabled=False, **overrides)


def client_auth(app: Any) -> dict[str, Any]:
    """What Faust passes to every aiokafka client of the app."""
    return dict(credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context))


async def faust_clients(app: Any) -> list[Any]:
    """The aiokafka clients of the worker's consumer and of the producer, built by Faust (not
    started), for their security configuration."""
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    producer = app.producer._new_producer()
    clients = [consumer._client, producer.client]
    await consumer.stop()
    await producer.stop()
    return clients


def security_of(client: Any) -> dict[str, Any]:
    names = ["security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"]
    return {name: getattr(client, f"_{name}") for name in names}


def tls_settings(files: Certificates) -> dict[str, Path]:
    return {
        "ssl_cafile": files.ca,
        "ssl_certfile": files.client_cert,
        "ssl_keyfile": files.client_key,
    }


def server_tls(files: Certificates) -> ssl.SSLContext:
    """The broker's side: its certificate, and client certificates required (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    context.load_cert_chain(str(files.server_cert), str(files.server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def assert_verifies_with_the_ca(context: ssl.SSLContext) -> None:
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", CA_NAME),),)]


def client_names(broker: FakeSaslBroker) -> list[str]:
    """Common names of the client certificates the broker saw."""
    return [
        dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]
        for cert in broker.peer_certificates
    ]


# --- SASL --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", SASL_PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_sasl_settings_reach_the_aiokafka_clients_exactly(
    mechanism: str, protocol: str, tls: Certificates
) -> None:
    # TLS files are given in both cases: the protocol, not their presence, decides on TLS.
    settings = make_settings(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
        **tls_settings(tls),
    )
    app = create_app(settings)
    auth = client_auth(app)
    context = auth.pop("ssl_context")
    expected = {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }
    assert auth == expected
    if protocol == "SASL_SSL":
        assert_verifies_with_the_ca(context)
    else:
        assert context is None
    for client in await faust_clients(app):
        assert security_of(client) == expected
        assert client._ssl_context is context


@pytest.mark.parametrize("protocol", SASL_PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_sasl_credentials_authenticate_on_the_wire(
    mechanism: str, protocol: str, tls: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # aiokafka logs every request it sends at DEBUG
    settings = make_settings(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
        **tls_settings(tls),
    )
    auth = client_auth(create_app(settings))
    broker_tls = server_tls(tls) if protocol == "SASL_SSL" else None
    async with FakeSaslBroker(mechanism, USER, PASSWORD, ssl_context=broker_tls) as broker:
        connection = await create_conn("127.0.0.1", broker.port, request_timeout_ms=5000, **auth)
        connection.close()
    assert broker.authenticated == [USER]
    assert client_names(broker) == ([CLIENT_NAME] if protocol == "SASL_SSL" else [])
    assert f"Authenticated as {USER} via {mechanism}" in caplog.text
    assert PASSWORD not in caplog.text


async def test_a_wrong_password_is_refused_by_the_fake_broker() -> None:
    """The wire test has teeth: the fake broker really checks the SCRAM proof."""
    settings = make_settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password="not-the-password",
    )
    auth = client_auth(create_app(settings))
    async with FakeSaslBroker("SCRAM-SHA-512", USER, PASSWORD) as broker:
        with pytest.raises(Exception, match="authentication failed"):
            await create_conn("127.0.0.1", broker.port, request_timeout_ms=5000, **auth)
    assert broker.authenticated == []
    assert broker.failures == [USER]


# --- TLS ---------------------------------------------------------------------------------------


async def test_tls_settings_reach_the_client_and_complete_a_mutual_handshake(
    tls: Certificates,
) -> None:
    app = create_app(make_settings(security_protocol="SSL", **tls_settings(tls)))
    auth = client_auth(app)
    assert set(auth) == {"security_protocol", "ssl_context"}
    assert auth["security_protocol"] == "SSL"
    context = auth["ssl_context"]
    assert_verifies_with_the_ca(context)
    for client in await faust_clients(app):
        assert client._security_protocol == "SSL"
        assert client._ssl_context is context
    # The client verifies the server against the CA and presents its certificate and key.
    async with FakeSaslBroker("PLAIN", USER, PASSWORD, ssl_context=server_tls(tls)) as broker:
        connection = await create_conn("127.0.0.1", broker.port, request_timeout_ms=5000, **auth)
        connection.close()
    assert client_names(broker) == [CLIENT_NAME]
    assert broker.authenticated == []  # TLS only, no SASL


async def test_tls_without_the_ca_file_does_not_trust_the_broker(tls: Certificates) -> None:
    settings = make_settings(
        security_protocol="SSL", ssl_certfile=tls.client_cert, ssl_keyfile=tls.client_key
    )
    auth = client_auth(create_app(settings))
    async with FakeSaslBroker("PLAIN", USER, PASSWORD, ssl_context=server_tls(tls)) as broker:
        with pytest.raises(ssl.SSLCertVerificationError):
            await create_conn("127.0.0.1", broker.port, request_timeout_ms=5000, **auth)
    assert client_names(broker) == []


def test_plaintext_by_default() -> None:
    app = create_app(make_settings(sasl_username=USER, sasl_password=PASSWORD))
    assert app.conf.broker_credentials is None
    assert client_auth(app) == {"security_protocol": "PLAINTEXT"}


# --- never printed -----------------------------------------------------------------------------


def test_the_password_is_never_printed(tls: Certificates, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=PASSWORD,
        **tls_settings(tls),
    )
    app = create_app(settings)
    with pytest.raises(ConfigurationError) as invalid:
        make_settings(sasl_password=PASSWORD, partitions=0)
    shown = [
        repr(settings),
        str(settings),
        repr(settings.model_dump()),
        str(settings.model_dump(mode="json")),
        settings.model_dump_json(),
        repr(app.conf.broker_credentials),
        str(invalid.value),
        caplog.text,
    ]
    assert not [text for text in shown if PASSWORD in text]
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == PASSWORD  # still there for the client


@pytest.mark.integration
async def test_a_debug_logging_worker_authenticates_without_printing_the_password(
    tmp_path: Path,
) -> None:
    """``faust -A stockflow worker -l debug``, SASL PLAIN: Faust's banner, Faust's and aiokafka's
    debug logs (which print every request sent, SASL tokens included) hold no password."""
    log_path = tmp_path / "worker.log"
    async with FakeSaslBroker("PLAIN", USER, PASSWORD) as broker:
        env = {
            **os.environ,
            "STOCKFLOW_BROKER": f"kafka://127.0.0.1:{broker.port}",
            "STOCKFLOW_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "STOCKFLOW_SASL_MECHANISM": "PLAIN",
            "STOCKFLOW_SASL_USERNAME": USER,
            "STOCKFLOW_SASL_PASSWORD": PASSWORD,
            "STOCKFLOW_STORE": "memory://",
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "faust", "-A", "stockflow", "--datadir", str(tmp_path),
                   "worker", "-l", "debug", "--web-port", str(free_port()),
                   "--web-host", "127.0.0.1"]  # fmt: skip
        with open(log_path, "wb") as log:
            worker = await asyncio.create_subprocess_exec(
                *command, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        try:
            async with asyncio.timeout(30):
                while not broker.authenticated and worker.returncode is None:
                    await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(worker.wait(), 15)
            except TimeoutError:
                worker.kill()
                await worker.wait()
    text = log_path.read_text(errors="replace")
    assert broker.authenticated, text[-3000:]
    assert f"Authenticated as {USER} via PLAIN" in text
    assert "SaslAuthenticateRequest(<redacted>)" in text  # aiokafka's DEBUG line, redacted
    assert PASSWORD not in text


def test_rocksdb_memory_caps_reach_every_table_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faust's defaults (3 x 64 MiB write buffers, a 2 GiB cache per partition database) made a
    # restore of 1,000,000 products peak at 730 MiB; the caps must reach the store, not only
    # the settings object.
    monkeypatch.setenv("STOCKFLOW_ROCKSDB_WRITE_BUFFER_SIZE", str(4 * 1024 * 1024))
    settings = Settings(
        broker="kafka://127.0.0.1:9", store="rocksdb://", datadir=tmp_path, web_enabled=False
    )
    assert settings.rocksdb_max_write_buffers == 2
    assert settings.rocksdb_block_cache_size == 32 * 1024 * 1024
    app = create_app(settings)
    tables = list(app.tables.values())
    assert len(tables) == 2
    for table in tables:
        options = table.data.rocksdb_options
        assert options.write_buffer_size == 4 * 1024 * 1024
        assert options.max_write_buffer_number == 2
        assert options.block_cache_size == 32 * 1024 * 1024
        assert options.bloom_filter_size == 10
        # A second store built from the same table (Faust does) sees the same caps.
        again = table._new_store()
        assert again.rocksdb_options.write_buffer_size == 4 * 1024 * 1024


def test_rocksdb_caps_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        Settings(rocksdb_write_buffer_size=1024)
    with pytest.raises(ConfigurationError):
        Settings(rocksdb_max_write_buffers=1)


def test_heartbeats_are_at_most_a_third_of_the_session() -> None:
    # A worker processes only while its last heartbeat answered is younger than half the
    # session timeout: slower heartbeats would hold it between every two of them.
    assert Settings(session_timeout=3.0, heartbeat_interval=1.0).heartbeat_interval == 1.0
    with pytest.raises(ConfigurationError, match="heartbeat_interval"):
        Settings(session_timeout=6.0, heartbeat_interval=2.5)
