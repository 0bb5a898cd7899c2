"""Who may change policies, for pages deciding which buttons to offer. The services check the same rule
(approvals.services.policies): this only avoids offering what would be refused."""

from __future__ import annotations

from accounts.permissions import is_admin
from registry.models import Asset
from registry.permissions import Role, effective_roles


def may_edit_policy(user, asset: Asset | None) -> bool:
    """A policy for one asset: its managers (admins manage every asset); for many assets: registry admins."""
    if asset is None:
        return is_admin(user)
    return Role.MANAGE in effective_roles(user, asset)
