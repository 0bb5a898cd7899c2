"""Load demonstration data: personas, models, a prompt, datasets, versions, evaluations, lineage, stages.

Idempotent: running it again changes nothing (except that a lost demo CI token is replaced). All
changes go through the services, so the demo data has its audit trail like any other change.

Personas (password: "<username>-demo-password"): admin (registry admin), owner (creates and manages
the demo assets), reviewer1 and reviewer2 (team "reviewers", review role on every demo asset), viewer
(view role), auditor (global auditor). The service account ci-bot (team "ml-platform", which
contributes to every demo asset) also requests promotions; its token is printed.

Production needs two approvals from the reviewers team, of a version that has been in staging; the
high-risk fraud-detector also needs an AUC of at least 0.92 on its latest evaluation (a policy of its own).
churn-predictor v2 and fraud-detector v2 went through and serve production; fraud-detector v3 waits for its
reviews, so its promotion page compares it with v2, in production today.
"""

import hashlib
import os

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from accounts import services as account_services
from accounts.models import ApiToken, GlobalRole, Scope, User
from approvals.models import Policy, PromotionRequest
from approvals.services import policy_create, promotion_approve, promotion_request
from core.source import Source
from registry import services
from registry.models import Asset, AssetKind, Relation, RiskTier, Stage, StageHistory
from registry.permissions import Role, granted_roles
from registry.services import VersionRef

ADMIN_USERNAME = "admin"
DEFAULT_ADMIN_PASSWORD = "admin-demo-password"
PEOPLE = {
    "admin": GlobalRole.ADMIN,
    "owner": GlobalRole.NONE,
    "reviewer1": GlobalRole.NONE,
    "reviewer2": GlobalRole.NONE,
    "viewer": GlobalRole.NONE,
    "auditor": GlobalRole.AUDITOR,
}
CI_ACCOUNT = "ci-bot"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


DATASETS = {
    "transactions": [
        {"row_count": 1_200_000, "schema": {"amount": "decimal", "merchant": "string", "label": "bool"}},
        {"row_count": 1_450_000, "schema": {"amount": "decimal", "merchant": "string", "label": "bool"}},
    ],
    "customers": [{"row_count": 310_000, "schema": {"customer_id": "string", "churned": "bool"}}],
}
MODELS = {
    "fraud-detector": {
        "risk_tier": RiskTier.HIGH,
        "trained_on": "transactions",
        "versions": [
            (
                {"auc": 0.91, "precision": 0.82, "recall": 0.71, "latency_ms": 14},
                {"max_depth": 6, "n_estimators": 300},
                1,
            ),
            (
                {"auc": 0.93, "precision": 0.85, "recall": 0.74, "latency_ms": 12},
                {"max_depth": 8, "n_estimators": 400},
                2,
            ),
            # v3: better AUC, recall and latency, a little less precision: a trade-off for the reviewers.
            (
                {"auc": 0.94, "precision": 0.84, "recall": 0.79, "latency_ms": 11},
                {"max_depth": 8, "n_estimators": 600},
                2,
            ),
        ],
    },
    "churn-predictor": {
        "risk_tier": RiskTier.MEDIUM,
        "trained_on": "customers",
        "versions": [
            ({"auc": 0.84, "f1": 0.61}, {"C": 1.0, "penalty": "l2"}, 1),
            ({"auc": 0.86, "f1": 0.64}, {"C": 0.5, "penalty": "l2"}, 1),
        ],
    },
}
PROMPT_VERSIONS = [
    ("You are a support agent. Answer {{question}} politely.", {"model": "gpt-4o", "temperature": 0.2}),
    (
        "You are a support agent for {{product}}. Answer {{question}} politely and briefly.",
        {"model": "gpt-4o", "temperature": 0.2},
    ),
    (
        "You are a support agent for {{product}}. Answer {{question}} politely and briefly.\n"
        "If unsure, say so and offer to escalate.",
        {"model": "gpt-4o-mini", "temperature": 0.1},
    ),
]


class Command(BaseCommand):
    help = "Load demonstration data (idempotent) and make sure the admin login exists."

    def handle(self, *args, **options):
        source = Source.cli()
        people = self._people(source)
        admin, owner = people["admin"], people["owner"]
        team, _ = Group.objects.get_or_create(name="ml-platform")
        reviewers, _ = Group.objects.get_or_create(name="reviewers")
        for reviewer in ("reviewer1", "reviewer2"):
            if not people[reviewer].groups.filter(pk=reviewers.pk).exists():
                account_services.team_member_add(
                    actor=None, source=source, team=reviewers, user=people[reviewer]
                )
        ci = User.objects.filter(username=CI_ACCOUNT).first() or account_services.service_account_create(
            actor=admin, source=source, name=CI_ACCOUNT, team=team
        )
        self._load_assets(owner, source, team)
        for asset in Asset.objects.filter(name__in=[*DATASETS, *MODELS, "support-reply"]):
            self._grant(admin, source, asset, reviewers, Role.REVIEW)
            self._grant(admin, source, asset, people["viewer"], Role.VIEW)
            self._grant(admin, source, asset, ci, Role.REQUEST_PROMOTION)
        self._promotions(admin, owner, source, ci, people, reviewers)
        token = self._ci_token(admin, source, ci)
        self.stdout.write(
            "Demo data ready.\n"
            f"  Admin login: {ADMIN_USERNAME} / {self._password(ADMIN_USERNAME)}\n"
            "  Other people: owner, reviewer1, reviewer2, viewer, auditor"
            " (password: <username>-demo-password)\n"
            f"  CI token for {CI_ACCOUNT}: {token}"
        )

    def _load_assets(self, admin, source, team):
        for name, versions in DATASETS.items():
            asset = self._asset(admin, source, AssetKind.DATASET, name, team, RiskTier.MEDIUM)
            for number, spec in enumerate(versions, start=1):
                if asset.latest_version_number < number:
                    services.version_register(
                        actor=admin,
                        source=source,
                        asset=asset,
                        data={
                            "digest": _digest(f"{name}-{number}"),
                            "uri": f"s3://datasets/{name}/v{number}.parquet",
                            **spec,
                        },
                    )
                    asset.refresh_from_db()
        for name, spec in MODELS.items():
            asset = self._asset(admin, source, AssetKind.MODEL, name, team, spec["risk_tier"])
            for number, (metrics, params, data_version) in enumerate(spec["versions"], start=1):
                if asset.latest_version_number >= number:
                    continue
                version = services.version_register(
                    actor=admin,
                    source=source,
                    asset=asset,
                    data={
                        "digest": _digest(f"{name}-{number}"),
                        "uri": f"s3://models/{name}/{number}/model.pkl",
                        "framework": "xgboost",
                        "metrics": metrics,
                        "params": params,
                        "model_card": f"# {name} v{number}\n\nGradient-boosted trees.",
                        "origin": {"commit": hashlib.sha1(f"{name}{number}".encode()).hexdigest()},
                    },
                    lineage=[(Relation.TRAINED_ON, VersionRef("dataset", spec["trained_on"], data_version))],
                )
                services.evaluation_add(
                    actor=admin,
                    source=source,
                    version=version,
                    name="holdout",
                    metrics={key: round(value - 0.01, 4) for key, value in metrics.items()},
                    dataset=VersionRef("dataset", spec["trained_on"], data_version),
                )
                asset.refresh_from_db()
        prompt = self._asset(admin, source, AssetKind.PROMPT, "support-reply", team, RiskTier.LOW)
        for number, (template, config) in enumerate(PROMPT_VERSIONS, start=1):
            if prompt.latest_version_number < number:
                services.version_register(
                    actor=admin,
                    source=source,
                    asset=prompt,
                    data={"template": template, "model_config": config, "commit_message": f"v{number}"},
                )
                prompt.refresh_from_db()

    def _password(self, username: str) -> str:
        if username == ADMIN_USERNAME:
            return os.environ.get("DEMO_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
        return f"{username}-demo-password"

    def _people(self, source) -> dict[str, User]:
        """The demo people; their roles and flags are set through the audited service, like anyone's."""
        people = {}
        for username, role in PEOPLE.items():
            person = User.objects.filter(username=username).first()
            if person is None:
                person = account_services.person_create(
                    actor=None,
                    source=source,
                    username=username,
                    email=f"{username}@example.com",
                    password=self._password(username),
                )
                is_admin = username == ADMIN_USERNAME
                person = account_services.user_update(
                    actor=None,
                    source=source,
                    user=person,
                    global_role=role or "none",
                    is_staff=is_admin,
                    is_superuser=is_admin,
                    can_create_assets=username == "owner",
                )
            people[username] = person
        return people

    def _grant(self, admin, source, asset, principal, role) -> None:
        from registry.models import AssetGroupObjectPermission

        if isinstance(principal, Group):
            held = AssetGroupObjectPermission.objects.filter(
                group=principal, content_object=asset, permission__codename=f"{role}_asset"
            ).exists()
        else:
            held = role in granted_roles(principal, asset)
        if not held:
            services.grant_add(actor=admin, source=source, asset=asset, principal=principal, role=role)

    # Each model's way to production: (version, who approves). A version goes through staging first.
    # fraud-detector v2 is approved and applied, so v3's request has production to be compared with.
    RELEASES = {
        "churn-predictor": [(2, ["reviewer1", "reviewer2"])],
        "fraud-detector": [(2, ["reviewer1", "reviewer2"]), (3, [])],
    }

    def _promotions(self, admin, owner, source, ci, people, reviewers) -> None:
        """The production policies (two approvals from reviewers; fraud-detector: AUC ≥ 0.92 too), then each
        model's releases. A model that has any production request already is left as it is (idempotent)."""
        production = Stage.objects.get(name="production")
        if not Policy.objects.filter(stage=production, asset__isnull=True, kind="").exists():
            policy_create(
                actor=admin,
                source=source,
                stage=production,
                required_approvals=2,
                reviewer_teams=[reviewers],
                gates=[{"type": "previous_stage", "stage": "staging", "when": "ever"}],
            )
        fraud = Asset.objects.get(kind=AssetKind.MODEL, name="fraud-detector")
        if not Policy.objects.filter(stage=production, asset=fraud).exists():
            policy_create(
                actor=admin,
                source=source,
                stage=production,
                asset=fraud,
                required_approvals=2,
                reviewer_teams=[reviewers],
                gates=[
                    {
                        "type": "metric",
                        "metric": "auc",
                        "op": ">=",
                        "value": 0.92,
                        "source": "latest_evaluation",
                    }
                ],
            )
        for name, releases in self.RELEASES.items():
            asset = Asset.objects.get(kind=AssetKind.MODEL, name=name)
            if PromotionRequest.objects.filter(asset=asset, stage=production).exists():
                continue
            for number, approvers in releases:
                version = asset.versions.get(number=number)
                self._staging(owner, source, asset, version)
                promotion = promotion_request(
                    actor=ci,
                    source=source,
                    asset=asset,
                    version=version,
                    stage=production,
                    justification=f"{name} v{number} beats production on the holdout set",
                    ci={
                        "commit": hashlib.sha1(f"{name}{number}".encode()).hexdigest(),
                        "ref": "refs/heads/main",
                    },
                )
                for reviewer in approvers:
                    promotion_approve(
                        actor=people[reviewer], source=source, promotion_id=promotion.pk, comment="LGTM"
                    )

    def _ci_token(self, admin, source, ci) -> str:
        """The demo CI token, kept in var/ so that later runs can print it again.

        Only its hash is in the database; the file is a convenience of the demo, never of production.
        """
        database = str(settings.DATABASES["default"]["NAME"])
        path = settings.VAR_DIR / f"demo-ci-token-{hashlib.sha256(database.encode()).hexdigest()[:8]}"
        if path.exists():
            token = path.read_text().strip()
            record = ApiToken.objects.filter(hashed=ApiToken.hash(token), revoked_at__isnull=True).first()
            if record is not None and not record.is_expired:
                return token
        _, token = account_services.token_create(
            actor=admin,
            source=source,
            account=ci,
            name="demo",
            scopes=[Scope.READ, Scope.WRITE, Scope.PROMOTE],
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n")
        path.chmod(0o600)
        return token

    def _asset(self, admin, source, kind, name, team, risk_tier) -> Asset:
        asset = Asset.objects.filter(kind=kind, name=name).first()
        return asset or services.asset_create(
            actor=admin,
            source=source,
            kind=kind,
            name=name,
            team=team,
            risk_tier=risk_tier,
            description=f"Demo {kind}: {name}.",
        )

    def _staging(self, owner, source, asset, version) -> None:
        """Put version in staging, unless it has been there (production asks for that)."""
        stage = Stage.objects.get(name="staging")
        if not StageHistory.objects.filter(asset=asset, stage=stage, version=version).exists():
            services.stage_set(
                actor=owner, source=source, asset=asset, stage=stage, version=version, reason="demo data"
            )
