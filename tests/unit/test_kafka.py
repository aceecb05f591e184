"""The plain aiokafka clients (audit, client, record, provisioning, tools) get the broker and
its security settings exactly as the worker does, and read without a consumer group."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest
from aiokafka.conn import create_conn
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stockflow import Settings
from stockflow.kafka import bootstrap_servers, client_kwargs, groupless_consumer

from certificates import CA_NAME, CLIENT_NAME, Certificates
from fake_sasl_broker import FakeSaslBroker

USER = "alice"
PASSWORD = "pw-SENTINEL-kafka-91c2"


def secured(tls: Certificates, **overrides: Any) -> Settings:
    return Settings(
        broker="kafka://127.0.0.1:9",
        ssl_cafile=tls.ca,
        ssl_certfile=tls.client_cert,
        ssl_keyfile=tls.client_key,
        sasl_username=USER,
        sasl_password=PASSWORD,
        **overrides,
    )


def test_bootstrap_servers_takes_fausts_form_and_plain_lists() -> None:
    assert bootstrap_servers("kafka://a:9092;kafka://b:9093") == "a:9092,b:9093"
    assert bootstrap_servers("kafka://a:9092/, b:9093") == "a:9092,b:9093"
    assert bootstrap_servers("127.0.0.1:9092") == "127.0.0.1:9092"


def test_plaintext_needs_no_arguments() -> None:
    assert client_kwargs(Settings()) == {}


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SSL", None),
        ("SASL_PLAINTEXT", None),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-256"),
    ],
)
def test_security_arguments_are_the_workers(
    protocol: str, mechanism: str | None, tls: Certificates
) -> None:
    settings = secured(tls, security_protocol=protocol, sasl_mechanism=mechanism)
    ours = client_kwargs(settings)
    workers = dict(credentials_to_aiokafka_auth(settings.faust_kwargs()["broker_credentials"]))
    context, expected_context = ours.pop("ssl_context", None), workers.pop("ssl_context")
    assert ours == workers
    if expected_context is None:
        assert context is None
    else:
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", CA_NAME),),)]


async def test_sasl_over_tls_authenticates_without_printing_the_password(
    tls: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # aiokafka logs every request, SASL tokens included
    settings = secured(tls, security_protocol="SASL_SSL", sasl_mechanism="PLAIN")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
    server.load_cert_chain(str(tls.server_cert), str(tls.server_key))
    server.verify_mode = ssl.CERT_REQUIRED
    async with FakeSaslBroker("PLAIN", USER, PASSWORD, ssl_context=server) as broker:
        kwargs = client_kwargs(settings)
        connection = await create_conn("127.0.0.1", broker.port, request_timeout_ms=5000, **kwargs)
        connection.close()
    assert broker.authenticated == [USER]
    names = [
        dict(p for rdn in c["subject"] for p in rdn)["commonName"] for c in broker.peer_certificates
    ]
    assert names == [CLIENT_NAME]
    assert PASSWORD not in caplog.text


async def test_a_groupless_consumer_never_joins_a_group_nor_commits() -> None:
    consumer = groupless_consumer(
        "127.0.0.1:9", client_kwargs={"request_timeout_ms": 1234}, fetch_max_wait_ms=7
    )
    assert consumer._group_id is None
    assert consumer._enable_auto_commit is False
    assert consumer._client._request_timeout_ms == 1234
    assert consumer._fetch_max_wait_ms == 7
    latest = groupless_consumer("127.0.0.1:9", auto_offset_reset="latest")
    assert consumer._auto_offset_reset == "earliest"
    assert latest._auto_offset_reset == "latest"
