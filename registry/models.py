"""The registry: governed assets (models, prompts, datasets), their immutable versions, evaluations,
lineage, and the stages that versions are placed in."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from core.validators import name_validator


class AssetKind(models.TextChoices):
    MODEL = "model", "Model"
    PROMPT = "prompt", "Prompt"
    DATASET = "dataset", "Dataset"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Relation(models.TextChoices):
    DERIVED_FROM = "derived_from", "Derived from"
    TRAINED_ON = "trained_on", "Trained on"
    EVALUATED_ON = "evaluated_on", "Evaluated on"
    USES_PROMPT = "uses_prompt", "Uses prompt"
    USES_MODEL = "uses_model", "Uses model"
    FINE_TUNED_FROM = "fine_tuned_from", "Fine-tuned from"


class Asset(models.Model):
    """A governed thing: a model, a prompt or a dataset. Archived, never deleted."""

    kind = models.CharField(max_length=10, choices=AssetKind.choices)
    name = models.CharField(max_length=100, validators=[name_validator])
    description = models.TextField(blank=True)
    team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="assets")
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    tags = models.JSONField(default=list, blank=True)
    # The highest version number handed out; bumped under the asset's row lock so numbers never gap
    # or repeat.
    latest_version_number = models.PositiveIntegerField(default=0)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="asset_unique_kind_name"),
        ]
        indexes = [models.Index(fields=["kind", "risk_tier"], name="asset_kind_risk")]
        permissions = [
            ("contribute_asset", "Register versions, evaluations and lineage; set unprotected stages"),
            ("request_promotion_asset", "Request promotions"),
            ("review_asset", "Review promotions"),
            ("manage_asset", "Edit the asset, its policies and its grants"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class AssetVersion(models.Model):
    """One immutable version of an asset. Only description and tags may change after creation."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    digest = models.CharField(max_length=71)
    uri = models.CharField(max_length=1000, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # commit, ref, run_url … of the run that produced the version (the API calls it "source")
    origin = models.JSONField(default=dict, blank=True)
    # model
    framework = models.CharField(max_length=100, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(default=dict, blank=True)
    model_card = models.TextField(blank=True)
    # prompt
    template = models.TextField(blank=True)
    variables = models.JSONField(default=list, blank=True)
    model_config = models.JSONField(default=dict, blank=True)
    commit_message = models.CharField(max_length=500, blank=True)
    # dataset
    row_count = models.PositiveBigIntegerField(null=True, blank=True)
    schema = models.JSONField(default=dict, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "number"], name="version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.asset}@{self.number}"


class Evaluation(models.Model):
    """Results attached to a version after it was registered (append-only)."""

    version = models.ForeignKey(AssetVersion, on_delete=models.PROTECT, related_name="evaluations")
    name = models.CharField(max_length=100)
    dataset_version = models.ForeignKey(
        AssetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    metrics = models.JSONField(default=dict)
    details = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["version", "-id"], name="evaluation_version_latest")]

    def __str__(self) -> str:
        return f"{self.name} of {self.version}"


class LineageEdge(models.Model):
    """parent → child: the child version was made from, trained on, or uses the parent version."""

    parent = models.ForeignKey(AssetVersion, on_delete=models.PROTECT, related_name="child_edges")
    child = models.ForeignKey(AssetVersion, on_delete=models.PROTECT, related_name="parent_edges")
    relation = models.CharField(max_length=30, choices=Relation.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["parent", "child", "relation"], name="lineage_unique_edge"),
            models.CheckConstraint(
                condition=~models.Q(parent=models.F("child")), name="lineage_no_self_edge"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.child} {self.relation} {self.parent}"


class Stage(models.Model):
    """A place a version can be in (staging, production …), in deployment order."""

    name = models.CharField(max_length=50, unique=True, validators=[name_validator])
    order = models.PositiveIntegerField(unique=True)
    protected = models.BooleanField(
        default=False, help_text="Only an approved promotion may set a protected stage."
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["order"]

    def __str__(self) -> str:
        return self.name


class StagePointer(models.Model):
    """Which version of an asset is in a stage now. The hottest read: one indexed lookup."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="stage_pointers")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(AssetVersion, on_delete=models.PROTECT, related_name="+")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "stage"], name="stage_pointer_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} in {self.stage}"


class StageHistory(models.Model):
    """Every move of a stage pointer: from which version to which, by whom, why."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="stage_history")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(AssetVersion, on_delete=models.PROTECT, related_name="+")
    previous_version = models.ForeignKey(
        AssetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    promotion = models.ForeignKey(
        "approvals.PromotionRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=10)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["asset", "stage", "-id"], name="stage_history_latest")]
        verbose_name_plural = "stage history"

    def __str__(self) -> str:
        return f"{self.asset} {self.stage_id}: {self.previous_version_id} → {self.version_id}"


class AssetUserObjectPermission(UserObjectPermissionBase):
    """A role on an asset granted to one person or service account (direct foreign key: fast joins)."""

    content_object = models.ForeignKey(Asset, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        pass


class AssetGroupObjectPermission(GroupObjectPermissionBase):
    """A role on an asset granted to a team."""

    content_object = models.ForeignKey(Asset, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        pass
