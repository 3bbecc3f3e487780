"""Alembic migrations of oauth-bot's database (run them with `oauth-bot migrate`; see bot/schema.py)."""
