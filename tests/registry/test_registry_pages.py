"""Registry pages: wiring and access (allowed 200, invisible 404, wrong method 405, anonymous to sign-in),
what each page shows, escaping and sanitising, and query counts that do not grow with the data."""

import re

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm

from core.source import Source
from registry import lineage_svg, services
from registry.models import (
    AssetKind,
    Evaluation,
    LineageEdge,
    Relation,
    RiskTier,
    Stage,
    StageHistory,
    StagePointer,
)
from tests.factories import AssetFactory, EdgeFactory, PromotionFactory, UserFactory, VersionFactory

pytestmark = pytest.mark.django_db
SRC = Source.cli()

MODEL_CARD = """# Fraud model

Trained on **transactions**.

<script>alert("card")</script>
<img src=x onerror="alert('img')">
[click](javascript:alert('link'))
"""


class Setup:
    """Three people: a viewer of the fraud model, an outsider who sees nothing, and an admin."""

    def __init__(self):
        self.production = Stage.objects.get(name="production")
        self.staging = Stage.objects.get(name="staging")
        self.team = Group.objects.create(name="risk-team")
        self.viewer = UserFactory(username="vera")
        self.outsider = UserFactory(username="olly")
        self.admin = UserFactory(username="ada", global_role="admin")
        self.model = AssetFactory(
            kind=AssetKind.MODEL,
            name="fraud",
            description="Finds **fraud** in payments.",
            team=self.team,
            risk_tier=RiskTier.HIGH,
            tags=["payments", "pii"],
        )
        assign_perm("registry.view_asset", self.viewer, self.model)
        self.v1 = VersionFactory(
            asset=self.model,
            metrics={"auc": 0.90, "latency_ms": 40},
            params={"max_depth": 6, "eta": 0.3},
            model_card="# Fraud\n\nFirst cut.",
            created_by=self.admin,
        )
        self.v2 = VersionFactory(
            asset=self.model,
            metrics={"auc": 0.93, "latency_ms": 55},
            params={"max_depth": 8, "eta": 0.3},
            model_card=MODEL_CARD,
            uri="s3://models/fraud/2/model.pkl",
            origin={"commit": "4e1a2b3c", "ref": "refs/heads/main", "run_url": "https://ci.example/runs/77"},
            signature={"inputs": [{"name": "amount", "type": "double"}]},
            created_by=self.admin,
        )
        self.secret = AssetFactory(kind=AssetKind.MODEL, name="secret-model", description="Top secret.")
        VersionFactory(asset=self.secret)

    def move(self, version, stage, previous=None, promotion=None, reason="because"):
        StagePointer.objects.update_or_create(
            asset=version.asset, stage=stage, defaults={"version": version, "updated_at": timezone.now()}
        )
        return StageHistory.objects.create(
            asset=version.asset,
            stage=stage,
            version=version,
            previous_version=previous,
            reason=reason,
            promotion=promotion,
            actor=self.admin,
            source="web",
            created_at=timezone.now(),
        )

    def promotion(self, version, stage):
        return PromotionFactory(version=version, stage=stage, status="applied", requested_by=self.admin)


@pytest.fixture
def s():
    return Setup()


def get(client, user, url, **params):
    client.force_login(user)
    return client.get(url, params)


def body(response) -> str:
    return response.content.decode()


PAGES = [
    "/registry/",
    "/registry/model/fraud/",
    "/registry/model/fraud/versions/2/",
    "/registry/model/fraud/compare/?a=1&b=2",
]


# Access ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_sign_in(client, s, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/registry/")


@pytest.mark.parametrize("url", PAGES)
def test_post_to_a_page_is_405(client, s, url):
    client.force_login(s.viewer)
    assert client.post(url).status_code == 405


@pytest.mark.parametrize("url", PAGES)
def test_viewer_may_open_every_page(client, s, url):
    assert get(client, s.viewer, url).status_code == 200


@pytest.mark.parametrize("url", PAGES[1:])
def test_invisible_asset_answers_404_like_a_missing_one(client, s, url):
    hidden = get(client, s.outsider, url)
    missing = get(client, s.outsider, url.replace("/fraud/", "/no-such-model/"))
    assert hidden.status_code == missing.status_code == 404

    def page(response):  # the sign-out form's CSRF token is masked afresh on every page
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", body(response))

    assert page(hidden) == page(missing)
    assert get(client, s.viewer, url.replace("/fraud/", "/no-such-model/")).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/registry/prompt/fraud/",  # the same name in another kind does not exist
        "/registry/widget/fraud/",  # not a kind
        "/registry/model/fraud/versions/3/",
        "/registry/model/secret-model/",
        "/registry/model/secret-model/versions/1/",
        "/registry/model/secret-model/compare/",
    ],
)
def test_missing_or_invisible_things_are_404(client, s, url):
    assert get(client, s.viewer, url).status_code == 404


# The asset list -----------------------------------------------------------------------------------


def test_asset_list_shows_only_visible_assets_with_their_stages(client, s):
    s.move(s.v1, s.production)
    s.move(s.v2, s.staging)
    response = get(client, s.viewer, "/registry/")
    html = body(response)
    assert response.status_code == 200
    assert '<a href="/registry/model/fraud/">fraud</a>' in html
    assert "risk-team" in html and "High" in html
    assert "secret-model" not in html
    assert '<th scope="col" class="num">In production</th>' in html
    assert 'href="/registry/model/fraud/versions/1/"' in html  # in production
    assert 'href="/registry/model/fraud/versions/2/"' in html  # in staging and latest
    assert 'aria-current="page">Registry' in html
    assert "css/registry.css" in html


def test_asset_list_admin_sees_everything(client, s):
    html = body(get(client, s.admin, "/registry/"))
    assert "secret-model" in html and "fraud" in html


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"q": "payments"}, True),  # description
        ({"q": "fra"}, True),  # name
        ({"q": "nothing-like-it"}, False),
        ({"kind": "model"}, True),
        ({"kind": "prompt"}, False),
        ({"team": "risk-team"}, True),
        ({"risk_tier": "high"}, True),
        ({"risk_tier": "low"}, False),
        ({"stage": "production"}, True),
        ({"stage": "staging"}, False),
    ],
)
def test_asset_list_filters(client, s, params, shown):
    s.move(s.v1, s.production)
    html = body(get(client, s.admin, "/registry/", **params))
    assert ('href="/registry/model/fraud/"' in html) is shown


def test_asset_list_ignores_an_invalid_filter_and_says_so(client, s):
    response = get(client, s.viewer, "/registry/", kind="widget", q="fraud")
    assert response.status_code == 200
    html = body(response)
    assert "Select a valid choice" in html
    assert 'href="/registry/model/fraud/"' in html


def test_asset_list_team_filter_offers_only_teams_of_visible_assets(client, s):
    hidden_team = Group.objects.create(name="hidden-team")
    AssetFactory(name="other", team=hidden_team)
    html = body(get(client, s.viewer, "/registry/"))
    assert '<option value="risk-team">' in html
    assert "hidden-team" not in html


def test_asset_list_is_paginated(client, s):
    AssetFactory.create_batch(55, kind=AssetKind.DATASET)
    first = body(get(client, s.admin, "/registry/"))
    assert "Page 1 of 2" in first and "57 in all" in first and 'rel="next"' in first
    second = body(get(client, s.admin, "/registry/", page=2, kind="dataset"))
    assert "Page 2 of 2 (55 in all)" in second  # 50 a page; the filter is kept
    assert "55 assets match the filters; showing 51\N{EN DASH}55" in second


def _assets_with_versions(count: int, viewer):
    stage = Stage.objects.get(name="staging")
    for _ in range(count):
        asset = AssetFactory(team=Group.objects.get(name="risk-team"))
        assign_perm("registry.view_asset", viewer, asset)
        version = VersionFactory(asset=asset)
        StagePointer.objects.create(asset=asset, stage=stage, version=version, updated_at=timezone.now())


@pytest.mark.parametrize("count", [3, 30])
def test_asset_list_query_count_does_not_grow(client, s, django_assert_max_num_queries, count):
    _assets_with_versions(count, s.viewer)
    client.force_login(s.viewer)
    # 1 session, 2 user, 3 stages, 4 teams (filter choices), 5 count, 6 page of assets (team joined),
    # 7 their stage pointers with versions (one prefetch), 8 the header's inbox badge. Visibility is a
    # subquery inside 4-6.
    with django_assert_max_num_queries(8):
        response = client.get("/registry/", {"stage": "staging", "team": "risk-team"})
    assert response.status_code == 200
    assert len(re.findall(r'href="/registry/model/asset-\d+/"', body(response))) == count


# The asset page --------------------------------------------------------------------------------


def test_asset_page_shows_the_asset(client, s):
    s.model.archived_at = timezone.now()
    s.model.save()
    s.move(s.v1, s.staging, reason="first <b>try</b>")
    promotion = s.promotion(s.v2, s.production)
    s.move(s.v2, s.production, previous=None, promotion=promotion, reason="approved")
    s.move(s.v2, s.staging, previous=s.v1, reason="newer")
    response = get(client, s.viewer, "/registry/model/fraud/")
    html = body(response)
    assert response.status_code == 200
    assert "<h1>model/fraud</h1>" in html
    assert "Finds <strong>fraud</strong> in payments." in html  # description as Markdown
    assert "risk-team" in html and "High risk" in html
    assert '<li class="badge">payments</li>' in html and '<li class="badge">pii</li>' in html
    assert "Archived" in html
    assert "Your roles</dt><dd>View</dd>" in html
    # versions table: number, short digest, creator, key metrics
    assert f'<code title="{s.v2.digest}">{s.v2.digest[:19]}…</code>' in html
    assert "ada" in html and "auc <strong>0.93</strong>" in html
    # stage history: from → to, who, why, and the promotion it came from
    assert f'href="/promotions/{promotion.pk}/">Promotion #{promotion.pk}</a>' in html
    assert "first &lt;b&gt;try&lt;/b&gt;" in html
    assert (
        'href="/registry/model/fraud/versions/1/">v1</a> → <a href="/registry/model/fraud/versions/2/">v2'
        in html
    )
    assert '<th scope="row">production' in html


def test_asset_page_description_is_sanitised(client, s):
    s.model.description = '# Heading\n\n<script>alert("x")</script><a href="javascript:alert(1)">go</a>'
    s.model.save()
    html = body(get(client, s.viewer, "/registry/model/fraud/"))
    assert "<script>alert" not in html
    assert "javascript:" not in html
    assert "<h3>Heading</h3>" in html  # Markdown headings sit below the section's <h2>


@pytest.mark.parametrize("count", [3, 30])
def test_asset_page_query_count_does_not_grow(client, s, django_assert_max_num_queries, count):
    previous = s.v2
    for _ in range(count):
        version = VersionFactory(asset=s.model, created_by=s.admin)
        s.move(version, s.staging, previous=previous, promotion=s.promotion(version, s.staging))
        previous = version
    client.force_login(s.viewer)
    # 1 session, 2 user, 3 asset (team, creator joined; visibility as a subquery), 4 stage pointers
    # with versions and setters, 5 stages, 6 version count, 7 page of versions (creators joined),
    # 8 history count, 9 page of history (stage, versions, actor joined), 10 the viewer's roles,
    # 11 the metric chart's versions (number and metrics of the latest 50), 12 open promotions,
    # 13 the latest decided promotions (both with version, stage, requester joined), 14 the policies that
    # apply (none here; with some, one more for their reviewer teams), 15 the header's inbox badge.
    with django_assert_max_num_queries(15):
        response = client.get("/registry/model/fraud/")
    assert response.status_code == 200
    assert body(response).count("Promotion #") == min(count, 20)


def test_asset_page_paginates_versions_and_history_separately(client, s):
    for _ in range(30):
        version = VersionFactory(asset=s.model)
        s.move(version, s.staging)
    html = body(get(client, s.viewer, "/registry/model/fraud/", history=2))
    assert 'aria-label="Version pages"' in html and 'aria-label="Stage history pages"' in html
    assert "Page 2 of 2 (30 in all)" in html  # history, 20 a page
    assert "Page 1 of 2 (32 in all)" in html  # versions, 25 a page
    assert "?history=2&amp;page=2" in html or "?page=2&amp;history=2" in html  # links keep the other page


# The version page ------------------------------------------------------------------------------


def test_version_page_shows_a_model_version(client, s):
    Evaluation.objects.create(version=s.v2, name="holdout", metrics={"auc": 0.92}, created_by=s.admin)
    s.move(s.v2, s.staging)
    response = get(client, s.viewer, "/registry/model/fraud/versions/2/")
    html = body(response)
    assert response.status_code == 200
    assert f"<code>{s.v2.digest}</code>" in html
    assert "s3://models/fraud/2/model.pkl" in html
    assert "4e1a2b3c" in html and "refs/heads/main" in html
    assert '<a href="https://ci.example/runs/77" rel="noopener noreferrer">' in html
    assert '<th scope="row">auc</th>' in html and "<code>0.93</code>" in html
    assert '<th scope="row">max_depth</th>' in html
    assert "&quot;amount&quot;" in html  # the signature, as escaped JSON
    assert '<span class="badge">in staging</span>' in html
    assert "holdout" in html and "auc <strong>0.92</strong>" in html
    assert 'href="/registry/model/fraud/compare/?a=1&amp;b=2"' in html


def test_model_card_is_sanitised_markdown(client, s):
    html = body(get(client, s.viewer, "/registry/model/fraud/versions/2/"))
    assert "<h3>Fraud model</h3>" in html
    assert "Trained on <strong>transactions</strong>." in html
    assert "<script>" not in html
    assert "onerror" not in html
    assert "javascript:" not in html


def test_run_url_that_is_not_http_is_not_a_link(client, s):
    version = VersionFactory(asset=s.model, origin={"run_url": "javascript:alert(1)"})
    html = body(get(client, s.viewer, f"/registry/model/fraud/versions/{version.number}/"))
    assert 'href="javascript:' not in html
    assert "<code>javascript:alert(1)</code>" in html


def test_prompt_version_page_escapes_the_template(client, s):
    prompt = AssetFactory(kind=AssetKind.PROMPT, name="reply")
    assign_perm("registry.view_asset", s.viewer, prompt)
    VersionFactory(
        asset=prompt,
        template="<b>Hello</b> {{name}}, </pre><script>alert(1)</script>",
        variables=["name"],
        model_config={"model": "gpt-4o", "temperature": 0.2},
        commit_message="greet",
    )
    html = body(get(client, s.viewer, "/registry/prompt/reply/versions/1/"))
    escaped = "&lt;b&gt;Hello&lt;/b&gt; {{name}}, &lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f'<pre class="block">{escaped}</pre>' in html
    assert "<script>" not in html
    assert '<li class="badge"><code>name</code></li>' in html
    assert '<th scope="row">temperature</th>' in html and "gpt-4o" in html
    assert "greet" in html


def test_dataset_version_page_shows_schema_and_rows(client, s):
    dataset = AssetFactory(kind=AssetKind.DATASET, name="transactions")
    assign_perm("registry.view_asset", s.viewer, dataset)
    VersionFactory(asset=dataset, row_count=1200000, schema={"amount": "decimal"}, uri="s3://d/1.parquet")
    html = body(get(client, s.viewer, "/registry/dataset/transactions/versions/1/"))
    assert "1,200,000" in html and "&quot;amount&quot;: &quot;decimal&quot;" in html


def test_evaluation_names_a_dataset_only_when_visible(client, s):
    dataset = AssetFactory(kind=AssetKind.DATASET, name="hidden-data")
    data_version = VersionFactory(asset=dataset)
    Evaluation.objects.create(
        version=s.v2, name="offline", metrics={"auc": 0.9}, dataset_version=data_version
    )
    assert "hidden-data" not in body(get(client, s.viewer, "/registry/model/fraud/versions/2/"))
    assert "a dataset you may not see" in body(get(client, s.viewer, "/registry/model/fraud/versions/2/"))
    assign_perm("registry.view_asset", s.viewer, dataset)
    html = body(get(client, s.viewer, "/registry/model/fraud/versions/2/"))
    assert 'href="/registry/dataset/hidden-data/versions/1/">hidden-data@1</a>' in html


def _lineage(s):
    """data@1 → fraud@2 → app@1 → app2@1, and base-model@1 → fraud@2 (all visible to the viewer)."""
    names = {}
    for kind, name, description in [
        (AssetKind.DATASET, "data", 'Evil "><script>alert("desc")</script>'),
        (AssetKind.MODEL, "base-model", "A base"),
        (AssetKind.MODEL, "app", "Downstream"),
        (AssetKind.MODEL, "app2", "Further down"),
    ]:
        asset = AssetFactory(kind=kind, name=name, description=description)
        assign_perm("registry.view_asset", s.viewer, asset)
        names[name] = VersionFactory(asset=asset)
    EdgeFactory(parent=names["data"], child=s.v2, relation=Relation.TRAINED_ON)
    EdgeFactory(parent=names["base-model"], child=s.v2, relation=Relation.FINE_TUNED_FROM)
    EdgeFactory(parent=s.v2, child=names["app"], relation=Relation.USES_MODEL)
    EdgeFactory(parent=names["app"], child=names["app2"], relation=Relation.DERIVED_FROM)
    return names


def _svg(html: str) -> str:
    start = html.index("<svg")
    return html[start : html.index("</svg>", start) + len("</svg>")]


def test_version_page_draws_the_lineage_graph(client, s):
    _lineage(s)
    svg = _svg(body(get(client, s.viewer, "/registry/model/fraud/versions/2/")))
    assert '<title id="lineage-title">Lineage of model/fraud@2</title>' in svg
    for href in [
        "/registry/dataset/data/versions/1/",
        "/registry/model/base-model/versions/1/",
        "/registry/model/app/versions/1/",
        "/registry/model/app2/versions/1/",
    ]:
        assert f'href="{href}"' in svg
    assert ">data@1</text>" in svg and ">app2@1</text>" in svg
    assert ">trained on</text>" in svg and ">fine-tuned from</text>" in svg and ">uses model</text>" in svg
    assert 'class="node kind-model current"' in svg
    # The description appears (as a tooltip) escaped, never as markup.
    assert "<script>" not in svg
    assert "Evil &quot;&gt;&lt;script&gt;alert(&quot;desc&quot;)&lt;/script&gt;" in svg


def test_lineage_svg_escapes_name_like_text(s):
    # Names are validated by the services; rows written around them must still come out escaped.
    evil = AssetFactory(kind=AssetKind.DATASET, name='x"><script>alert(1)</script>', description="<b>&</b>")
    parent = VersionFactory(asset=evil)
    edge = EdgeFactory(parent=parent, child=s.v2, relation=Relation.TRAINED_ON)
    graph = lineage_svg.render(s.v2, [(edge, 1)], [], depth=3)
    assert "<script>" not in graph.svg and "<b>" not in graph.svg
    assert "x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@1" in graph.svg
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in graph.svg


def test_lineage_leaves_out_assets_the_user_may_not_see(client, s):
    hidden = VersionFactory(asset=s.secret)
    EdgeFactory(parent=hidden, child=s.v2, relation=Relation.DERIVED_FROM)
    html = body(get(client, s.viewer, "/registry/model/fraud/versions/2/"))
    assert "secret-model" not in html
    assert "secret-model" in body(get(client, s.admin, "/registry/model/fraud/versions/2/"))


def test_lineage_layout_puts_parents_left_and_children_right(s):
    names = _lineage(s)
    edges_up = [(edge, 1) for edge in LineageEdge.objects.filter(child=s.v2)]
    edges_down = [
        (LineageEdge.objects.get(parent=s.v2), 1),
        (LineageEdge.objects.get(child=names["app2"]), 2),
    ]
    graph = lineage_svg.layout(s.v2, edges_up, edges_down)
    columns = {node.label: node.column for node in graph.nodes.values()}
    assert columns == {
        "model/fraud@2": 0,
        "dataset/data@1": -1,
        "model/base-model@1": -1,
        "model/app@1": 1,
        "model/app2@1": 2,
    }
    # A shortcut edge (data → app directly, as well as through fraud) still points left to right.
    shortcut = EdgeFactory(parent=names["data"], child=names["app"], relation=Relation.EVALUATED_ON)
    graph = lineage_svg.layout(s.v2, edges_up, [*edges_down, (shortcut, 1)])
    assert all(graph.nodes[e.parent_id].column < graph.nodes[e.child_id].column for e in graph.edges)


def test_lineage_caps_each_column(s):
    edges = []
    for _ in range(15):
        child = VersionFactory(asset=AssetFactory())
        edges.append((EdgeFactory(parent=s.v2, child=child, relation=Relation.USES_MODEL), 1))
    graph = lineage_svg.render(s.v2, [], edges, depth=3, max_per_column=12)
    assert graph.hidden == 3 and len(graph.nodes) == 13 and len(graph.edges) == 12
    assert "+3 more not shown" in graph.svg


def test_version_history_shows_stage_moves_and_audit_events(client, s):
    dataset = services.asset_create(actor=s.admin, source=SRC, kind=AssetKind.DATASET, name="private-data")
    services.version_register(
        actor=s.admin, source=SRC, asset=dataset, data={"digest": "sha256:" + "a" * 64, "uri": "s3://d"}
    )
    s.model.refresh_from_db()
    version = services.version_register(
        actor=s.admin,
        source=SRC,
        asset=s.model,
        data={"digest": "sha256:" + "b" * 64},
        lineage=[(Relation.TRAINED_ON, services.VersionRef("dataset", "private-data", 1))],
    )
    services.version_update(actor=s.admin, source=SRC, version=version, description="better", tags=["x"])
    promotion = s.promotion(version, s.production)
    s.move(s.v2, s.production)
    s.move(version, s.production, previous=s.v2, promotion=promotion, reason="approved")
    url = f"/registry/model/fraud/versions/{version.number}/"
    html = body(get(client, s.viewer, url))
    assert 'production <span class="muted">(entered)</span>' in html
    assert f'href="/promotions/{promotion.pk}/"' in html
    assert "<code>version.created</code>" in html and "registered as version 3" in html
    assert "<code>version.updated</code>" in html and "changed description, tags" in html
    # The registration event lists its lineage parents; a viewer who may not see them is not told.
    assert "private-data" not in html
    # The version it replaced shows the move as leaving.
    assert 'production <span class="muted">(left)</span>' in body(
        get(client, s.viewer, "/registry/model/fraud/versions/2/")
    )


@pytest.mark.parametrize("count", [3, 30])
def test_version_page_query_count_does_not_grow(client, s, django_assert_max_num_queries, count):
    _lineage(s)
    dataset = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET))
    for number in range(count):
        Evaluation.objects.create(
            version=s.v2,
            name=f"eval-{number}",
            metrics={"auc": 0.9},
            dataset_version=dataset,
            created_by=s.admin,
        )
        s.move(s.v2 if number % 2 else s.v1, s.staging, promotion=s.promotion(s.v2, s.staging))
        services.version_update(actor=s.admin, source=SRC, version=s.v2, description=f"take {number}")
    client.force_login(s.viewer)
    # 1 session, 2 user, 3 asset, 4 version, 5 evaluation count, 6 page of evaluations (creator,
    # dataset joined; dataset visibility as an EXISTS), 7-8 upstream walk and its edges, 9-10 downstream
    # walk and its edges, 11 latest stage moves, 12 latest audit events, 13 stages the version is in,
    # 14 the viewer's roles (which actions to offer), 15 the header's inbox badge.
    with django_assert_max_num_queries(15):
        response = client.get("/registry/model/fraud/versions/2/")
    assert response.status_code == 200
    html = body(response)
    assert html.count("eval-") == min(count, 20)
    assert html.count("<code>version.updated</code>") == min(count, 50)


# Compare ------------------------------------------------------------------------------------------


# The comparison's markup, the same on the promotion page (registry/_comparison.html).
VERDICT = (
    '<span class="verdict verdict-{}"><span aria-hidden="true">{}</span> {} '
    '<span class="verdict-word">{}</span></span>'
)
ADDED = '<ins class="diff-add"><span class="sign">+</span>'
REMOVED = '<del class="diff-remove"><span class="sign">\N{MINUS SIGN}</span>'


def test_compare_shows_better_and_worse(client, s):
    response = get(client, s.viewer, "/registry/model/fraud/compare/", a=1, b=2)
    html = body(response)
    assert response.status_code == 200
    assert "v1 → v2" in html
    # auc went up (better); latency went up (worse: lower is better for latency)
    assert VERDICT.format("better", "▲", "+0.03", "better") in html
    assert VERDICT.format("worse", "▲", "+15", "worse") in html
    # parameters: only what changed
    assert "<code>max_depth</code>" in html and "change-changed" in html and "<code>eta</code>" not in html
    # model card: a line diff, escaped
    assert f"{ADDED}# Fraud model</ins>" in html and f"{REMOVED}# Fraud</del>" in html
    assert f"{ADDED}&lt;script&gt;alert(&quot;card&quot;)&lt;/script&gt;</ins>" in html
    assert "<script>" not in html
    assert s.v1.digest in html and s.v2.digest in html and "Different digests" in html


def test_compare_defaults_to_the_two_latest_versions(client, s):
    VersionFactory(asset=s.model, metrics={"auc": 0.91})
    html = body(get(client, s.viewer, "/registry/model/fraud/compare/"))
    assert "v2 → v3" in html and 'verdict-word">worse<' in html
    assert 'name="a" value="2"' in html and 'name="b" value="3"' in html


def test_compare_prompt_versions_diffs_template_and_config(client, s):
    prompt = AssetFactory(kind=AssetKind.PROMPT, name="reply")
    assign_perm("registry.view_asset", s.viewer, prompt)
    VersionFactory(
        asset=prompt, template="Hi {{name}}", variables=["name"], model_config={"temperature": 0.2}
    )
    VersionFactory(
        asset=prompt, template="Hello {{name}}", variables=["name"], model_config={"temperature": 0.1}
    )
    html = body(get(client, s.viewer, "/registry/prompt/reply/compare/", a=1, b=2))
    assert f"{REMOVED}Hi {{{{name}}}}</del>" in html and f"{ADDED}Hello {{{{name}}}}</ins>" in html
    assert "<code>temperature</code>" in html and "<code>0.1</code>" in html


def test_compare_says_no_change_as_the_promotion_page_does(client, s):
    html = body(get(client, s.viewer, "/registry/model/fraud/compare/", a=2, b=2))
    assert 'class="verdict verdict-same"> <span class="verdict-word">no change</span>' in html
    assert "= same" not in html


def test_compare_rejects_a_version_that_does_not_exist(client, s):
    response = get(client, s.viewer, "/registry/model/fraud/compare/", a=1, b=9)
    assert response.status_code == 400
    assert "There is no version 9; the latest is 2." in body(response)
    response = get(client, s.viewer, "/registry/model/fraud/compare/", a="x", b=2)
    assert response.status_code == 400


def test_compare_form_fields_are_labelled(client, s):
    html = body(get(client, s.viewer, "/registry/model/fraud/compare/"))
    assert '<label for="id_a">Base version</label>' in html
    assert '<label for="id_b">Compared version</label>' in html


def test_compare_query_count(client, s, django_assert_max_num_queries):
    client.force_login(s.viewer)
    # 1 session, 2 user, 3 asset, 4 both versions in one query, 5 the header's inbox badge.
    with django_assert_max_num_queries(5):
        response = client.get("/registry/model/fraud/compare/", {"a": 1, "b": 2})
    assert response.status_code == 200


def test_pages_of_an_asset_without_versions(client, s):
    empty = AssetFactory(kind=AssetKind.PROMPT, name="empty")
    assign_perm("registry.view_asset", s.viewer, empty)
    assert "No versions yet." in body(get(client, s.viewer, "/registry/prompt/empty/"))
    response = get(client, s.viewer, "/registry/prompt/empty/compare/")
    assert response.status_code == 200 and "This asset has no versions yet." in body(response)
