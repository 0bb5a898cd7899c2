"""The unmodified MLflow client (mlflow-skinny) registers, resolves and promotes through the registry."""

import threading

import pytest
from django.contrib.auth.models import Permission
from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException

from accounts.models import Scope
from approvals.services import promotion_approve, promotion_request
from audit.models import AuditEvent
from core.source import Source
from registry.content import DIGEST_NOT_GIVEN
from registry.models import Asset, AssetKind, AssetVersion, LineageEdge, Stage, StageHistory
from tests.factories import (
    AssetFactory,
    PolicyFactory,
    TeamFactory,
    TokenFactory,
    UserFactory,
    VersionFactory,
    grant,
)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DIGEST = "sha256:" + "ab" * 32


def _token(user, *scopes):
    return TokenFactory(account=user, scopes=list(scopes or (Scope.READ, Scope.WRITE))).token


@pytest.fixture
def maker(db):
    """A person who may create assets, with a read-write token."""
    person = UserFactory(username="mara")
    person.user_permissions.add(
        Permission.objects.get(content_type__app_label="registry", codename="add_asset")
    )
    person.token = _token(person)
    return person


def _join_client_threads():
    """The client tags a prompt with its experiment on a thread of its own: wait for it."""
    for thread in threading.enumerate():
        if thread.name.startswith("link_prompt_to_experiment_thread"):
            thread.join(timeout=30)


def _events(**filters):
    return AuditEvent.objects.filter(**filters)


def test_a_model_is_created_registered_searched_and_read(mlflow_client, maker):
    client = mlflow_client(maker.token)
    before = AuditEvent.objects.count()

    model = client.create_registered_model("churn", tags={"team": "growth"}, description="Churn model")
    assert (model.name, model.description, model.tags) == ("churn", "Churn model", {"team": "growth"})
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("seq")
    assert (event.action, event.source) == ("asset.created", "mlflow")

    with_digest = client.create_model_version(
        "churn",
        "s3://bucket/churn/1",
        run_id="abc123",
        run_link="https://mlflow.example.test/#/runs/abc123",
        tags={"digest": DIGEST, "framework": "sklearn"},
    )
    assert AuditEvent.objects.count() == before + 2
    assert (with_digest.version, with_digest.source, with_digest.run_id) == (
        "1",
        "s3://bucket/churn/1",
        "abc123",
    )
    assert with_digest.tags == {"digest": DIGEST, "framework": "sklearn"}
    assert isinstance(with_digest.creation_timestamp, int) and with_digest.creation_timestamp > 10**12

    without = client.create_model_version("churn", "s3://bucket/churn/2")
    assert without.tags == {"digest": DIGEST_NOT_GIVEN}
    assert AuditEvent.objects.count() == before + 3
    stored = AssetVersion.objects.get(asset__name="churn", number=1)
    assert (stored.digest, stored.uri, stored.tags) == (DIGEST, "s3://bucket/churn/1", ["framework=sklearn"])
    assert stored.origin == {
        "mlflow_run_id": "abc123",
        "run_url": "https://mlflow.example.test/#/runs/abc123",
    }
    assert AssetVersion.objects.get(asset__name="churn", number=2).digest == DIGEST_NOT_GIVEN
    assert list(_events(action="version.created").order_by("seq").values_list("source", flat=True)) == [
        "mlflow",
        "mlflow",
    ]

    found = client.search_model_versions("name='churn'")
    assert sorted(v.version for v in found) == ["1", "2"]
    assert [v.version for v in client.search_model_versions("run_id = 'abc123'")] == ["1"]
    assert client.get_model_version("churn", "2").source == "s3://bucket/churn/2"
    assert client.get_model_version_download_uri("churn", "1") == "s3://bucket/churn/1"

    read = client.get_registered_model("churn")
    assert (read.name, read.description, read.tags) == ("churn", "Churn model", {"team": "growth"})
    assert [m.name for m in client.search_registered_models("name LIKE 'chu%'")] == ["churn"]
    assert client.search_registered_models("name = 'other'") == []
    assert AuditEvent.objects.count() == before + 3  # reads write nothing


def test_staging_alias_moves_the_stage_and_production_needs_a_promotion(mlflow_client, maker):
    client = mlflow_client(maker.token)
    client.create_registered_model("churn")
    for number in (1, 2):
        client.create_model_version(
            "churn", f"s3://b/{number}", tags={"digest": "sha256:" + f"{number}" * 64}
        )
    before = AuditEvent.objects.count()

    client.set_registered_model_alias("churn", "staging", "2")
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("seq")
    assert (event.action, event.source) == ("stage.set", "mlflow")
    assert StageHistory.objects.get(asset__name="churn", stage__name="staging").source == "mlflow"
    by_alias = client.get_model_version_by_alias("churn", "staging")
    assert (by_alias.version, by_alias.aliases, by_alias.current_stage) == ("2", ["staging"], "Staging")
    assert client.get_registered_model("churn").aliases == {"staging": "2"}

    client.set_registered_model_alias("churn", "staging", "2")  # already there: no change, no event
    assert AuditEvent.objects.count() == before + 1

    with pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias("churn", "production", "2")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert refused.value.get_http_status_code() == 403
    assert "only through an approved promotion" in refused.value.message
    assert "POST /api/v1/promotions" in refused.value.message
    assert "/promotions/new/model/churn/" in refused.value.message
    with pytest.raises(MlflowException) as refused:
        client.transition_model_version_stage("churn", "2", "Production")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert AuditEvent.objects.count() == before + 1

    with pytest.raises(MlflowException) as missing:
        client.get_model_version_by_alias("churn", "production")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # An approved promotion, through the registry's own services; then the alias answers it.
    asset = Asset.objects.get(name="churn")
    reviewer = UserFactory(username="rita")
    grant(reviewer, asset, "review")
    grant(maker, asset, "request_promotion")
    PolicyFactory(asset=asset)
    promotion = promotion_request(
        actor=maker,
        source=Source.cli(),
        asset=asset,
        version=asset.versions.get(number=2),
        stage=Stage.objects.get(name="production"),
        justification="better",
    )
    promotion_approve(actor=reviewer, source=Source.cli(), promotion_id=promotion.pk)
    promoted = client.get_model_version_by_alias("churn", "production")
    assert (promoted.version, promoted.current_stage) == ("2", "Production")
    assert sorted(promoted.aliases) == ["production", "staging"]

    moved = client.transition_model_version_stage("churn", "1", "Staging")
    assert (moved.version, moved.current_stage) == ("1", "Staging")
    assert [v.version for v in client.get_latest_versions("churn", stages=["Production"])] == ["2"]


def test_a_version_without_digest_is_refused_by_the_digest_gate(mlflow_client, maker):
    from core.exceptions import Unprocessable

    client = mlflow_client(maker.token)
    client.create_registered_model("churn")
    client.create_model_version("churn", "s3://b/1")
    asset = Asset.objects.get(name="churn")
    PolicyFactory(asset=asset, gates=[{"type": "digest"}])
    grant(maker, asset, "request_promotion")
    with pytest.raises(Unprocessable) as refused:
        promotion_request(
            actor=maker,
            source=Source.cli(),
            asset=asset,
            version=asset.versions.get(number=1),
            stage=Stage.objects.get(name="production"),
            justification="x",
        )
    assert "digest is given: the version was registered without a digest" in str(refused.value.extra)


def test_prompts_register_load_alias_and_search(mlflow_client, maker):
    import mlflow

    mlflow_client(maker.token)
    before = AuditEvent.objects.count()
    first = mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}!", commit_message="first")
    _join_client_threads()
    second = mlflow.genai.register_prompt(name="greeting", template="Hi {{name}}, welcome.")
    _join_client_threads()
    assert (first.version, second.version) == (1, 2)
    # The prompt, its versions, and the client's own tag naming the experiment (set in the background, once:
    # the second time it changes nothing): every write leaves exactly one audit event.
    assert sorted(_events(seq__gt=before).values_list("action", flat=True)) == [
        "asset.created",
        "asset.updated",
        "version.created",
        "version.created",
    ]
    assert set(_events(seq__gt=before).values_list("source", flat=True)) == {"mlflow"}
    asset = Asset.objects.get(name="greeting")
    assert asset.kind == AssetKind.PROMPT
    stored = asset.versions.get(number=2)
    assert (stored.template, stored.variables) == ("Hi {{name}}, welcome.", ["name"])
    assert stored.digest.startswith("sha256:")

    loaded = mlflow.genai.load_prompt("prompts:/greeting/2")
    assert loaded.template == "Hi {{name}}, welcome."
    assert loaded.format(name="Ada") == "Hi Ada, welcome."
    assert mlflow.genai.load_prompt("prompts:/greeting/1").commit_message == "first"

    mlflow.genai.set_prompt_alias("greeting", alias="staging", version=1)
    assert mlflow.genai.load_prompt("prompts:/greeting@staging").template == "Hello {{name}}!"
    with pytest.raises(MlflowException) as refused:
        mlflow.genai.set_prompt_alias("greeting", alias="production", version=2)
    assert refused.value.error_code == "PERMISSION_DENIED"

    assert [p.name for p in mlflow.genai.search_prompts()] == ["greeting"]
    assert [m.name for m in mlflow_client(maker.token).search_registered_models()] == []  # models only


def test_a_viewer_cannot_create_a_version_and_an_invisible_model_is_a_missing_one(mlflow_client, maker):
    asset = AssetFactory(name="fraud")
    VersionFactory(asset=asset)
    viewer = UserFactory(username="vera")
    grant(viewer, asset, "view")
    outsider = UserFactory(username="olly")
    before = AuditEvent.objects.count()

    client = mlflow_client(_token(viewer))
    assert client.get_registered_model("fraud").name == "fraud"
    with pytest.raises(MlflowException) as refused:
        client.create_model_version("fraud", "s3://b/2", tags={"digest": DIGEST})
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert AssetVersion.objects.filter(asset=asset).count() == 1

    client = mlflow_client(_token(outsider))
    answers = []
    for name in ("fraud", "no-such-model"):
        with pytest.raises(MlflowException) as invisible:
            client.get_registered_model(name)
        answers.append((invisible.value.error_code, invisible.value.message.replace(name, "NAME")))
        with pytest.raises(MlflowException) as invisible:
            client.create_model_version(name, "s3://b/x")
        answers.append((invisible.value.error_code, invisible.value.message.replace(name, "NAME")))
        with pytest.raises(MlflowException) as invisible:
            client.get_model_version_by_alias(name, "staging")
        answers.append((invisible.value.error_code, invisible.value.message.replace(name, "NAME")))
    assert answers[:3] == answers[3:]
    assert {code for code, _ in answers} == {"RESOURCE_DOES_NOT_EXIST"}
    assert AuditEvent.objects.count() == before


def test_a_read_only_token_reads_but_cannot_write(mlflow_client, maker):
    mlflow_client(maker.token).create_registered_model("churn")
    client = mlflow_client(_token(maker, Scope.READ))
    assert client.get_registered_model("churn").name == "churn"
    assert client.get_latest_versions("churn") == []  # POST, but a read
    with pytest.raises(MlflowException) as refused:
        client.create_model_version("churn", "s3://b/1")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "write" in refused.value.message


def test_dataset_tag_adds_lineage_and_deleting_a_version_is_refused(mlflow_client, maker):
    dataset = AssetFactory(kind=AssetKind.DATASET, name="transactions")
    VersionFactory(asset=dataset, uri="s3://d/1")
    grant(maker, dataset, "view")
    client = mlflow_client(maker.token)
    client.create_registered_model("churn")
    client.create_model_version("churn", "s3://b/1", tags={"dataset:transactions@1": ""})
    edge = LineageEdge.objects.get()
    assert (str(edge.parent), str(edge.child), edge.relation) == (
        "dataset/transactions@1",
        "model/churn@1",
        "trained_on",
    )
    with pytest.raises(MlflowException) as unknown:
        client.create_model_version("churn", "s3://b/2", tags={"dataset:transactions@9": ""})
    assert unknown.value.error_code == "INVALID_PARAMETER_VALUE"

    before = AuditEvent.objects.count()
    with pytest.raises(MlflowException) as refused:
        client.delete_model_version("churn", "1")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "immutable" in refused.value.message
    with pytest.raises(MlflowException) as refused:
        client.delete_registered_model("churn")
    assert "archives assets and never deletes" in refused.value.message
    assert AuditEvent.objects.count() == before

    client.set_model_version_tag("churn", "1", "reviewed", "yes")
    client.update_model_version("churn", "1", description="first cut")
    version = client.get_model_version("churn", "1")
    assert (version.tags["reviewed"], version.description) == ("yes", "first cut")
    client.delete_model_version_tag("churn", "1", "reviewed")
    assert "reviewed" not in client.get_model_version("churn", "1").tags
    assert AuditEvent.objects.count() == before + 3


def test_team_members_see_through_their_team(mlflow_client, maker):
    asset = AssetFactory(name="fraud")
    team = TeamFactory(name="risk")
    grant(team, asset, "contribute")
    member = UserFactory(username="tim")
    member.groups.add(team)
    client = mlflow_client(_token(member))
    version = client.create_model_version("fraud", "s3://b/1", tags=None)
    assert version.version == "1"
    client.set_model_version_tag("fraud", "1", ModelVersionTag("k", "v").key, "v")
