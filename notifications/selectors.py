"""Who is told what: the people an e-mail about a promotion or an asset may go to, each query filtered to
active people (never service accounts or auditors) with an e-mail address who have not turned the kind off.

Nobody is ever told about an asset they cannot see: reviewers and managers hold a role on it (which lets
them see it), and anyone else (a requester, a subscription's creator) is checked with registry's visibility.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from accounts.models import GlobalRole
from approvals.models import PromotionRequest, Review
from core.compiled import CompiledQuery
from registry.models import Asset, AssetGroupObjectPermission, AssetUserObjectPermission
from registry.permissions import CODENAMES, Role, restrict_few

from .models import Kind, NotificationSettings


def _people(kind: Kind) -> QuerySet:
    """Active people with an address who want e-mails of this kind (no settings row: every kind)."""
    off = NotificationSettings.objects.filter(**{kind.value: False}).values("user_id")
    return (
        get_user_model()
        .objects.filter(is_active=True, is_service_account=False)
        .exclude(global_role=GlobalRole.AUDITOR)  # an auditor's grants count as view only: never a reviewer
        .exclude(email="")
        .exclude(pk__in=off)
    )


def _holders(asset_id: int, role: Role) -> Q:
    """People granted role on the asset explicitly, directly or through a team (no global role counts)."""
    codename = CODENAMES[role]
    direct = AssetUserObjectPermission.objects.filter(
        content_object_id=asset_id, permission__codename=codename
    )
    teams = AssetGroupObjectPermission.objects.filter(
        content_object_id=asset_id, permission__codename=codename
    )
    members = get_user_model().groups.through.objects.filter(group_id__in=teams.values("group_id"))
    return Q(pk__in=direct.values("user_id")) | Q(pk__in=members.values("user_id"))


def managers(*, asset_id: int, kind: Kind) -> list:
    """The asset's managers (the manage role granted on it, directly or through a team)."""
    return list(_people(kind).filter(_holders(asset_id, Role.MANAGE)).order_by("pk"))


def reviewers_to_tell(asset_id: int | None, action: str = ""):
    """The people who could be told that a promotion of the asset waits for review: a superset of
    eligible_reviewers for any request of it (the same people and grants, before the request's own rules).
    What audit.services.on_record asks before the review-request listener runs (`wanted`): on PostgreSQL,
    a request nobody could be told of costs no query of this app."""
    return _people(Kind.REVIEW_REQUESTED).filter(_holders(asset_id, Role.REVIEW))


def _eligible_query(*, kind: Kind, asset_id, requester_id, promotion_id, author_id=None, **teams):
    """eligible_reviewers' query: author_id when the version's author may not review, teams (team_0, …)
    when the policy names reviewer teams."""
    people = _people(kind).filter(_holders(asset_id, Role.REVIEW)).exclude(pk=requester_id)
    if author_id is not None:
        people = people.exclude(pk=author_id)
    if teams:
        in_teams = get_user_model().groups.through.objects.filter(group_id__in=list(teams.values()))
        people = people.filter(pk__in=in_teams.values("user_id"))
    reviewed = Review.objects.filter(promotion_id=promotion_id).values("reviewer_id")
    return people.exclude(pk__in=reviewed).order_by("pk")


# Asked for every review request that someone could be told of: its SQL compiled once per shape (the kind,
# whether the author is left out, how many teams), which costs more than running it.
_ELIGIBLE = CompiledQuery(_eligible_query)


def eligible_reviewers(*, promotion: PromotionRequest, requirements: dict, kind: Kind) -> list:
    """The people who may review the request now (the rules of approvals.requirements.review_refusal, as one
    query): an explicit review grant, from the policy's reviewer teams when it names some, not the requester,
    not the version's author unless the policy lets authors approve, and not someone who has reviewed it."""
    values = {
        "asset_id": promotion.asset_id,
        "requester_id": promotion.requested_by_id,
        "promotion_id": promotion.pk,
    }
    if not requirements.get("allow_author_approval") and promotion.version.created_by_id:
        values["author_id"] = promotion.version.created_by_id
    teams = requirements.get("reviewer_teams") or []
    values |= {f"team_{index}": team for index, team in enumerate(teams)}
    if None in values.values():  # no requester (an account deleted since): the query as it reads
        return list(_eligible_query(kind=kind, **values))
    shape = (str(kind), "author_id" in values, len(teams))
    return _ELIGIBLE.objects(shape, {"kind": kind}, **values)


def person_if_allowed(*, user_id: int | None, asset_id: int | None, kind: Kind):
    """The account as a recipient of this kind, or None: a person (not a service account) who wants it,
    has an address, and may see the asset (when there is one)."""
    if user_id is None:
        return None
    person = _people(kind).filter(pk=user_id).first()
    if person is None or asset_id is None:
        return person
    return person if restrict_few(Asset.objects.filter(pk=asset_id), person).exists() else None


def person_named(*, username: str, asset_id: int | None, kind: Kind):
    """person_if_allowed for an account known by its username (as a webhook subscription records it)."""
    user_id = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
    return person_if_allowed(user_id=user_id, asset_id=asset_id, kind=kind)


def settings_for(user) -> NotificationSettings:
    """user's settings as they stand (an unsaved row with every kind on when they never changed them)."""
    return NotificationSettings.objects.filter(user=user).first() or NotificationSettings(user=user)
