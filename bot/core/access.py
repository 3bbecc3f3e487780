"""Who may do what: the one place every command, button and list asks.

`resolve_app` finds the app a person names (client ID or display name) among the ones
oauth-bot manages; `authorize` says whether they may see or manage it. An owner is an owner of
record (the requester of the app) or, when the bot may read users, an Entra owner of the app.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from bot.config import Settings
from bot.core.errors import NotAllowed, NotFound, ValidationError
from bot.core.model import ManagedApp, Request
from bot.core.ports import Directory, Repository

USER_READ_ROLE = "User.Read.All"


class AppAction(enum.StrEnum):
    VIEW = "view"  # /oauth-app show, /oauth-secret list
    MANAGE = "manage"  # rotate, retire, remove


def is_admin(settings: Settings, user_id: str) -> bool:
    return user_id in settings.admins


def check_can_decide(settings: Settings, user_id: str, request: Request) -> None:
    """Only an admin may approve or deny, and never their own request."""
    if not is_admin(settings, user_id):
        raise NotAllowed("Only the oauth-bot admins can approve or deny requests.")
    if request.requester_id == user_id:
        raise NotAllowed("You cannot approve or deny your own request; another admin has to.")


class Access:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        directory: Directory,
        email_of: Callable[[str], str | None],
        granted_roles: Callable[[], set[str]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self._email_of = email_of
        self._granted_roles = granted_roles

    def is_admin(self, user_id: str) -> bool:
        return is_admin(self.settings, user_id)

    def resolve_app(self, target: str) -> ManagedApp:
        """The app the bot manages with this client ID or display name."""
        target = target.strip()
        if not target:
            raise ValidationError({"target": "Name the app: its client ID or its name."})
        app = self.store.managed_app(target)
        if app is not None:
            return app
        named = self.store.managed_apps_named(target)
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            ids = ", ".join(a.client_id for a in named)
            raise ValidationError({"target": f"Several apps are named {target!r}; use a client ID: {ids}."})
        raise NotFound(
            f"oauth-bot does not manage an app with client ID or name {target!r}: it only shows, and "
            "only rotates secrets of the app registrations it created; ask an identity admin for others."
        )

    def is_owner(self, app: ManagedApp, user_id: str) -> bool:
        """An owner of record, or (when the bot may read users) an Entra owner of the app."""
        if any(o.slack_user_id == user_id for o in self.store.owners(app.client_id)):
            return True
        if USER_READ_ROLE not in self._granted_roles():
            return False
        email = self._email_of(user_id)
        entra_id = self.directory.find_user(email) if email else None
        return bool(entra_id) and entra_id in self.directory.list_owners(app.object_id)

    def authorize(self, app: ManagedApp, user_id: str, action: AppAction) -> None:
        """Admins may do anything to any app the bot manages; owners to theirs."""
        if self.is_admin(user_id) or self.is_owner(app, user_id):
            return
        if action == AppAction.VIEW:  # not even whether it exists
            raise NotFound("You are not an owner of that app, and only its owners and the admins can see it.")
        raise NotAllowed(
            f"Only the owners of {app.display_name} and the oauth-bot admins can manage its secrets."
        )

    def find(self, user_id: str, target: str, action: AppAction) -> ManagedApp:
        """resolve_app + authorize."""
        app = self.resolve_app(target)
        self.authorize(app, user_id, action)
        return app
