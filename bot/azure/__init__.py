"""Everything that speaks Azure's wire formats: MSAL identity, Microsoft Graph over httpx with its
one retry layer, Key Vault, and the token-endpoint check of a new secret. May import bot.core and
bot.config; nothing here knows Slack or the database."""
