"""Loopback HTTPS fakes of Slack, Entra ID, Microsoft Graph, Azure Key Vault and Azure Resource
Manager (role assignments).

They are real servers on 127.0.0.1 speaking the documented wire protocols, strict about
what they accept. The test suite and `oauth-bot demo` point the production clients at
them through the ordinary configuration (SLACK_API_URL, AZURE_AUTHORITY_HOST, GRAPH_URL,
KEY_VAULT_URL, AZURE_RESOURCE_MANAGER_URL, SSL_CERT_FILE / REQUESTS_CA_BUNDLE).
"""
