"""A throwaway certificate authority for the loopback fakes."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import trustme


class TestCA:
    """A CA whose certificate is written to a PEM file the clients are told to trust."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path | None = None) -> None:
        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._dir = directory or Path(tempfile.mkdtemp(prefix="oauth-bot-ca-"))
        self.bundle_path = self._dir / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.bundle_path))

    def server_context(self, *extra_hosts: str) -> ssl.SSLContext:
        """A server context with a certificate for 127.0.0.1 and localhost (and `extra_hosts`,
        e.g. another loopback address, in a certificate issued for them)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate = self._server_cert
        if extra_hosts:
            certificate = self._ca.issue_cert("127.0.0.1", "localhost", *extra_hosts)
        certificate.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context
