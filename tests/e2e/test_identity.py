"""The bot's own identity with a certificate credential."""

from __future__ import annotations

from pathlib import Path

import trustme

from bot.azure.identity import TokenSource, token_claims
from fakes.cloud import LEAST_PRIVILEGE, FakeCloud


def test_a_certificate_credential_gets_tokens_by_client_assertion(cloud: FakeCloud, tmp_path: Path) -> None:
    """AZURE_CLIENT_CERTIFICATE_PATH (key and certificate in one PEM) signs a client assertion
    instead of sending a secret; the token carries the app's roles."""
    client_id = "0b07b07b-0000-4000-8000-0000000000ce"
    cloud.entra.register_client(client_id, None, LEAST_PRIVILEGE)
    issued = trustme.CA().issue_cert("oauth-bot.example", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "bot.pem"
    pem.write_bytes(issued.private_key_pem.bytes() + b"".join(c.bytes() for c in issued.cert_chain_pems))
    settings = cloud.settings(
        f"sqlite:///{tmp_path / 'x.db'}",
        azure_client_id=client_id,
        azure_client_secret=None,
        azure_client_certificate_path=str(pem),
    )
    tokens = TokenSource(settings)
    token = tokens.token(tokens.graph_scope).token
    assert token_claims(token)["roles"] == LEAST_PRIVILEGE
    sent = [c.form() for c in cloud.entra.token_requests() if c.form().get("client_id") == client_id][-1]
    assert "client_secret" not in sent
    assert sent["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
