#!/usr/bin/env python
"""Server time of the reviewer and auditor pages on a realistically large PostgreSQL database.

What it does
    1. Creates a scratch PostgreSQL database (dropped first if it exists; its name must contain "bench")
       and runs `manage.py migrate` on it.
    2. Bulk-loads realistic data with COPY (minutes, not hours): people, teams and service accounts;
       `--assets` assets (mostly models, some datasets and prompts) with `--versions` versions (metrics,
       params, model cards, prompt templates, dataset schemas), evaluations, lineage edges, stage pointers
       and their history, grants (a "reviewers" team holds review on every medium and high risk asset),
       policies, `--promotions` promotion requests (pending ones for the reviewer persona, decided ones
       with their reviews) and `--events` audit events that form a valid chain: every body is built with
       audit.canonical exactly as audit_record builds it, the leaf and chain hashes follow, and the
       AuditHead row points at the last event. The append-only triggers are lifted (audit.triggers.
       suspended) only while the events are copied and the head is moved, in the same transaction.
       Then VACUUM ANALYZE, as autovacuum would have done on a live database.
    3. Measures, in this process, with Django's test Client (force_login, no HTTP server, no browser):
           inbox         GET /                        as reviewer01 (sees most assets, has pending requests)
           promotion     GET /promotions/<id>/        a pending request in reviewer01's inbox
           audit         GET /audit/                  as auditor01, no filter
           audit-asset   GET /audit/?asset_kind=..&asset_name=..   the asset with the most events
       Each page: `--warmup` unmeasured loads, then `--loads` timed `client.get` calls (status 200 checked),
       then a few loads under CaptureQueriesContext for the SQL: the number of queries and their time.

How to read the output
    p50, p90, p99, max   server time of one page load in ms: URL resolution, middleware (session, auth,
                         CSRF, messages), the view, its queries and the template; no network, no browser
    queries              SQL statements of one load (the session and user lookups included)
    sql ms               the median over the captured loads of the time spent in those statements (client
                         side: round trip + execution), so p50 - sql ms is roughly the Python side
    The slowest query of the slowest page is shown with EXPLAIN (ANALYZE, BUFFERS); the JSON written to
    bench/results/pages-<UTC time>.json has every page's queries and its slowest query's plan.

Usage
    .venv/bin/python bench/pages.py                                   # 10k assets, 100k versions, 1M events
    .venv/bin/python bench/pages.py --assets 500 --versions 5000 --events 50000 --loads 50   # quick
    .venv/bin/python bench/pages.py --help
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as dt
import gc
import hashlib
import json
import math
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also in spawned worker processes
from scratch import BenchError, ScratchDatabase, git_revision, version_of

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/pages_bench"
CAPTURED_LOADS = 5
DISTURBED_CORES = 0.15  # cores used by other processes during a page's loads above which it is flagged

TEAMS = ["payments", "fraud", "search", "ads", "growth", "risk", "support", "vision"]
PEOPLE_PER_TEAM = 20
REVIEWERS = 12
REVIEWER_PERSONA = "reviewer01"
AUDITOR_PERSONA = "auditor01"
NARROW_PERSONA = "contractor01"  # a person outside every team, with view on two assets only
FIRST_NAMES = ["ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kai", "lena"]
NOUNS = {
    "model": [
        "detector",
        "classifier",
        "ranker",
        "scorer",
        "forecaster",
        "recommender",
        "embedder",
        "tagger",
    ],
    "dataset": ["transactions", "clicks", "sessions", "labels", "images", "tickets", "queries", "events"],
    "prompt": ["reply", "summary", "triage", "extract", "rewrite", "classify"],
}
FRAMEWORKS = ["xgboost", "lightgbm", "pytorch", "sklearn", "tensorflow"]
EVALUATIONS = ["holdout", "backtest-30d", "fairness", "shadow-traffic"]
COLUMN_TYPES = ["string", "int64", "float64", "bool", "timestamp", "decimal(18,2)"]
BROWSERS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
]
API_AGENT = "registry-client/2.3 python-requests/2.32 (github-actions)"
# Audit events that are not about a row the loader made, drawn by weight to fill the log up to --events.
FILLER = {
    "login.succeeded": 42,
    "logout": 20,
    "login.failed": 5,
    "version.updated": 20,
    "asset.updated": 9,
    "token.created": 2.5,
    "token.revoked": 1.5,
}


def columns(text: str) -> list[str]:
    return text.split()


# Columns of the COPYs, in the order of the generators' tuples.
ASSET_COLUMNS = columns(
    """
id kind name description team_id risk_tier tags latest_version_number created_by_id created_at
updated_at
"""
)
VERSION_COLUMNS = columns(
    """
id asset_id number description tags digest uri metadata origin framework metrics params signature
model_card template variables model_config commit_message row_count schema created_by_id created_at
"""
)
PROMOTION_COLUMNS = columns(
    """
id asset_id version_id stage_id status status_reason revision requested_by_id justification rollback
ci callback_url policy_id policy_snapshot base_version_id superseded_by_id expires_at decided_at
applied_at created_at updated_at
"""
)
HISTORY_COLUMNS = columns(
    """
asset_id stage_id version_id previous_version_id reason promotion_id actor_id source created_at
"""
)
EVENT_COLUMNS = columns(
    """
id seq occurred_at actor_id actor_repr actor_kind action target_kind target_id target_repr asset_id
changes source context body leaf_hash chain_hash
"""
)


def log(message: str) -> None:
    print(message, flush=True)


# The scratch database ---------------------------------------------------------------------------------


def django_env(url: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "AUDIT_SIGNING_KEY_AUTOCREATE": "true",
            "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
            "DJANGO_LOG_LEVEL": "WARNING",
        }
    )
    return env


def migrate(env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def setup_django(env: dict) -> None:
    os.environ.update({key: env[key] for key in env if key.startswith(("DJANGO_", "DATABASE_URL"))})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def copy_rows(model, columns: list[str], rows, now: dt.datetime) -> int:
    """COPY rows (tuples in the order of `columns`, column names) into the model's table. Columns not given
    get the model's defaults (so that a field added later with a default needs no change here); dicts and
    lists are written as JSON."""
    from django.db import connection
    from django.db.models import JSONField

    fields = {field.column: field for field in model._meta.concrete_fields}
    unknown = [name for name in columns if name not in fields]
    if unknown:
        raise BenchError(f"{model.__name__} has no column {', '.join(unknown)}")
    extra_columns, extra = [], []
    for column, field in fields.items():
        if column in columns or field.primary_key:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
            if value is None and not field.null:
                raise BenchError(f"{model.__name__}.{field.name} has no default: the bench must set it")
            if isinstance(field, JSONField):
                value = json.dumps(value)
        extra_columns.append(column)
        extra.append(value)
    extra = tuple(extra)
    json_at = [i for i, name in enumerate(columns) if isinstance(fields[name], JSONField)]
    names = ", ".join(f'"{name}"' for name in [*columns, *extra_columns])
    count = 0
    connection.ensure_connection()
    statement = f'COPY "{model._meta.db_table}" ({names}) FROM STDIN'
    with connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            if json_at:
                row = list(row)
                for i in json_at:
                    if not isinstance(row[i], str):
                        row[i] = json.dumps(row[i])
            copy.write_row((*row, *extra))
            count += 1
    return count


# Data generation ---------------------------------------------------------------------------------------


def when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class Loader:
    """Makes the data in memory (compactly: only what later rows and events refer to) and COPYs it."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.now_dt = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.now = self.now_dt.timestamp()
        self.start = self.now - 730 * 86400
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def summary(self) -> dict:
        """What the measurements and the report need from the loaded data."""
        busiest, events = self.asset_events.most_common(1)[0]
        self.counts["busiest_asset_events"] = events
        return {
            "counts": self.counts,
            "timings": self.timings,
            "busiest_asset": (self.a_kind[busiest - 1], self.a_name[busiest - 1]),
        }

    def step(self, name: str, function) -> None:
        started = time.perf_counter()
        log(f"   {name} ...")
        function()
        self.timings[name] = round(time.perf_counter() - started, 1)

    def run(self) -> None:
        from django.db import transaction

        with transaction.atomic():
            self.step("people, teams and policies", self.people)
            self.step("assets", self.assets)
            self.step("versions, evaluations and lineage", self.versions)
            self.step("stages", self.stages)
            self.step("grants", self.grants)
            self.step("promotions and reviews", self.promotions)
            self.reset_sequences()
        self.step("audit events", self.audit_events)
        self.step("vacuum analyze", self.vacuum)

    # People, teams, policies (ORM: a few hundred rows) ------------------------------------------------

    def people(self) -> None:
        from django.contrib.auth.hashers import make_password
        from django.contrib.auth.models import Group, Permission

        from accounts.models import GlobalRole, User
        from approvals.models import Policy
        from registry.models import Stage

        rng, joined = self.rng, when(self.start - 30 * 86400)
        password = make_password(None)
        users, memberships = [], []

        def person(username: str, **fields) -> User:
            user = User(
                username=username, email=f"{username}@example.com", password=password, date_joined=joined
            )
            for key, value in fields.items():
                setattr(user, key, value)
            users.append(user)
            return user

        for team in TEAMS:
            for k in range(PEOPLE_PER_TEAM):
                person(f"{FIRST_NAMES[k % len(FIRST_NAMES)]}.{team}{k:02d}")
            person(f"ci-{team}", is_service_account=True)
        for k in range(1, REVIEWERS + 1):
            person(f"reviewer{k:02d}")
        for k in range(1, 4):
            person(f"auditor{k:02d}", global_role=GlobalRole.AUDITOR)
        for k in range(1, 3):
            person(f"admin{k:02d}", global_role=GlobalRole.ADMIN, is_staff=True)
        person(NARROW_PERSONA)
        User.objects.bulk_create(users)
        by_name = {user.username: user for user in User.objects.all()}
        self.users = {user.pk: (user.username, user.is_service_account) for user in by_name.values()}
        self.ips = {
            pk: f"10.{rng.randrange(1, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            for pk in self.users
        }
        groups = {name: Group.objects.create(name=name) for name in [*TEAMS, "reviewers"]}
        self.team_ids = [groups[team].pk for team in TEAMS]
        self.team_people = [
            [by_name[f"{FIRST_NAMES[k % len(FIRST_NAMES)]}.{team}{k:02d}"].pk for k in range(PEOPLE_PER_TEAM)]
            for team in TEAMS
        ]
        self.team_ci = [by_name[f"ci-{team}"].pk for team in TEAMS]
        self.reviewers = [by_name[f"reviewer{k:02d}"].pk for k in range(1, REVIEWERS + 1)]
        self.persona = by_name[REVIEWER_PERSONA].pk
        self.auditor = by_name[AUDITOR_PERSONA].pk
        self.narrow = by_name[NARROW_PERSONA].pk
        self.admins = [by_name["admin01"].pk, by_name["admin02"].pk]
        self.persons = [pk for pk, (_, service) in self.users.items() if not service and pk != self.narrow]
        # Reviewers are engineers of a product team too; the persona works in the first one.
        self.reviewer_team = {pk: index % len(TEAMS) for index, pk in enumerate(self.reviewers)}
        Membership = User.groups.through
        for index, team in enumerate(TEAMS):
            for pk in [*self.team_people[index], self.team_ci[index]]:
                memberships.append(Membership(user_id=pk, group_id=groups[team].pk))
        for pk, team in self.reviewer_team.items():
            memberships.append(Membership(user_id=pk, group_id=groups["reviewers"].pk))
            memberships.append(Membership(user_id=pk, group_id=self.team_ids[team]))
        Membership.objects.bulk_create(memberships)
        self.reviewers_group = groups["reviewers"].pk
        self.perm = {p.codename: p.pk for p in Permission.objects.filter(content_type__app_label="registry")}
        self.stage_ids = {stage.name: stage.pk for stage in Stage.objects.all()}
        production = Stage.objects.get(name="production")
        everyone = Policy.objects.create(
            stage=production,
            kind="",
            required_approvals=2,
            gates=[{"type": "previous_stage", "stage": "staging", "when": "ever"}],
        )
        everyone.reviewer_teams.set([groups["reviewers"]])
        Policy.objects.create(
            stage=production,
            kind="model",
            required_approvals=1,
            gates=[
                {"type": "metric", "metric": "auc", "op": ">=", "value": 0.7, "source": "any"},
                {"type": "model_card"},
            ],
        )
        self.counts["users"] = len(users)

    # Assets ---------------------------------------------------------------------------------------

    def assets(self) -> None:
        rng, n = self.rng, self.args.assets
        kinds = rng.choices(["model", "dataset", "prompt"], weights=[75, 15, 10], k=n)
        times = sorted(rng.uniform(self.start, self.now - 60 * 86400) for _ in range(n))
        self.a_kind, self.a_name, self.a_team, self.a_risk, self.a_ts, self.a_creator = [], [], [], [], [], []
        self.a_desc, self.a_tags = [], []
        for i in range(n):
            team = rng.randrange(len(TEAMS))
            kind = kinds[i]
            self.a_kind.append(kind)
            self.a_name.append(f"{TEAMS[team]}-{rng.choice(NOUNS[kind])}-{i + 1:05d}")
            self.a_team.append(team)
            self.a_risk.append(rng.choices(["high", "medium", "low"], weights=[20, 50, 30])[0])
            self.a_ts.append(times[i])
            self.a_creator.append(rng.choice(self.team_people[team]))
            self.a_desc.append(
                f"{kind.capitalize()} owned by the {TEAMS[team]} team: {rng.choice(NOUNS[kind])}."
            )
            self.a_tags.append(sorted(rng.sample(["pii", "gpu", "batch", "realtime", "eu", "us", "beta"], 2)))
        self.latest = [0] * n  # filled by versions()

    def asset_rows(self):
        for i in range(self.args.assets):
            yield (
                i + 1,
                self.a_kind[i],
                self.a_name[i],
                self.a_desc[i],
                self.team_ids[self.a_team[i]],
                self.a_risk[i],
                self.a_tags[i],
                self.latest[i],
                self.a_creator[i],
                when(self.a_ts[i]),
                when(self.a_ts[i]),
            )

    def asset_repr(self, i: int) -> str:
        return f"{self.a_kind[i]}/{self.a_name[i]}"

    # Versions, evaluations, lineage ---------------------------------------------------------------

    def versions(self) -> None:
        from registry.models import Asset, AssetVersion, Evaluation, LineageEdge

        rng, n_assets = self.rng, self.args.assets
        total = max(self.args.versions, n_assets)
        weights = [rng.lognormvariate(0, 1) for _ in range(n_assets)]
        scale = (total - n_assets) / sum(weights)
        counts = [1 + int(w * scale) for w in weights]
        for _ in range(total - sum(counts)):
            counts[rng.randrange(n_assets)] += 1
        # Assets that get a pending promotion: models with 3+ versions; their latest version is recent.
        models = [i for i in range(n_assets) if self.a_kind[i] == "model" and counts[i] >= 3]
        rng.shuffle(models)
        pending = self.args.promotions * 35 // 100
        own = [i for i in models if self.a_team[i] == self.reviewer_team[self.persona]][:4]
        self.pending_assets = own + [i for i in models if i not in own][: max(0, pending - len(own))]
        recent = set(self.pending_assets)
        self.v_asset, self.v_number, self.v_ts, self.v_creator = [], [], [], []
        self.asset_versions: list[list[int]] = []
        for i in range(n_assets):
            times = sorted(rng.uniform(self.a_ts[i] + 3600, self.now - 3 * 3600) for _ in range(counts[i]))
            if i in recent:
                times[-1] = self.now - rng.uniform(3600, 5 * 86400)
                times.sort()
            first = len(self.v_asset) + 1
            self.asset_versions.append(list(range(first, first + counts[i])))
            for number, ts in enumerate(times, start=1):
                self.v_asset.append(i)
                self.v_number.append(number)
                self.v_ts.append(ts)
                ci = rng.random() < 0.8
                self.v_creator.append(
                    self.team_ci[self.a_team[i]] if ci else rng.choice(self.team_people[self.a_team[i]])
                )
            self.latest[i] = counts[i]
        self.counts["versions"] = len(self.v_asset)
        self.lineage()
        self.v_metrics: dict[int, dict] = {}
        self.v_facts: dict[int, tuple] = {}  # digest, uri, origin: for the version.created events
        copy_rows(
            Asset,
            ASSET_COLUMNS,
            self.asset_rows(),
            self.now_dt,
        )
        self.counts["assets"] = n_assets
        copy_rows(
            AssetVersion,
            VERSION_COLUMNS,
            self.version_rows(),
            self.now_dt,
        )
        self.evaluations = []
        copy_rows(
            Evaluation,
            [
                "id",
                "version_id",
                "name",
                "dataset_version_id",
                "metrics",
                "details",
                "created_by_id",
                "created_at",
            ],
            self.evaluation_rows(),
            self.now_dt,
        )
        self.counts["evaluations"] = len(self.evaluations)
        self.counts["lineage_edges"] = copy_rows(
            LineageEdge,
            ["parent_id", "child_id", "relation", "created_by_id", "created_at"],
            self.edge_rows(),
            self.now_dt,
        )

    def lineage(self) -> None:
        """Each version's parents: the previous version (derived_from), a dataset version (trained_on, for
        models) or a model version (uses_model, for prompts); parents are older than their child."""
        rng = self.rng
        datasets = [i for i in range(self.args.assets) if self.a_kind[i] == "dataset"]
        models = [i for i in range(self.args.assets) if self.a_kind[i] == "model"]
        self.v_parents: list[tuple] = [()] * (len(self.v_asset) + 1)
        trained_on = {i: rng.choice(datasets) for i in models} if datasets else {}
        for i in range(self.args.assets):
            kind, ids = self.a_kind[i], self.asset_versions[i]
            for index, vid in enumerate(ids):
                parents = []
                if index and (kind != "dataset" or rng.random() < 0.6):
                    parents.append(("derived_from", ids[index - 1]))
                source = None
                if kind == "model" and i in trained_on:
                    source = trained_on[i]
                elif kind == "prompt" and models:
                    source = rng.choice(models)
                if source is not None:
                    candidates = self.asset_versions[source]
                    times = [self.v_ts[v - 1] for v in candidates]
                    older = bisect.bisect_left(times, self.v_ts[vid - 1])
                    parent = candidates[rng.randrange(older)] if older else candidates[0]
                    parents.append(("trained_on" if kind == "model" else "uses_model", parent))
                self.v_parents[vid] = tuple(parents)

    def version_repr(self, vid: int) -> str:
        return f"{self.asset_repr(self.v_asset[vid - 1])}@{self.v_number[vid - 1]}"

    def version_rows(self):
        rng = self.rng
        for index in range(len(self.v_asset)):
            vid, i = index + 1, self.v_asset[index]
            kind, name, number = self.a_kind[i], self.a_name[i], self.v_number[index]
            digest = "sha256:" + hashlib.sha256(f"{name}-{number}".encode()).hexdigest()
            origin = {
                "commit": hashlib.sha1(f"{vid}".encode()).hexdigest(),
                "ref": "refs/heads/main",
                "run_url": f"https://ci.example.com/{TEAMS[self.a_team[i]]}/{name}/runs/{100000 + vid}",
            }
            row = dict.fromkeys(["framework", "model_card", "template", "commit_message"], "")
            row.update(metrics={}, params={}, signature={}, variables=[], model_config={}, schema={})
            row["row_count"] = None
            if kind == "model":
                progress = min(number / 40, 1)
                metrics = {
                    "auc": round(0.72 + 0.2 * progress + rng.uniform(-0.02, 0.02), 4),
                    "precision": round(0.6 + 0.25 * progress + rng.uniform(-0.03, 0.03), 4),
                    "recall": round(0.55 + 0.2 * progress + rng.uniform(-0.03, 0.03), 4),
                    "f1": round(0.58 + 0.22 * progress + rng.uniform(-0.03, 0.03), 4),
                    "latency_ms": round(rng.uniform(3, 40), 2),
                }
                self.v_metrics[vid] = metrics
                params = {
                    "learning_rate": rng.choice([0.01, 0.03, 0.05, 0.1]),
                    "max_depth": rng.randrange(3, 12),
                    "n_estimators": rng.randrange(100, 1500, 50),
                    "subsample": rng.choice([0.6, 0.8, 1.0]),
                    "seed": rng.randrange(1000),
                    "features": rng.randrange(20, 400),
                    "objective": "binary:logistic",
                    "early_stopping_rounds": 50,
                }
                row.update(
                    framework=rng.choice(FRAMEWORKS),
                    metrics=metrics,
                    params=params,
                    signature={
                        "inputs": [{"name": f"f{k}", "type": "float"} for k in range(6)],
                        "outputs": [{"name": "score", "type": "float"}],
                    },
                    model_card=self.model_card(name, number, metrics, params),
                )
                uri = f"s3://models/{name}/{number}/model.bin"
            elif kind == "prompt":
                row.update(
                    template=self.template(name, number),
                    variables=["product", "question", "history"],
                    model_config={
                        "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"]),
                        "temperature": rng.choice([0.0, 0.1, 0.2, 0.5]),
                        "max_tokens": rng.choice([256, 512, 1024]),
                    },
                    commit_message=f"v{number}: tighten the instructions",
                )
                uri = ""
            else:
                columns = rng.randrange(8, 20)
                row.update(
                    row_count=rng.randrange(10_000, 50_000_000),
                    schema={
                        f"col_{k:02d}": COLUMN_TYPES[(k + number) % len(COLUMN_TYPES)] for k in range(columns)
                    },
                )
                uri = f"s3://datasets/{name}/v{number}.parquet"
            if kind != "model":
                self.v_metrics[vid] = {}
            self.v_facts[vid] = (digest, uri, origin)
            yield (
                vid,
                i + 1,
                number,
                f"Version {number} of {name}.",
                ["nightly"] if number % 3 else ["release"],
                digest,
                uri,
                {"size_bytes": rng.randrange(10**6, 10**9)},
                origin,
                row["framework"],
                row["metrics"],
                row["params"],
                row["signature"],
                row["model_card"],
                row["template"],
                row["variables"],
                row["model_config"],
                row["commit_message"],
                row["row_count"],
                row["schema"],
                self.v_creator[index],
                when(self.v_ts[index]),
            )

    def model_card(self, name: str, number: int, metrics: dict, params: dict) -> str:
        rows = "\n".join(f"| {key} | {value} |" for key, value in metrics.items())
        change = "retuned thresholds" if number % 2 else "new features from the feature store"
        return (
            f"# {name} v{number}\n\n"
            "## Intended use\n\n"
            f"Scores events for the {name.split('-')[0]} team. Not for decisions about individuals without"
            " human review. Retrained weekly on the latest labelled window.\n\n"
            "## Training data\n\n"
            f"Trained on the dataset version recorded in the lineage; {params['features']} features, "
            f"{params['n_estimators']} trees of depth {params['max_depth']}.\n\n"
            "## Metrics\n\n| metric | value |\n|---|---|\n"
            f"{rows}\n\n"
            "## Limitations\n\n"
            "- Calibrated on traffic from the last 90 days; drift is monitored daily.\n"
            "- Known weaker recall on new merchants and on low-volume regions.\n"
            f"- Changed in v{number}: {change}.\n\n"
            "## Owners\n\nThe owning team's on-call rotation; escalations through the model risk committee.\n"
        )

    def template(self, name: str, number: int) -> str:
        lines = [
            f"You are the {name.split('-')[0]} assistant for {{{{product}}}}.",
            "Answer the customer's question: {{question}}",
            "Use the conversation so far: {{history}}",
            "Be brief, polite and precise. Never invent order numbers or prices.",
        ]
        lines += [
            f"Rule {k}: escalate to a human when the customer asks for it (v{number})."
            for k in range(number % 6)
        ]
        return "\n".join(lines)

    def evaluation_rows(self):
        rng = self.rng
        eid = 0
        for index in range(len(self.v_asset)):
            vid, i = index + 1, self.v_asset[index]
            if self.a_kind[i] != "model":
                continue
            dataset = next((p for r, p in self.v_parents[vid] if r == "trained_on"), None)
            for k in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
                eid += 1
                name = EVALUATIONS[k % len(EVALUATIONS)]
                metrics = {
                    key: round(value - rng.uniform(0, 0.02), 4) for key, value in self.v_metrics[vid].items()
                }
                ts = min(self.v_ts[index] + (k + 1) * rng.uniform(600, 7200), self.now - 120)
                creator = self.team_ci[self.a_team[i]]
                self.evaluations.append((ts, eid, vid, name, metrics, dataset, creator))
                yield (
                    eid,
                    vid,
                    name,
                    dataset,
                    metrics,
                    {"rows": rng.randrange(10_000, 2_000_000), "duration_s": rng.randrange(30, 3600)},
                    creator,
                    when(ts),
                )

    def edge_rows(self):
        for vid in range(1, len(self.v_asset) + 1):
            for relation, parent in self.v_parents[vid]:
                yield (parent, vid, relation, self.v_creator[vid - 1], when(self.v_ts[vid - 1]))

    # Stages -------------------------------------------------------------------------------------------

    def stages(self) -> None:
        """Staging moves (by CI) for about half the versions of models and prompts, production moves for
        some of those; the pointers are the last move of each asset and stage."""
        rng = self.rng
        pending = set(self.pending_assets)
        self.history: list[
            list
        ] = []  # [ts, asset, stage, version, previous, actor, source, promotion, reason]
        for i in range(self.args.assets):
            if self.a_kind[i] == "dataset":
                continue
            ids = self.asset_versions[i]
            staged = [v for v in ids if rng.random() < 0.5 or v == ids[0]]
            if i in pending and ids[-1] not in staged:
                staged.append(ids[-1])
            moves = []
            for vid in staged:
                ts = min(self.v_ts[vid - 1] + rng.uniform(300, 7200), self.now - 600)
                moves.append((ts, "staging", vid))
            candidates = [v for v in staged if not (i in pending and v == ids[-1])]
            produced = [v for v in candidates if rng.random() < 0.35]
            if i in pending and not produced:
                produced = [candidates[-1]]
            production = []
            for vid in produced:
                staging_ts = next(ts for ts, stage, v in moves if v == vid)
                production.append((min(staging_ts + rng.uniform(86400, 5 * 86400), self.now - 3600), vid))
            production.sort()
            current = 0
            for ts, vid in production:
                if self.v_number[vid - 1] > current:
                    moves.append((ts, "production", vid))
                    current = self.v_number[vid - 1]
            moves.sort()
            previous = {"staging": None, "production": None}
            team = self.a_team[i]
            for ts, stage, vid in moves:
                if stage == "staging":
                    actor, source, reason = self.team_ci[team], "api", "CI: tests passed"
                else:
                    actor, source, reason = rng.choice(self.team_people[team]), "web", "release"
                self.history.append([ts, i, stage, vid, previous[stage], actor, source, None, reason])
                previous[stage] = vid
        self.history.sort(key=lambda move: move[0])
        pointers = {}
        for index, move in enumerate(self.history):
            pointers[(move[1], move[2])] = index
        self.pointer_ids = {key: n for n, key in enumerate(sorted(pointers), start=1)}
        self.pointer_last = pointers

    def stage_rows(self):
        for (asset, stage), pid in self.pointer_ids.items():
            move = self.history[self.pointer_last[(asset, stage)]]
            yield (pid, asset + 1, self.stage_ids[stage], move[3], move[5], when(move[0]))

    def history_rows(self):
        for move in self.history:
            ts, asset, stage, vid, previous, actor, source, promotion, reason = move
            promotion = promotion["pk"] if promotion else None
            yield (
                asset + 1,
                self.stage_ids[stage],
                vid,
                previous,
                reason,
                promotion,
                actor,
                source,
                when(ts),
            )

    def production_version(self, asset: int) -> int | None:
        index = self.pointer_last.get((asset, "production"))
        return self.history[index][3] if index is not None else None

    # Grants ---------------------------------------------------------------------------------------

    def grants(self) -> None:
        """Creator: manage; team: contribute (both at creation) and request_promotion; reviewers team:
        review on medium and high risk assets; a few people: view."""
        from registry.models import AssetGroupObjectPermission, AssetUserObjectPermission

        rng, perm = self.rng, self.perm
        self.grant_events = []  # (ts, asset, principal, role, actor)
        users, groups = [], []
        for i in range(self.args.assets):
            team, ts, creator = self.a_team[i], self.a_ts[i], self.a_creator[i]
            users.append((perm["manage_asset"], creator, i + 1))
            groups.append((perm["contribute_asset"], self.team_ids[team], i + 1))
            groups.append((perm["request_promotion_asset"], self.team_ids[team], i + 1))
            self.grant_events.append((ts + 60, i, f"team:{TEAMS[team]}", "request_promotion", creator))
            if self.a_risk[i] != "low":
                groups.append((perm["review_asset"], self.reviewers_group, i + 1))
                grant_ts = ts + rng.uniform(3600, 5 * 86400)
                self.grant_events.append((grant_ts, i, "team:reviewers", "review", rng.choice(self.admins)))
            others = [p for p in rng.sample(self.persons, 3) if p != creator][: rng.choice([0, 1, 1, 2])]
            for viewer in others:
                users.append((perm["view_asset"], viewer, i + 1))
                grant_ts = ts + rng.uniform(86400, 30 * 86400)
                self.grant_events.append((grant_ts, i, f"user:{self.users[viewer][0]}", "view", creator))
        models = [i for i in range(self.args.assets) if self.a_kind[i] == "model"]
        for i in rng.sample(models, 2):
            users.append((perm["view_asset"], self.narrow, i + 1))
            grant_ts = self.a_ts[i] + rng.uniform(86400, 30 * 86400)
            self.grant_events.append((grant_ts, i, f"user:{NARROW_PERSONA}", "view", self.a_creator[i]))
        copy_rows(
            AssetUserObjectPermission, ["permission_id", "user_id", "content_object_id"], users, self.now_dt
        )
        copy_rows(
            AssetGroupObjectPermission,
            ["permission_id", "group_id", "content_object_id"],
            groups,
            self.now_dt,
        )
        self.counts["user_grants"], self.counts["team_grants"] = len(users), len(groups)

    # Promotions ---------------------------------------------------------------------------------------

    def promotions(self) -> None:
        from approvals.models import PromotionRequest, Review
        from registry.models import StageHistory, StagePointer

        rng, n = self.rng, self.args.promotions
        hours = 7 * 24
        promos = []

        def reviewers_for(exclude: set, k: int) -> list[int]:
            return rng.sample([r for r in self.reviewers if r not in exclude], k)

        def request(asset, vid, base, status, requester, created, **extra) -> dict:
            number = self.v_number[vid - 1]
            promo = {
                "asset": asset,
                "version": vid,
                "base": base,
                "status": status,
                "requester": requester,
                "created": created,
                "expires": created + hours * 3600,
                "decided": None,
                "applied": None,
                "reviews": [],
                "superseded_by": None,
                "history": None,
                "justification": f"{self.a_name[asset]} v{number} beats production on the holdout set.",
                "ci": {
                    "commit": hashlib.sha1(f"{vid}".encode()).hexdigest(),
                    "ref": "refs/heads/main",
                    "run_url": f"https://ci.example.com/{self.a_name[asset]}/runs/{200000 + vid}",
                },
            }
            promo.update(extra)
            promos.append(promo)
            return promo

        # Pending: the latest version of each designated asset, waiting for production.
        persona_team = self.reviewer_team[self.persona]
        for asset in self.pending_assets:
            ids = self.asset_versions[asset]
            staged_at = max(
                m[0] for m in self.history if m[1] == asset and m[3] == ids[-1] and m[2] == "staging"
            )
            created = min(staged_at + rng.uniform(600, 2 * 86400), self.now - 300)
            mine = (
                self.a_team[asset] == persona_team and sum(p["requester"] == self.persona for p in promos) < 4
            )
            requester = self.persona if mine else self.team_ci[self.a_team[asset]]
            promo = request(asset, ids[-1], self.production_version(asset), "pending", requester, created)
            roll = rng.random()
            if roll < 0.35:
                promo["reviews"].append((reviewers_for({self.persona, requester}, 1)[0], "approve"))
            elif roll < 0.45 and requester != self.persona:
                promo["reviews"].append((self.persona, "approve"))
        # Decided: applied ones are the latest production move of reviewed assets (the move links them).
        decided = n - len(promos)
        latest_production = {}
        for index, move in enumerate(self.history):
            if move[2] == "production" and self.a_risk[move[1]] != "low" and move[0] > self.now - 400 * 86400:
                latest_production[move[1]] = index
        applied = sorted(latest_production.values(), key=lambda index: -self.history[index][0])
        applied = applied[: decided * 55 // 100]
        for index in applied:
            move = self.history[index]
            ts, asset = move[0], move[1]
            created = ts - rng.uniform(2 * 3600, 3 * 86400)
            promo = request(asset, move[3], move[4], "applied", self.team_ci[self.a_team[asset]], created)
            approvers = reviewers_for({promo["requester"]}, 2)
            promo.update(decided=ts - 30, applied=ts, history=index)
            promo["reviews"] = [(r, "approve") for r in approvers]
            move[5], move[6], move[7] = approvers[-1], "web", promo
        reviewed = [
            i for i in range(self.args.assets) if self.a_kind[i] == "model" and self.a_risk[i] != "low"
        ]
        own = [i for i in reviewed if self.a_team[i] == persona_team] or reviewed
        for k in range(decided - len(applied)):
            status = ["rejected", "rejected", "cancelled", "superseded", "expired"][k % 5]
            asset = rng.choice(own if k < 6 else reviewed)
            vid = rng.choice(self.asset_versions[asset])
            created = max(self.v_ts[vid - 1], self.now - 400 * 86400) + rng.uniform(3600, 86400)
            created = min(created, self.now - 10 * 86400)
            requester = self.persona if k < 6 else self.team_ci[self.a_team[asset]]
            promo = request(asset, vid, None, status, requester, created)
            if status == "rejected":
                promo["decided"] = created + rng.uniform(3600, 2 * 86400)
                promo["reviews"] = [(reviewers_for({requester}, 1)[0], "reject")]
            elif status in ("cancelled", "superseded"):
                promo["decided"] = created + rng.uniform(3600, 3 * 86400)
            else:
                promo["decided"] = promo["expires"]
        promos.sort(key=lambda p: p["created"])
        for pk, promo in enumerate(promos, start=1):
            promo["pk"] = pk
        by_asset: dict[int, list] = {}
        for promo in promos:
            by_asset.setdefault(promo["asset"], []).append(promo)
        for promo in promos:
            if promo["status"] == "superseded":
                later = [p for p in by_asset[promo["asset"]] if p["created"] > promo["created"]]
                if later:
                    promo["superseded_by"] = later[0]["pk"]
                    promo["decided"] = later[0]["created"]
        self.promos = promos
        self.snapshots = self.policy_snapshots({p["asset"] for p in promos})
        copy_rows(
            PromotionRequest,
            PROMOTION_COLUMNS,
            self.promotion_rows(),
            self.now_dt,
        )
        self.counts["promotions"] = len(promos)
        self.counts["pending_promotions"] = sum(p["status"] == "pending" for p in promos)
        self.counts["reviews"] = copy_rows(
            Review,
            ["promotion_id", "reviewer_id", "decision", "comment", "created_at"],
            self.review_rows(),
            self.now_dt,
        )
        for move in self.history:
            if isinstance(move[7], dict):
                move[8] = f"promotion #{move[7]['pk']}"
        self.counts["stage_pointers"] = copy_rows(
            StagePointer,
            ["id", "asset_id", "stage_id", "version_id", "updated_by_id", "updated_at"],
            self.stage_rows(),
            self.now_dt,
        )
        self.counts["stage_history"] = copy_rows(
            StageHistory,
            HISTORY_COLUMNS,
            self.history_rows(),
            self.now_dt,
        )

    def policy_snapshots(self, assets: set[int]) -> dict[int, tuple[int, dict]]:
        """The policy and the combined requirements of each asset's production promotions (the app's own
        functions, so that the snapshot has the shape the app records)."""
        from approvals.services import combined_requirements, policies_for
        from registry.models import Asset, Stage

        production = Stage.objects.get(name="production")
        out = {}
        for asset in assets:
            policies = policies_for(Asset(pk=asset + 1, kind=self.a_kind[asset]), production)
            out[asset] = (policies[0].pk, combined_requirements(policies))
        return out

    def promotion_rows(self):
        for promo in self.promos:
            policy, snapshot = self.snapshots[promo["asset"]]
            reason = {"expired": "The request expired.", "superseded": "A newer request replaced it."}
            updated = promo["applied"] or promo["decided"] or promo["created"]
            yield (
                promo["pk"],
                promo["asset"] + 1,
                promo["version"],
                self.stage_ids["production"],
                promo["status"],
                reason.get(promo["status"], ""),
                1 + len(promo["reviews"]) + (promo["status"] != "pending"),
                promo["requester"],
                promo["justification"],
                False,
                promo["ci"],
                "",
                policy,
                snapshot,
                promo["base"],
                promo["superseded_by"],
                when(promo["expires"]),
                when(promo["decided"]) if promo["decided"] else None,
                when(promo["applied"]) if promo["applied"] else None,
                when(promo["created"]),
                when(updated),
            )

    def review_times(self, promo: dict) -> list[float]:
        end = promo["decided"] or self.now - 60
        step = (end - promo["created"]) / (len(promo["reviews"]) + 1)
        return [promo["created"] + step * (k + 1) for k in range(len(promo["reviews"]))]

    def review_rows(self):
        for promo in self.promos:
            for (reviewer, decision), ts in zip(promo["reviews"], self.review_times(promo), strict=True):
                comment = (
                    "LGTM: metrics hold on the holdout." if decision == "approve" else "Recall regressed."
                )
                yield (promo["pk"], reviewer, decision, comment, when(ts))

    def reset_sequences(self, *labels: str) -> None:
        from django.apps import apps
        from django.core.management.color import no_style
        from django.db import connection

        labels = labels or ("registry", "approvals", "accounts", "auth")
        models = [model for label in labels for model in apps.get_app_config(label).get_models()]
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(statement)

    def vacuum(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    # Audit events ---------------------------------------------------------------------------------------

    def audit_events(self) -> None:
        from django.db import connection, transaction

        from audit.models import AuditEvent, AuditHead
        from audit.triggers import suspended

        real = self.real_events()
        budget = self.args.events
        if len(real) > budget * 0.8:  # small runs: keep every promotion event, sample the rest
            keep = max(
                0.0, (budget * 0.8 - len(self.promo_events)) / max(1, len(real) - len(self.promo_events))
            )
            real = [e for e in real if e[1] == "promotion" or self.rng.random() < keep]
        fillers = sorted(self.rng.uniform(self.start, self.now - 60) for _ in range(budget - len(real)))
        self.counts["audit_events_about_loaded_rows"] = len(real)
        self.chain = b""
        self.asset_events: Counter = Counter()
        with transaction.atomic(), suspended(connection):
            copy_rows(AuditEvent, EVENT_COLUMNS, self.event_rows(real, fillers), self.now_dt)
            AuditHead.objects.filter(pk=1).update(seq=budget, chain_hash=self.chain)
            self.reset_sequences("audit")
        self.counts["audit_events"] = budget

    def real_events(self) -> list[tuple]:
        """(time, kind, reference) of the events about the rows loaded above, oldest first."""
        events = [(self.a_ts[i], "asset", i) for i in range(self.args.assets)]
        events += [(g[0], "grant", g) for g in self.grant_events]
        events += [(self.v_ts[v], "version", v + 1) for v in range(len(self.v_asset))]
        events += [(e[0], "evaluation", e) for e in self.evaluations]
        events += [(move[0], "stage", move) for move in self.history]
        self.promo_events = []
        for promo in self.promos:
            self.promo_events += self.promotion_events(promo)
        events += [(e[0], "promotion", e) for e in self.promo_events]
        events.sort(key=lambda e: e[0])
        return events

    def promotion_events(self, promo: dict) -> list[tuple]:
        """(time, action, promotion, actor, channel, changes) as approvals.services records them."""
        snapshot = self.snapshots[promo["asset"]][1]
        required = snapshot["required_approvals"]
        vid = promo["version"]
        out = [
            (
                promo["created"],
                "promotion.requested",
                promo,
                promo["requester"],
                "api" if self.users[promo["requester"]][1] else "web",
                {
                    "version": self.v_number[vid - 1],
                    "stage": "production",
                    "base_version": self.v_number[promo["base"] - 1] if promo["base"] else None,
                    "justification": promo["justification"],
                    "rollback": False,
                    "ci": promo["ci"],
                    "required_approvals": required,
                },
            )
        ]
        approvals = 0
        for (reviewer, decision), ts in zip(promo["reviews"], self.review_times(promo), strict=True):
            if decision == "approve":
                approvals += 1
                changes = {
                    "comment": "LGTM: metrics hold on the holdout.",
                    "approvals": approvals,
                    "required": required,
                }
                out.append((ts, "promotion.approved", promo, reviewer, "web", changes))
            else:
                out.append(
                    (ts, "promotion.rejected", promo, reviewer, "web", {"comment": "Recall regressed."})
                )
        status, decided = promo["status"], promo["decided"]
        if status == "applied":
            out.append(
                (
                    decided,
                    "promotion.quorum_reached",
                    promo,
                    promo["reviews"][-1][0],
                    "web",
                    {"approvals": approvals},
                )
            )
            changes = {"stage": "production", "version": self.v_number[vid - 1]}
            out.append(
                (promo["applied"], "promotion.applied", promo, promo["reviews"][-1][0], "web", changes)
            )
        elif status == "cancelled":
            out.append(
                (
                    decided,
                    "promotion.cancelled",
                    promo,
                    promo["requester"],
                    "api",
                    {"reason": "CI run re-triggered."},
                )
            )
        elif status == "expired":
            changes = {"expires_at": when(promo["expires"])}
            out.append((decided, "promotion.expired", promo, None, "task", changes))
        elif status == "superseded" and promo["superseded_by"]:
            out.append(
                (
                    decided,
                    "promotion.superseded",
                    promo,
                    promo["requester"],
                    "api",
                    {"superseded_by": promo["superseded_by"]},
                )
            )
        return [event for event in out if event[0] < self.now - 1]

    def context(self, actor: int | None, channel: str) -> dict:
        request_id = f"{self.rng.getrandbits(128):032x}"
        if channel in ("cli", "task"):
            return {"request_id": request_id}
        agent = API_AGENT if channel == "api" else BROWSERS[(actor or 0) % len(BROWSERS)]
        return {"request_id": request_id, "ip": self.ips.get(actor, "10.0.0.1"), "user_agent": agent}

    def describe_real(self, kind: str, ref) -> tuple:
        """(action, actor, channel, target kind, target id, target repr, asset index, changes)."""
        if kind == "asset":
            i, creator = ref, self.a_creator[ref]
            changes = {
                "after": {
                    "description": self.a_desc[i],
                    "team": TEAMS[self.a_team[i]],
                    "risk_tier": self.a_risk[i],
                    "tags": self.a_tags[i],
                },
                "grants": [
                    {"principal": f"user:{self.users[creator][0]}", "role": "manage"},
                    {"principal": f"team:{TEAMS[self.a_team[i]]}", "role": "contribute"},
                ],
            }
            return (
                "asset.created",
                creator,
                "web",
                "registry.asset",
                str(i + 1),
                self.asset_repr(i),
                i,
                changes,
            )
        if kind == "grant":
            _, i, principal, role, actor = ref
            changes = {"principal": principal, "role": role}
            return "grant.added", actor, "web", "registry.asset", str(i + 1), self.asset_repr(i), i, changes
        if kind == "version":
            vid = ref
            digest, uri, origin = self.v_facts[vid]
            after = {
                "number": self.v_number[vid - 1],
                "digest": digest,
                "uri": uri,
                "metrics": self.v_metrics[vid],
                "source": origin,
                "lineage": [{"relation": r, "parent": self.version_repr(p)} for r, p in self.v_parents[vid]],
            }
            actor = self.v_creator[vid - 1]
            channel = "api" if self.users[actor][1] else "cli"
            i = self.v_asset[vid - 1]
            return (
                "version.created",
                actor,
                channel,
                "registry.assetversion",
                str(vid),
                self.version_repr(vid),
                i,
                {"after": after},
            )
        if kind == "evaluation":
            _, eid, vid, name, metrics, dataset, creator = ref
            after = {
                "version": self.version_repr(vid),
                "name": name,
                "metrics": metrics,
                "dataset": self.version_repr(dataset) if dataset else None,
            }
            target = f"{name} of {self.version_repr(vid)}"
            i = self.v_asset[vid - 1]
            return (
                "evaluation.added",
                creator,
                "api",
                "registry.evaluation",
                str(eid),
                target,
                i,
                {"after": after},
            )
        if kind == "stage":
            _, i, stage, vid, previous, actor, channel, promo, reason = ref
            changes = {
                "stage": stage,
                "before": {"version": self.v_number[previous - 1] if previous else None},
                "after": {"version": self.v_number[vid - 1]},
                "reason": reason,
                "promotion": promo["pk"] if promo else None,
            }
            pid = self.pointer_ids[(i, stage)]
            return (
                "stage.set",
                actor,
                channel,
                "registry.stagepointer",
                str(pid),
                f"{self.asset_repr(i)} in {stage}",
                i,
                changes,
            )
        _, action, promo, actor, channel, changes = ref
        target = f"promotion #{promo['pk']}: {self.version_repr(promo['version'])} \u2192 production"
        return (
            action,
            actor,
            channel,
            "approvals.promotionrequest",
            str(promo["pk"]),
            target,
            promo["asset"],
            changes,
        )

    def describe_filler(self, ts: float) -> tuple:
        rng = self.rng
        action = rng.choices(FILLER_ACTIONS, weights=FILLER_WEIGHTS)[0]
        if action in ("login.succeeded", "logout"):
            user = rng.choice(self.persons)
            return action, user, "web", "accounts.user", str(user), self.users[user][0], None, {}
        if action == "login.failed":
            name = self.users[rng.choice(self.persons)][0]
            changes = {"username": name, "reason": "wrong password"}
            return action, None, "web", "accounts.user", "", name, None, changes
        if action == "version.updated":
            older = bisect.bisect_left(self.v_by_time, ts)
            if older:
                vid = self.v_order[rng.randrange(older)]
                i = self.v_asset[vid - 1]
                changes = {"before": {"tags": ["nightly"]}, "after": {"tags": ["nightly", "candidate"]}}
                actor = rng.choice(self.team_people[self.a_team[i]])
                return (
                    action,
                    actor,
                    "web",
                    "registry.assetversion",
                    str(vid),
                    self.version_repr(vid),
                    i,
                    changes,
                )
        if action == "asset.updated":
            older = bisect.bisect_left(self.a_ts, ts)
            if older:
                i = rng.randrange(older)
                changes = {
                    "before": {"description": self.a_desc[i]},
                    "after": {"description": self.a_desc[i] + " Owned."},
                }
                actor = rng.choice(self.team_people[self.a_team[i]])
                return action, actor, "web", "registry.asset", str(i + 1), self.asset_repr(i), i, changes
        # token.created / token.revoked (and the rare update with nothing older to update)
        admin, account = rng.choice(self.admins), rng.choice(self.team_ci)
        token = rng.randrange(1, 5000)
        target = f"mgr_{token:08x}_\u2026{token % 9973:04d} (ci)"
        if action == "token.revoked":
            changes = {"account": self.users[account][0], "lookup": f"{token:08x}"}
            return action, admin, "web", "accounts.apitoken", str(token), target, None, changes
        changes = {"account": self.users[account][0], "name": "ci", "scopes": ["read", "write", "promote"]}
        return "token.created", admin, "web", "accounts.apitoken", str(token), target, None, changes

    def event_rows(self, real: list[tuple], fillers: list[float]):
        """The events in time order, each one's body built as audit.services.audit_record builds it."""
        from audit.canonical import (
            GENESIS_CHAIN,
            canonical_bytes,
            chain_hash,
            format_time,
            jsonable,
            leaf_hash,
        )

        self.v_order = sorted(range(1, len(self.v_asset) + 1), key=lambda v: self.v_ts[v - 1])
        self.v_by_time = [self.v_ts[v - 1] for v in self.v_order]
        chain, r, f = GENESIS_CHAIN, 0, 0
        started, total = time.perf_counter(), len(real) + len(fillers)
        for seq in range(1, total + 1):
            if f >= len(fillers) or (r < len(real) and real[r][0] <= fillers[f]):
                ts, kind, ref = real[r]
                r += 1
                action, actor, channel, target_kind, target_id, target_repr, asset, changes = (
                    self.describe_real(kind, ref)
                )
            else:
                ts = fillers[f]
                f += 1
                action, actor, channel, target_kind, target_id, target_repr, asset, changes = (
                    self.describe_filler(ts)
                )
            occurred = when(ts)
            if actor is None:
                actor_kind, actor_name = "system", "system"
            else:
                actor_name = self.users[actor][0]
                actor_kind = "service_account" if self.users[actor][1] else "user"
            asset_id = asset + 1 if asset is not None else None
            changes = jsonable(changes)
            context = self.context(actor, channel)
            body = canonical_bytes(
                {
                    "v": 1,
                    "seq": seq,
                    "occurred_at": format_time(occurred),
                    "actor": {"kind": actor_kind, "id": actor, "name": actor_name},
                    "action": action,
                    "target": {"kind": target_kind, "id": target_id, "repr": target_repr[:300]},
                    "asset_id": asset_id,
                    "changes": changes,
                    "source": channel,
                    "context": context,
                }
            )
            leaf = leaf_hash(body)
            chain = chain_hash(chain, leaf)
            if asset_id is not None:
                self.asset_events[asset_id] += 1
            yield (
                seq,
                seq,
                occurred,
                actor,
                actor_name,
                actor_kind,
                action,
                target_kind,
                target_id,
                target_repr[:300],
                asset_id,
                json.dumps(changes),
                channel,
                json.dumps(context),
                body,
                leaf,
                chain,
            )
            if seq % 100_000 == 0:
                rate = seq / (time.perf_counter() - started)
                log(f"      {seq:>9,} of {total:,} events ({rate:,.0f}/s)")
        self.chain = chain


FILLER_ACTIONS = list(FILLER)
FILLER_WEIGHTS = list(FILLER.values())


# Measuring ---------------------------------------------------------------------------------------------


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


class StatementTimer:
    """A connection execute wrapper that times each statement with perf_counter (the times that
    CaptureQueriesContext records are rounded to the millisecond)."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.ms.append((time.perf_counter() - started) * 1000)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot(database: str) -> dict | None:
    """CPU seconds so far: the whole machine (busy), this process, and this database's backends."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    backends = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            if not (command.startswith("postgres: ") and f" {database} " in command):
                continue
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        backends[(entry.name, fields[19])] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    own = os.times()
    return {
        "at": time.perf_counter(),
        "busy": sum(ticks[:3]) / CLOCK_TICKS,
        "steal": (ticks[7] if len(ticks) > 7 else 0) / CLOCK_TICKS,
        "self": own.user + own.system,
        "backends": backends,
    }


def cpu_usage(before: dict | None, after: dict | None, loads: int) -> dict:
    """CPU ms per load in this process (the app and the client) and in the database; cores used by
    everything else meanwhile, steal included (other work on the machine disturbs the figures)."""
    if before is None or after is None:
        return {}
    app = after["self"] - before["self"]
    db = sum(seconds - before["backends"].get(key, 0.0) for key, seconds in after["backends"].items())
    others = max(0.0, after["busy"] - before["busy"] - app - db)
    steal = after["steal"] - before["steal"]
    return {
        "app_cpu_ms": round(app / loads * 1000, 2),
        "db_cpu_ms": round(db / loads * 1000, 2),
        # the rest of the machine, and what the hypervisor took from this virtual machine
        "other_cores": round((others + steal) / (after["at"] - before["at"]), 2),
    }


def measure(client, name: str, path: str, persona: str, args: argparse.Namespace) -> dict:
    """Warm-up loads, then timed loads, then a few loads with their SQL captured."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def load():
        response = client.get(path)
        if response.status_code != 200:
            raise BenchError(f"GET {path} as {persona} answered {response.status_code}, expected 200")
        return response

    for _ in range(args.warmup):
        load()
    seconds = []
    size = 0
    database = settings.DATABASES["default"]["NAME"]
    before = cpu_snapshot(database)
    for _ in range(args.loads):
        started = time.perf_counter()
        response = load()
        seconds.append(time.perf_counter() - started)
        size = len(response.content)
    cpu = cpu_usage(before, cpu_snapshot(database), args.loads)
    captures = []
    for _ in range(CAPTURED_LOADS):
        timer = StatementTimer()
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
            load()
        statements = [query["sql"] for query in captured.captured_queries]
        if len(statements) != len(timer.ms):
            raise BenchError(f"{name}: {len(statements)} statements captured but {len(timer.ms)} timed")
        captures.append(list(zip(statements, timer.ms, strict=True)))
    counts = {len(capture) for capture in captures}
    reference = captures[len(captures) // 2]
    if len(counts) == 1:  # the same statements every load: each one's median time
        queries = [
            {"sql": reference[k][0], "ms": round(statistics.median(c[k][1] for c in captures), 3)}
            for k in range(len(reference))
        ]
    else:
        queries = [{"sql": sql, "ms": round(ms, 3)} for sql, ms in reference]
    ms = sorted(value * 1000 for value in seconds)
    return {
        "page": name,
        "path": path,
        "persona": persona,
        "loads": len(ms),
        "warmup": args.warmup,
        "bytes": size,
        "mean_ms": round(statistics.fmean(ms), 2),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2),
        "queries": len(reference),
        "query_counts_seen": sorted(counts),
        "sql_ms": round(statistics.median(sum(ms for _, ms in capture) for capture in captures), 2),
        "cpu": cpu,
        "statements": queries,
    }


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def pages(summary: dict) -> list[tuple[str, str, str]]:
    """(name, path, persona) of the measured pages, chosen from the loaded data."""
    from accounts.models import User
    from approvals import selectors

    persona = User.objects.get(username=REVIEWER_PERSONA)
    inbox = list(selectors.promotion_inbox_for_user(user=persona)[:50])
    if not inbox:
        raise BenchError("the reviewer persona has no pending request in its inbox; load more --promotions")
    reviewed = next(
        (p for p in inbox if p.approvals_so_far and p.base_version_id),
        next((p for p in inbox if p.base_version_id), inbox[0]),
    )
    kind, name = summary["busiest_asset"]
    summary["counts"]["inbox_waiting_shown"] = len(inbox)
    return [
        ("inbox", "/", REVIEWER_PERSONA),
        ("promotion", f"/promotions/{reviewed.pk}/", REVIEWER_PERSONA),
        ("audit", "/audit/", AUDITOR_PERSONA),
        ("audit-asset", "/audit/?" + urlencode({"asset_kind": kind, "asset_name": name}), AUDITOR_PERSONA),
        ("inbox-narrow", "/", NARROW_PERSONA),
    ]


def run_pages(summary: dict, args: argparse.Namespace) -> list[dict]:
    from django.test import Client

    from accounts.models import User

    measured = pages(summary)
    clients = {}
    for persona in {persona for _, _, persona in measured}:
        clients[persona] = Client()
        clients[persona].force_login(User.objects.get(username=persona))
    rows = []
    for name, path, persona in measured:
        log(f"   {name:<12} GET {path} as {persona} ...")
        rows.append(measure(clients[persona], name, path, persona, args))
    for row in rows:
        slowest = max(row["statements"], key=lambda query: query["ms"], default=None)
        row["slowest_query"] = slowest and {**slowest, "plan": explain(slowest["sql"])}
    return rows


# Reporting ---------------------------------------------------------------------------------------------


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'page':<12} {'loads':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'queries':>7} {'sql ms':>7} {'app cpu':>7} {'db cpu':>7} {'other':>6} {'KiB':>6}  path"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        cpu = row["cpu"]
        print(
            f"{row['page']:<12} {row['loads']:>5} {row['p50_ms']:>8.2f} {row['p90_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {row['max_ms']:>8.2f} {row['queries']:>7} {row['sql_ms']:>7.2f} "
            f"{number(cpu.get('app_cpu_ms')):>7} {number(cpu.get('db_cpu_ms')):>7} "
            f"{number(cpu.get('other_cores')):>6} {row['bytes'] / 1024:>6.1f}  {row['path']}"
            + ("  <- disturbed" if cpu.get("other_cores", 0) >= DISTURBED_CORES else "")
        )
    print(
        "ms per load; sql: time in SQL statements (median of the captured loads); app cpu: this process"
        " (Django and the test client); db cpu: the database's backends; other: cores used meanwhile by the"
        " rest of the machine"
    )
    if any(row["cpu"].get("other_cores", 0) >= DISTURBED_CORES for row in rows):
        print(
            f"Other processes took {DISTURBED_CORES:g}+ cores during the pages marked: "
            "their figures overstate the app. Run again on a quiet machine."
        )
    unstable = [row["page"] for row in rows if len(row["query_counts_seen"]) > 1]
    if unstable:
        print(f"(the number of queries varied between loads of: {', '.join(unstable)})")
    slowest = max(rows, key=lambda row: row["p50_ms"])
    query = slowest["slowest_query"]
    if query:
        print(
            f"\nSlowest page: {slowest['page']} (p50 {slowest['p50_ms']:.2f} ms). "
            f"Its slowest query ({query['ms']:.2f} ms):"
        )
        print(query["sql"])
        print("\nEXPLAIN (ANALYZE, BUFFERS):")
        print(query["plan"])


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# Main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PAGES_PG_URL", DEFAULT_PG_URL),
        help="the scratch database; DROPPED and created again on every run (its name must contain 'bench')",
    )
    parser.add_argument(
        "--assets", type=int, default=10_000, help="assets (75%% models, 15%% datasets, 10%% prompts)"
    )
    parser.add_argument("--versions", type=int, default=100_000, help="versions, over all assets")
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events")
    parser.add_argument("--promotions", type=int, default=400, help="promotion requests (35%% pending)")
    parser.add_argument("--loads", type=int, default=200, help="timed loads of each page")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured loads of each page first")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data generator")
    parser.add_argument("--verify", action="store_true", help="verify the whole audit chain after the load")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    args = parser.parse_args(argv)
    if args.assets < 50 or args.versions < 1 or args.loads < 1 or args.warmup < 0 or args.promotions < 20:
        parser.error("--assets must be at least 50, --promotions at least 20, --loads at least 1")
    if args.events < args.promotions * 10:
        parser.error("--events must be at least ten times --promotions")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a plain kill cleans up like Ctrl-C
    started = dt.datetime.now(dt.UTC)
    database = None
    try:
        database = ScratchDatabase(args.pg_url)
        log(f"== scratch database {database.name}: create and migrate")
        database.create()
        env = django_env(args.pg_url)
        migrate(env)
        setup_django(env)
        log(f"== load {args.assets:,} assets, {args.versions:,} versions, {args.events:,} audit events")
        loader = Loader(args)
        load_started = time.perf_counter()
        loader.run()
        summary = loader.summary()
        # The generator's data (millions of small objects) would make the garbage collector's full passes,
        # and so some page loads, much slower than in a web worker: drop it before measuring.
        del loader
        gc.collect()
        load_seconds = round(time.perf_counter() - load_started, 1)
        log(f"   loaded in {load_seconds:.0f} s")
        verification = None
        if args.verify:
            from audit.verification import verify_log

            log("== verify the audit chain (audit.verification.verify_log)")
            result = verify_log(verifier="unused: no checkpoints", record=False)
            verification = {"ok": result.ok, "events": result.events, "problem": result.problem}
            if not result.ok:
                raise BenchError(
                    f"the loaded audit log does not verify: {result.problem} (seq {result.first_bad_seq})"
                )
            log(f"   {result.events:,} events verify")
        log(f"== measure: {args.warmup} warm-up and {args.loads} timed loads per page, Django test Client")
        rows = run_pages(summary, args)
        from django.db import connection

        connection.close()
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if database is not None and not args.keep:
            with contextlib.suppress(BenchError):
                database.drop()
    print_table(rows)
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "git": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "django": version_of("django"),
        "psycopg": version_of("psycopg"),
        "postgres_version": database.server_version,
        "method": "in-process django.test.Client with force_login; time of client.get",
        "args": {key: value for key, value in vars(args).items() if key != "pg_url"},
        "load_seconds": load_seconds,
        "load_steps_seconds": summary["timings"],
        "data": summary["counts"],
        "verification": verification,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"pages-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nResults written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
