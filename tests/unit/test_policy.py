"""Validation of the new-app form and the rules for deciding."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Settings
from bot.core.access import check_can_decide
from bot.core.errors import NotAllowed, ValidationError
from bot.core.model import Kind, Request
from bot.core.validation import validate_new_app


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, oauth_bot_admins="UADMIN1,UADMIN2", **values)  # type: ignore[call-arg]


def form(**overrides: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "billing-api",
        "audience": "AzureADMyOrg",
        "redirect_uri": None,
        "platform": "web",
        "secret_description": "CI",
        "secret_days": "180",
        "justification": "Billing calls Graph",
    }
    values.update(overrides)
    return values


def errors_for(**overrides: str | None) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_new_app(settings(), **form(**overrides))
    return caught.value.fields


def test_a_complete_form_is_accepted_with_its_values() -> None:
    """A valid form comes back as typed input, redirect platform only when a URI is given."""
    data = validate_new_app(settings(), **form(redirect_uri="https://app.example.com/cb", platform="spa"))
    assert data.display_name == "billing-api"
    assert data.redirect_uri == "https://app.example.com/cb"
    assert data.redirect_platform == "spa"
    assert data.secret_days == 180
    assert validate_new_app(settings(), **form()).redirect_platform is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [("", "Enter a name"), ("   ", "Enter a name"), ("x" * 121, "at most 120"), ("a\nb", "line breaks")],
)
def test_bad_names_get_a_field_error(name: str, expected: str) -> None:
    """Empty, over-long and multi-line names are refused on the name field."""
    assert expected in errors_for(name=name)["name"]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("example.com/cb", "absolute URL"),
        ("ftp://example.com/cb", "absolute URL"),
        ("http://example.com/cb", "only for localhost"),
        ("https://*.example.com/cb", "Wildcards"),
        ("https://example.com/cb#x", "fragment"),
        ("https://exa mple.com", "spaces"),
        ("https://example.com/" + "a" * 260, "at most 256"),
        ("https://example.com/" + "a" * 237, "at most 256"),  # 257 characters
        ("http://[::1]:8080/cb", "only for localhost and 127.0.0.1"),
        ("http://localhost.evil.example/cb", "only for localhost"),
        ("https://app.example.com/cb#", "fragment"),
    ],
)
def test_bad_redirect_uris_get_a_field_error(uri: str, expected: str) -> None:
    """Redirect URIs must be absolute https (http only for localhost and 127.0.0.1, not [::1]),
    with no wildcard, no fragment and at most 256 characters, as Entra requires."""
    assert expected in errors_for(redirect_uri=uri)["redirect_uri"]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # A browser reads \ as /: it goes to evil.example, while urlsplit sees host localhost.
        ("http://evil.example\\@localhost/cb", "backslash"),
        ("https://app.example.com\\.evil.example/cb", "backslash"),
        ("https://app.example.com/auth\\callback", "backslash"),
        # Userinfo: the host is what follows the @.
        ("https://app.example.com@evil.example/cb", "user name or password"),
        ("http://evil.example@localhost/cb", "user name or password"),
        ("https://user:pass@app.example.com/cb", "user name or password"),
        # Look-alike hosts: Cyrillic o, fullwidth letters (a browser maps them to localhost),
        # a host hidden in %-escapes.
        ("https://app.ex\u0430mple.com/cb", "plain ASCII"),
        ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/cb", "plain ASCII"),
        ("https://m\u00fcnchen.example/cb", "xn--"),
        ("https://evil%2Eexample/cb", "only letters, digits, hyphens and dots"),
    ],
)
def test_redirect_uris_that_a_browser_reads_differently_get_a_specific_field_error(
    uri: str, expected: str
) -> None:
    """A backslash anywhere, userinfo before the host, and a host that is not plain ASCII (raw
    non-ASCII look-alikes, %-escapes) are refused, each with a message that says which rule."""
    assert expected in errors_for(redirect_uri=uri)["redirect_uri"]


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "https://app.example.com/a?b=c",
        "https://xn--mnchen-3ya.example/cb",  # an international domain name in its ASCII form
        "https://app.example.com:8443/auth/callback?next=%2Fhome",
        "https://example.com/" + "a" * 236,  # exactly 256 characters
    ],
)
def test_localhost_http_and_https_redirect_uris_are_accepted(uri: str) -> None:
    """http:// is fine for localhost; https:// anywhere, with IDNA-encoded hosts, ports and
    queries, up to 256 characters."""
    assert validate_new_app(settings(), **form(redirect_uri=uri)).redirect_uri == uri


def test_a_lifetime_over_the_maximum_names_the_maximum() -> None:
    """A forged lifetime above policy is refused with the allowed maximum in the message."""
    assert "365 days (12 months)" in errors_for(secret_days="730")["secret_expiry"]
    assert "listed" in errors_for(secret_days="100")["secret_expiry"]
    assert "listed" in errors_for(secret_days="soon")["secret_expiry"]


def test_lifetime_choices_are_capped_by_the_configured_maximum() -> None:
    """The modal only offers what the policy allows; the maximum itself is always offered."""
    assert settings(oauth_bot_max_secret_days=200).secret_lifetime_choices == (90, 180, 200)
    assert settings(oauth_bot_max_secret_days=730).secret_lifetime_choices == (90, 180, 365, 545, 730)


def test_several_bad_fields_are_reported_together() -> None:
    """Every bad field gets its own message in one answer."""
    fields = errors_for(name="", justification="  ", audience="Everyone")
    assert set(fields) == {"name", "justification", "audience"}


def _request(requester: str) -> Request:
    return Request(
        id=1,
        kind=Kind.NEW_APP,
        requester_id=requester,
        display_name="billing-api",
        sign_in_audience="AzureADMyOrg",
        secret_description="Created by oauth-bot",
        secret_days=180,
        justification="Reads invoices.",
    )


def test_only_admins_decide_and_never_on_their_own_request() -> None:
    """A non-admin and an admin deciding their own request are refused with a clear reason."""
    with pytest.raises(NotAllowed, match="Only the oauth-bot admins"):
        check_can_decide(settings(), "UDEV", _request("UOTHER"))
    with pytest.raises(NotAllowed, match="your own request"):
        check_can_decide(settings(), "UADMIN1", _request("UADMIN1"))
    check_can_decide(settings(), "UADMIN2", _request("UADMIN1"))
