import datetime as dt
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hl7v2_helpers import Client, adt

from adapters.hl7v2 import read_ack


def _cert(subject, issuer_cert, issuer_key, *, ca=False, ip=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


def _write(path, cert, key):
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path.with_suffix(".crt"), path.with_suffix(".key")


@pytest.fixture
def pki(tmp_path):
    ca_cert, ca_key = _cert("test-ca", None, None, ca=True)
    server = _write(tmp_path / "server", *_cert("server", ca_cert, ca_key, ip="127.0.0.1"))
    client = _write(tmp_path / "client", *_cert("client", ca_cert, ca_key))
    ca_path = tmp_path / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_path, server, client


async def test_mutual_tls(make_adapter, pki):
    ca, (server_crt, server_key), (client_crt, client_key) = pki
    adapter = await make_adapter(
        listen={
            "host": "127.0.0.1",
            "port": 0,
            "tls": {"cert": str(server_crt), "key": str(server_key), "ca": str(ca)},
        }
    )
    good = ssl.create_default_context(cafile=str(ca))
    good.load_cert_chain(client_crt, client_key)
    client = Client(adapter.listener_port, ssl_context=good)
    assert read_ack(await client.send(adt("TLS1"))).code == "AA"
    await client.close()
    anonymous = Client(
        adapter.listener_port, ssl_context=ssl.create_default_context(cafile=str(ca))
    )
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, EOFError)):
        await anonymous.send(adt("TLS2"), 3)
    await anonymous.close()
