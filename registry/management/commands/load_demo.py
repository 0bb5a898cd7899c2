"""Load demonstration data: models, a prompt, datasets, versions, evaluations, lineage and stages.

Idempotent: running it again changes nothing. All changes go through the services, so the demo
data has its audit trail like any other change.
"""

import hashlib
import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from core.source import Source
from registry import services
from registry.models import Asset, AssetKind, Relation, RiskTier, Stage, StagePointer
from registry.services import VersionRef

ADMIN_USERNAME = "admin"
DEFAULT_ADMIN_PASSWORD = "admin-demo-password"


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
            ({"auc": 0.91, "precision": 0.82, "recall": 0.71}, {"max_depth": 6, "n_estimators": 300}, 1),
            ({"auc": 0.93, "precision": 0.85, "recall": 0.74}, {"max_depth": 8, "n_estimators": 400}, 2),
            ({"auc": 0.94, "precision": 0.86, "recall": 0.77}, {"max_depth": 8, "n_estimators": 600}, 2),
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
        admin = self._admin()
        team, _ = Group.objects.get_or_create(name="ml-platform")
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
        self._staging(admin, source, "fraud-detector", 3)
        self._staging(admin, source, "churn-predictor", 2)
        password = os.environ.get("DEMO_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
        self.stdout.write(f"Demo data ready. Admin login: {ADMIN_USERNAME} / {password}")

    def _admin(self):
        User = get_user_model()
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            password = os.environ.get("DEMO_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
            with transaction.atomic():
                admin = User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
        return admin

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

    def _staging(self, admin, source, name, number) -> None:
        asset = Asset.objects.get(kind=AssetKind.MODEL, name=name)
        stage = Stage.objects.get(name="staging")
        if not StagePointer.objects.filter(asset=asset, stage=stage).exists():
            services.stage_set(
                actor=admin,
                source=source,
                asset=asset,
                stage=stage,
                version=asset.versions.get(number=number),
                reason="demo data",
            )
