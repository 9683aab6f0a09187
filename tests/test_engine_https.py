"""The OpenAI engine over HTTPS: a hosted endpoint or a TLS-terminating proxy in front of vLLM.

The fake server presents a certificate for 127.0.0.1 signed by nobody the system trusts; the engine trusts it
only when told to, the way a user points it at a private CA (SSL_CERT_FILE, which Python's default context reads).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.test_engine_openai import Reply, engine_threads, engines, failure, fakes, request, result
from tir_harness.engines.base import EngineError

__all__ = ["engines", "fakes"]  # fixtures shared with test_engine_openai.py


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tir-harness test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_requests_over_https_to_a_trusted_certificate(fakes, engines, tls, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    fake = fakes(tls=tls, respond=lambda body: Reply(text=f"tls:{body['prompt']}"))
    assert fake.url.startswith("https://")
    before = set(threading.enumerate())
    engine = engines([fake.url], max_inflight_per_server=64)
    futures = [engine.submit(request(f"p{i}")) for i in range(200)]
    assert sorted(result(f).text for f in futures) == sorted(f"tls:p{i}" for i in range(200))
    assert engine_threads(before) == 1  # TLS too: one event loop, not a thread per connection
    assert len(fake.bodies) == 200


def test_an_untrusted_certificate_is_a_one_line_error_naming_the_url(fakes, engines, tls, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    fake = fakes(tls=tls)
    engine = engines([fake.url])
    with pytest.raises(EngineError) as caught:
        engine.check()
    message = str(caught.value)
    assert "\n" not in message and fake.url in message and "self-signed certificate" in message, message
    assert "SSL_CERT_FILE" in message  # what to do about it
    assert fake.bodies == []  # nothing was sent to a server whose identity is unproven
    assert "certificate" in failure(engine.submit(request("p")))


def test_plain_http_to_an_https_server_fails_in_one_line(fakes, engines, tls):
    fake = fakes(tls=tls)
    engine = engines([fake.url.replace("https://", "http://")])
    with pytest.raises(EngineError) as caught:
        engine.check()
    assert "\n" not in str(caught.value), caught.value
