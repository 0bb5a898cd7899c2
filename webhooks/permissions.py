"""Who may subscribe to what, and who may see and change a subscription.

- An admin may subscribe to every asset (asset None) or to any one; a manager of an asset (registry's manage
  role) to that asset only; anyone else is refused (403; an asset they cannot see is a 404 before this).
- A subscription is seen by its creator, by admins, and by the managers of its asset.
- It is changed (and redelivered) by admins and the managers of its asset (its creator is one of them while
  it keeps the role); its creator may always delete it.
"""

from __future__ import annotations

from accounts.permissions import is_admin
from core.exceptions import Forbidden
from registry.models import Asset
from registry.permissions import Role, effective_roles, require_admin


def require_subscriber(actor, asset: Asset | None) -> None:
    """Raise Forbidden unless actor may subscribe to asset's events (None: every asset's)."""
    if actor is None:
        return
    if asset is None:
        if not is_admin(actor):
            raise Forbidden(
                "Only a registry admin may subscribe to every asset; name an asset you manage.",
                type="permission-denied",
            )
        return
    if Role.MANAGE not in effective_roles(actor, asset):
        raise Forbidden(
            f"You need the 'manage' role on {asset} to subscribe to its events.", type="permission-denied"
        )


def require_editor(actor, subscription) -> None:
    """Raise Forbidden unless actor may change the subscription (or redeliver its messages)."""
    if actor is None:
        return
    if subscription.asset_id is None:
        require_admin(actor)
    elif Role.MANAGE not in effective_roles(actor, subscription.asset):
        raise Forbidden(
            f"You need the 'manage' role on {subscription.asset} to change its webhooks.",
            type="permission-denied",
        )


def require_deleter(actor, subscription) -> None:
    """Its creator may always delete it; otherwise as require_editor."""
    if actor is not None and subscription.created_by_id == actor.pk:
        return
    require_editor(actor, subscription)
