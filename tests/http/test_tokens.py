"""Access tokens with asymmetric keys: RS256 and EdDSA sign with a private key and
check with the public one; each accepts only its own algorithm."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from sensorium.config import AuthSettings
from sensorium.errors import ConfigError
from sensorium.http import AccessTokens, InvalidAccessToken
from sensorium.storage import User

USER = User(id=42, tenant_id=7, email="a@b.c", role="operator")


def _keys(tmp_path: Path, algorithm: str) -> AuthSettings:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    private_file, public_file = tmp_path / f"{algorithm}.key", tmp_path / f"{algorithm}.pub"
    private_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return AuthSettings(
        jwt_algorithm=algorithm,  # type: ignore[arg-type]
        jwt_private_key_file=private_file,
        jwt_public_key_file=public_file,
    )


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_asymmetric_tokens_round_trip_and_refuse_other_algorithms(
    tmp_path: Path, algorithm: str
) -> None:
    tokens = AccessTokens(_keys(tmp_path, algorithm))
    token = tokens.issue(USER)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    principal = tokens.verify(token)
    assert (principal.user_id, principal.tenant_id, principal.role) == (42, 7, "operator")
    # HS256 keyed with our own public key: the classic confusion, refused.
    public = (tmp_path / f"{algorithm}.pub").read_bytes()

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    claims = jwt.decode(token, options={"verify_signature": False})
    head = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    forged = (head + b"." + b64(hmac.new(public, head, hashlib.sha256).digest())).decode()
    with pytest.raises(InvalidAccessToken):
        tokens.verify(forged)
    (tmp_path / "other").mkdir()
    other = AccessTokens(_keys(tmp_path / "other", algorithm))  # another key pair
    with pytest.raises(InvalidAccessToken):
        other.verify(token)


def test_missing_keys_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        AccessTokens(AuthSettings())
    with pytest.raises(ConfigError, match="PRIVATE_KEY_FILE"):
        AccessTokens(AuthSettings(jwt_algorithm="RS256"))
