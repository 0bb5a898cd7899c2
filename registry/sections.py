"""Parts of the asset and version pages that apps above registry contribute (approvals: the asset's
promotions, and a link to request a promotion of a version). registry never imports those apps (the layers in
pyproject.toml): they register providers here in their AppConfig.ready(), and the pages render what each
provider gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VersionAction:
    """A link shown on every version row of the asset page: `url` + "?version=<number>"."""

    label: str
    url: str


@dataclass(frozen=True)
class AssetSection:
    """A block of the asset page: its template, rendered with `section` (this object) in its context;
    `link` (label, url), when given, is listed among the page's links."""

    template: str
    context: dict = field(default_factory=dict)
    link: tuple[str, str] | None = None


# section provider(request=..., asset=..., roles=...) -> AssetSection | None (None: nothing for this user);
# action provider(asset=..., roles=...) -> VersionAction | None, without reading the database.
_section_providers: list[Callable[..., AssetSection | None]] = []
_action_providers: list[Callable[..., VersionAction | None]] = []


def register_asset_section(provider: Callable[..., AssetSection | None]) -> None:
    """Add a provider of a block of the asset page (once, however often an app's ready() runs)."""
    if provider not in _section_providers:
        _section_providers.append(provider)


def register_version_action(provider: Callable[..., VersionAction | None]) -> None:
    """Add a provider of a link offered for each version (on the asset page's rows and the version page)."""
    if provider not in _action_providers:
        _action_providers.append(provider)


def asset_sections(*, request, asset, roles: set) -> list[AssetSection]:
    """What every registered provider contributes for this user and asset, in registration order."""
    sections = (provider(request=request, asset=asset, roles=roles) for provider in _section_providers)
    return [section for section in sections if section is not None]


def version_actions(*, asset, roles: set) -> list[VersionAction]:
    """The links every registered provider offers this user for the versions of asset."""
    actions = (provider(asset=asset, roles=roles) for provider in _action_providers)
    return [action for action in actions if action is not None]
