"""The gateway over TLS: the client trusts a private CA and refuses plaintext fallbacks."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fhir.resources.R4B.patient import Patient

import his_sdk
from his_sdk.config import ServerSettings
from his_sdk.server import Gateway
from tests.conftest import GatewayThread


def _certificate(subject: str, issuer_key, public_key, issuer_name=None, *, ca=False, ip=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, ca_key.public_key(), ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", ca_key, key.public_key(), ca.subject, ip="127.0.0.1")
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path


def test_tls_gateway_serves_clients_that_trust_its_ca(settings, adapter, mint, pki):
    tls_settings = settings.model_copy(
        update={
            "server": ServerSettings(
                port=0, grace_seconds=0, tls_cert=pki / "server.pem", tls_key=pki / "server.key"
            )
        }
    )
    token = mint("system/Patient.rs", roles=("system",))
    with GatewayThread(Gateway(tls_settings, adapters=[("memory", adapter)])) as gw:
        target = f"127.0.0.1:{gw.port}"
        tls = his_sdk.TlsConfig.from_files(ca=pki / "ca.pem")
        with his_sdk.HisClient.connect(target, token=token, tls=tls, timeout=10) as client:
            assert client.read(Patient, "p1").id == "p1"
        with his_sdk.HisClient.connect(target, token=token, timeout=3) as plaintext:
            with pytest.raises(his_sdk.HisError):
                plaintext.read(Patient, "p1")
