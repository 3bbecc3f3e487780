"""The rules of a federated credential's fields (bot.core.validation), one message per field."""

from __future__ import annotations

import pytest

from bot.core.errors import ValidationError
from bot.core.model import FEDERATED_AUDIENCE, GITHUB_ISSUER, Workload
from bot.core.workloads import credential_name_from, validate_federated


def _errors(workload: Workload, **values: str) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_federated(workload, values)
    return caught.value.fields


@pytest.mark.parametrize(
    ("values", "subject"),
    [
        (
            {"github_repository": "contoso/api", "github_entity": "branch", "github_ref": "main"},
            "repo:contoso/api:ref:refs/heads/main",
        ),
        (
            {
                "github_repository": "contoso/api",
                "github_entity": "branch",
                "github_ref": "refs/heads/release/2.x",
            },
            "repo:contoso/api:ref:refs/heads/release/2.x",
        ),
        (
            {
                "github_repository": "https://github.com/contoso/api/",
                "github_entity": "tag",
                "github_ref": "v1.0.0",
            },
            "repo:contoso/api:ref:refs/tags/v1.0.0",
        ),
        (
            {
                "github_repository": "contoso/api",
                "github_entity": "environment",
                "github_ref": "Production EU",
            },
            "repo:contoso/api:environment:Production EU",
        ),
        (
            {"github_repository": "contoso@59/my.repo_1@7001", "github_entity": "pull_request"},
            "repo:contoso@59/my.repo_1@7001:pull_request",
        ),
    ],
)
def test_github_subjects(values: dict[str, str], subject: str) -> None:
    """GitHub's subject for each entity type, its immutable owner@id/repo@id form, refs/… prefixes
    accepted; the issuer is GitHub's and the one audience Entra's."""
    spec = validate_federated(Workload.GITHUB, values)
    assert (spec.issuer, spec.subject, spec.audiences) == (GITHUB_ISSUER, subject, (FEDERATED_AUDIENCE,))
    assert spec.workload == Workload.GITHUB


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"github_repository": "contoso", "github_ref": "main"}, "github_repository"),
        ({"github_repository": "con--toso-/api", "github_ref": "main"}, "github_repository"),
        ({"github_repository": "contoso/..", "github_ref": "main"}, "github_repository"),
        (
            {"github_repository": "contoso@12/api", "github_ref": "main"},
            "github_repository",
        ),  # both ids or none
        ({"github_repository": "contoso/*", "github_ref": "main"}, "github_repository"),
        ({"github_repository": "contoso/api", "github_ref": ""}, "github_ref"),
        ({"github_repository": "contoso/api", "github_ref": "feature/*"}, "github_ref"),
        ({"github_repository": "contoso/api", "github_ref": "a b"}, "github_ref"),
        ({"github_repository": "contoso/api", "github_ref": "x.lock"}, "github_ref"),
        ({"github_repository": "contoso/api", "github_ref": "ma\ud800in"}, "github_ref"),
        (
            {"github_repository": "contoso/api", "github_entity": "environment", "github_ref": "e" * 256},
            "github_ref",
        ),
        ({"github_repository": "contoso/api", "github_entity": "commit", "github_ref": "x"}, "github_entity"),
    ],
)
def test_github_rules(values: dict[str, str], field: str) -> None:
    assert field in _errors(Workload.GITHUB, **values)


def test_kubernetes_subject_and_rules() -> None:
    """system:serviceaccount:NS:SA; the issuer is https and exact; names are DNS names."""
    issuer = "https://oidc.prod-aks.azure.com/t/c/"
    spec = validate_federated(
        Workload.KUBERNETES,
        {"k8s_issuer": issuer, "k8s_namespace": "ops", "k8s_service_account": "runner.v2"},
    )
    assert (spec.issuer, spec.subject, spec.workload) == (
        issuer,
        "system:serviceaccount:ops:runner.v2",
        Workload.KUBERNETES,
    )
    errors = _errors(
        Workload.KUBERNETES,
        k8s_issuer="https://user@host/",
        k8s_namespace="a" * 64,
        k8s_service_account="Runner",
    )
    assert set(errors) == {"k8s_issuer", "k8s_namespace", "k8s_service_account"}
    assert (
        "query"
        in _errors(
            Workload.KUBERNETES, k8s_issuer="https://x/?a=1", k8s_namespace="a", k8s_service_account="b"
        )["k8s_issuer"]
    )


def test_other_issuer_and_the_credential_name() -> None:
    """Any https issuer and exact subject; the name defaults from the workload, else 3 to 120
    URL-safe characters starting with a letter or digit; the description at most 600."""
    spec = validate_federated(
        Workload.OTHER, {"oidc_issuer": "https://idp.example.com", "oidc_subject": "svc:42"}
    )
    assert spec.name == "idp-example-com-svc-42" and spec.workload == Workload.OTHER
    named = validate_federated(
        Workload.OTHER,
        {"oidc_issuer": "https://idp.example.com", "oidc_subject": "s", "credential_name": "My_cred-1"},
    )
    assert named.name == "My_cred-1"
    for bad in ("ab", "_abc", "a" * 121, "has space", "dot.ted"):
        assert "credential_name" in _errors(
            Workload.OTHER, oidc_issuer="https://i.example", oidc_subject="s", credential_name=bad
        )
    errors = _errors(
        Workload.OTHER, oidc_issuer="ftp://i.example", oidc_subject="a*", credential_description="d" * 601
    )
    assert set(errors) == {"oidc_issuer", "oidc_subject", "credential_description"}


def test_default_names_are_always_valid() -> None:
    assert credential_name_from("!!") == "oauth-bot"
    assert credential_name_from("-a.b:c/d-") == "a-b-c-d"
    assert len(credential_name_from("x" * 300)) == 120
