#!/usr/bin/env python
"""Server time of the reviewer and auditor pages on a realistically large PostgreSQL database.

Creates a scratch database, migrates it, bulk-loads people, teams, `--assets` assets with `--versions`
versions, evaluations, lineage, stages, grants, policies, `--promotions` promotion requests and `--events`
audit events (a valid chain: every body built by the app's audit.services.event_body), then times
`--loads` loads of each page with Django's test Client (force_login; no server, no browser). bench/README.md
says what is loaded and how to read the table. Results go to bench/results/pages-<UTC time>.json.

    .venv/bin/python bench/pages.py --assets 500 --versions 5000 --events 50000 --loads 50   # quick
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/
import common
from common import BenchError

CAPTURED_LOADS = 5
TEAMS = ["payments", "fraud", "search", "ads", "growth", "risk", "support", "vision"]
PEOPLE_PER_TEAM, REVIEWERS = 20, 12
REVIEWER_PERSONA, AUDITOR_PERSONA = "reviewer01", "auditor01"
NARROW_PERSONA = "contractor01"  # a person outside every team, with view on two assets only
words = str.split
FIRST_NAMES = words("ana ben chen dara eli fatima gus hana ivan jo kai lena")
NOUNS = {
    "model": words("detector classifier ranker scorer forecaster recommender embedder tagger"),
    "dataset": words("transactions clicks sessions labels images tickets queries events"),
    "prompt": words("reply summary triage extract rewrite classify"),
}
FRAMEWORKS = words("xgboost lightgbm pytorch sklearn tensorflow")
EVALUATIONS = ["holdout", "backtest-30d", "fairness", "shadow-traffic"]
COLUMN_TYPES = ["string", "int64", "float64", "bool", "timestamp", "decimal(18,2)"]
BROWSERS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
]
API_AGENT = "registry-client/2.3 python-requests/2.32 (github-actions)"
# Audit events that are not about a row the loader made, drawn by weight to fill the log up to --events.
FILLER = {"login.succeeded": 42, "logout": 20, "login.failed": 5, "version.updated": 20, "asset.updated": 9}
FILLER |= {"token.created": 2.5, "token.revoked": 1.5}
# Columns of the COPYs, in the order of the generators' tuples.
ASSET_COLUMNS = words("id kind name description team_id risk_tier tags latest_version_number created_by_id")
ASSET_COLUMNS += ["created_at", "updated_at"]
VERSION_COLUMNS = words(
    "id asset_id number description tags digest uri metadata origin framework metrics params signature"
    " model_card template variables model_config commit_message row_count schema created_by_id created_at"
)
EVALUATION_COLUMNS = words("id version_id name dataset_version_id metrics details created_by_id created_at")
PROMOTION_COLUMNS = words(
    "id asset_id version_id stage_id status status_reason revision requested_by_id justification rollback ci"
    " callback_url policy_id policy_snapshot base_version_id superseded_by_id expires_at decided_at"
    " applied_at created_at updated_at"
)
HISTORY_COLUMNS = words(
    "asset_id stage_id version_id previous_version_id reason promotion_id actor_id source created_at"
)
POINTER_COLUMNS = words("id asset_id stage_id version_id updated_by_id updated_at")


def log(message: str) -> None:
    print(message, flush=True)


def when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def copy_rows(model, columns: list[str], rows, now: dt.datetime) -> int:
    """COPY rows (tuples in the order of `columns`) into the model's table. Columns not given get the
    model's defaults (a field added later with a default needs no change here); dicts and lists are JSON."""
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
            value = json.dumps(value) if isinstance(field, JSONField) else value
        extra_columns.append(column)
        extra.append(value)
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
                    row[i] = row[i] if isinstance(row[i], str) else json.dumps(row[i])
            copy.write_row((*row, *extra))
            count += 1
    return count


class Loader:
    """Makes the data in memory (compactly: only what later rows and events refer to) and COPYs it."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.rng = args, random.Random(args.seed)
        self.now_dt = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.now = self.now_dt.timestamp()
        self.start = self.now - 730 * 86400
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def copy(self, model, columns: list[str], rows) -> int:
        return copy_rows(model, columns, rows, self.now_dt)

    def summary(self) -> dict:
        """What the measurements and the report need from the loaded data."""
        busiest, events = self.asset_events.most_common(1)[0]
        self.counts["busiest_asset_events"] = events
        busiest_asset = (self.a_kind[busiest - 1], self.a_name[busiest - 1])
        return {"counts": self.counts, "timings": self.timings, "busiest_asset": busiest_asset}

    def step(self, name: str, function) -> None:
        started = time.perf_counter()
        log(f"   {name} ...")
        function()
        self.timings[name] = round(time.perf_counter() - started, 1)

    def run(self) -> None:
        from django.db import connection, transaction

        with transaction.atomic():
            self.step("people, teams and policies", self.people)
            self.step("assets", self.assets)
            self.step("versions, evaluations and lineage", self.versions)
            self.step("stages", self.stages)
            self.step("grants", self.grants)
            self.step("promotions and reviews", self.promotions)
            self.reset_sequences()
        self.step("audit events", self.audit_events)
        with connection.cursor() as cursor:
            self.step("vacuum analyze", lambda: cursor.execute("VACUUM ANALYZE"))

    # People, teams, policies (ORM: a few hundred rows) ----------------------------------------------------

    def people(self) -> None:
        from django.contrib.auth.hashers import make_password
        from django.contrib.auth.models import Group, Permission

        from accounts.models import GlobalRole, User
        from approvals.models import Policy
        from registry.models import Stage

        rng, joined, password = self.rng, when(self.start - 30 * 86400), make_password(None)
        users = []

        def person(username: str, **fields) -> None:
            email = f"{username}@example.com"
            users.append(
                User(username=username, email=email, password=password, date_joined=joined, **fields)
            )

        def member(k: int, team: str) -> str:
            return f"{FIRST_NAMES[k % len(FIRST_NAMES)]}.{team}{k:02d}"

        for team in TEAMS:
            for k in range(PEOPLE_PER_TEAM):
                person(member(k, team))
            person(f"ci-{team}", is_service_account=True)
        for k in range(1, REVIEWERS + 1):
            person(f"reviewer{k:02d}")
        for k in range(1, 4):
            person(f"auditor{k:02d}", global_role=GlobalRole.AUDITOR)
        for k in range(1, 3):
            person(f"admin{k:02d}", global_role=GlobalRole.ADMIN, is_staff=True)
        person(NARROW_PERSONA)
        User.objects.bulk_create(users)
        pk = {user.username: user.pk for user in User.objects.all()}
        self.users = {user.pk: (user.username, user.is_service_account) for user in User.objects.all()}
        self.ips = {
            p: f"10.{rng.randrange(1, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for p in self.users
        }
        groups = {name: Group.objects.create(name=name) for name in [*TEAMS, "reviewers"]}
        self.team_ids = [groups[team].pk for team in TEAMS]
        self.team_people = [[pk[member(k, team)] for k in range(PEOPLE_PER_TEAM)] for team in TEAMS]
        self.team_ci = [pk[f"ci-{team}"] for team in TEAMS]
        self.reviewers = [pk[f"reviewer{k:02d}"] for k in range(1, REVIEWERS + 1)]
        self.persona, self.narrow = pk[REVIEWER_PERSONA], pk[NARROW_PERSONA]
        self.admins = [pk["admin01"], pk["admin02"]]
        self.persons = [p for p, (_, service) in self.users.items() if not service and p != self.narrow]
        # Reviewers are engineers of a product team too; the persona works in the first one.
        self.reviewer_team = {p: index % len(TEAMS) for index, p in enumerate(self.reviewers)}
        Membership = User.groups.through
        memberships = [
            Membership(user_id=p, group_id=groups[team].pk)
            for index, team in enumerate(TEAMS)
            for p in [*self.team_people[index], self.team_ci[index]]
        ]
        for p, team in self.reviewer_team.items():
            memberships.append(Membership(user_id=p, group_id=groups["reviewers"].pk))
            memberships.append(Membership(user_id=p, group_id=self.team_ids[team]))
        Membership.objects.bulk_create(memberships)
        self.reviewers_group = groups["reviewers"].pk
        self.perm = {p.codename: p.pk for p in Permission.objects.filter(content_type__app_label="registry")}
        self.stage_ids = {stage.name: stage.pk for stage in Stage.objects.all()}
        production = Stage.objects.get(name="production")
        gate = {"type": "previous_stage", "stage": "staging", "when": "ever"}
        everyone = Policy.objects.create(stage=production, kind="", required_approvals=2, gates=[gate])
        everyone.reviewer_teams.set([groups["reviewers"]])
        gates = [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.7, "source": "any"}]
        gates.append({"type": "model_card"})
        Policy.objects.create(stage=production, kind="model", required_approvals=1, gates=gates)
        self.counts["users"] = len(users)

    # Assets ---------------------------------------------------------------------------------------------

    def assets(self) -> None:
        rng, n = self.rng, self.args.assets
        kinds = rng.choices(["model", "dataset", "prompt"], weights=[75, 15, 10], k=n)
        times = sorted(rng.uniform(self.start, self.now - 60 * 86400) for _ in range(n))
        self.a_kind, self.a_name, self.a_team, self.a_risk, self.a_ts, self.a_creator = [], [], [], [], [], []
        self.a_desc, self.a_tags = [], []
        for i in range(n):
            team, kind = rng.randrange(len(TEAMS)), kinds[i]
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
            owner, created = self.team_ids[self.a_team[i]], when(self.a_ts[i])
            row = (i + 1, self.a_kind[i], self.a_name[i], self.a_desc[i], owner, self.a_risk[i])
            yield (*row, self.a_tags[i], self.latest[i], self.a_creator[i], created, created)

    def asset_repr(self, i: int) -> str:
        return f"{self.a_kind[i]}/{self.a_name[i]}"

    # Versions, evaluations, lineage ---------------------------------------------------------------------

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
                team = self.a_team[i]
                self.v_creator.append(self.team_ci[team] if ci else rng.choice(self.team_people[team]))
            self.latest[i] = counts[i]
        self.counts["versions"] = len(self.v_asset)
        self.lineage()
        self.v_metrics: dict[int, dict] = {}
        self.v_facts: dict[int, tuple] = {}  # digest, uri, origin: for the version.created events
        self.copy(Asset, ASSET_COLUMNS, self.asset_rows())
        self.counts["assets"] = n_assets
        self.copy(AssetVersion, VERSION_COLUMNS, self.version_rows())
        self.evaluations = []
        self.copy(Evaluation, EVALUATION_COLUMNS, self.evaluation_rows())
        self.counts["evaluations"] = len(self.evaluations)
        edge_columns = ["parent_id", "child_id", "relation", "created_by_id", "created_at"]
        self.counts["lineage_edges"] = self.copy(LineageEdge, edge_columns, self.edge_rows())

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
                    older = bisect.bisect_left([self.v_ts[v - 1] for v in candidates], self.v_ts[vid - 1])
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
            run_url = f"https://ci.example.com/{TEAMS[self.a_team[i]]}/{name}/runs/{100000 + vid}"
            origin = {"commit": hashlib.sha1(f"{vid}".encode()).hexdigest(), "ref": "refs/heads/main"}
            origin["run_url"] = run_url
            row = dict.fromkeys(["framework", "model_card", "template", "commit_message"], "")
            row.update(metrics={}, params={}, signature={}, variables=[], model_config={}, schema={})
            row["row_count"] = None
            if kind == "model":
                progress = min(number / 40, 1)

                def metric(base: float, gain: float, noise: float) -> float:
                    return round(base + gain * progress + rng.uniform(-noise, noise), 4)  # noqa: B023

                metrics = {"auc": metric(0.72, 0.2, 0.02), "precision": metric(0.6, 0.25, 0.03)}
                metrics |= {"recall": metric(0.55, 0.2, 0.03), "f1": metric(0.58, 0.22, 0.03)}
                metrics["latency_ms"] = round(rng.uniform(3, 40), 2)
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
                inputs = [{"name": f"f{k}", "type": "float"} for k in range(6)]
                signature = {"inputs": inputs, "outputs": [{"name": "score", "type": "float"}]}
                row.update(framework=rng.choice(FRAMEWORKS), metrics=metrics, params=params)
                row["signature"] = signature
                row["model_card"] = self.model_card(name, number, metrics, params)
                uri = f"s3://models/{name}/{number}/model.bin"
            elif kind == "prompt":
                config = {"model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"])}
                config |= {
                    "temperature": rng.choice([0.0, 0.1, 0.2, 0.5]),
                    "max_tokens": rng.choice([256, 512, 1024]),
                }
                row.update(template=self.template(name, number), variables=["product", "question", "history"])
                row.update(model_config=config, commit_message=f"v{number}: tighten the instructions")
                uri = ""
            else:
                types = {
                    f"col_{k:02d}": COLUMN_TYPES[(k + number) % len(COLUMN_TYPES)]
                    for k in range(rng.randrange(8, 20))
                }
                row.update(row_count=rng.randrange(10_000, 50_000_000), schema=types)
                uri = f"s3://datasets/{name}/v{number}.parquet"
            if kind != "model":
                self.v_metrics[vid] = {}
            self.v_facts[vid] = (digest, uri, origin)
            tags = ["nightly"] if number % 3 else ["release"]
            row.update(
                id=vid, asset_id=i + 1, number=number, description=f"Version {number} of {name}.", tags=tags
            )
            row.update(
                digest=digest, uri=uri, metadata={"size_bytes": rng.randrange(10**6, 10**9)}, origin=origin
            )
            row.update(created_by_id=self.v_creator[index], created_at=when(self.v_ts[index]))
            yield tuple(row[column] for column in VERSION_COLUMNS)

    def model_card(self, name: str, number: int, metrics: dict, params: dict) -> str:
        rows = "\n".join(f"| {key} | {value} |" for key, value in metrics.items())
        change = "retuned thresholds" if number % 2 else "new features from the feature store"
        return (
            f"# {name} v{number}\n\n## Intended use\n\n"
            f"Scores events for the {name.split('-')[0]} team. Not for decisions about individuals without"
            " human review. Retrained weekly on the latest labelled window.\n\n## Training data\n\n"
            f"Trained on the dataset version recorded in the lineage; {params['features']} features, "
            f"{params['n_estimators']} trees of depth {params['max_depth']}.\n\n"
            f"## Metrics\n\n| metric | value |\n|---|---|\n{rows}\n\n## Limitations\n\n"
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
        rules = [
            f"Rule {k}: escalate to a human when the customer asks for it (v{number})."
            for k in range(number % 6)
        ]
        return "\n".join(lines + rules)

    def evaluation_rows(self):
        rng, eid = self.rng, 0
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
                details = {"rows": rng.randrange(10_000, 2_000_000), "duration_s": rng.randrange(30, 3600)}
                yield (eid, vid, name, dataset, metrics, details, creator, when(ts))

    def edge_rows(self):
        for vid in range(1, len(self.v_asset) + 1):
            for relation, parent in self.v_parents[vid]:
                yield (parent, vid, relation, self.v_creator[vid - 1], when(self.v_ts[vid - 1]))

    # Stages ---------------------------------------------------------------------------------------------

    def stages(self) -> None:
        """Staging moves (by CI) for about half the versions of models and prompts, production moves for
        some of those; the pointers are the last move of each asset and stage."""
        rng, pending = self.rng, set(self.pending_assets)
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
            moves = [
                (min(self.v_ts[v - 1] + rng.uniform(300, 7200), self.now - 600), "staging", v) for v in staged
            ]
            candidates = [v for v in staged if not (i in pending and v == ids[-1])]
            produced = [v for v in candidates if rng.random() < 0.35]
            if i in pending and not produced:
                produced = [candidates[-1]]
            production = []
            for vid in produced:
                staging_ts = next(ts for ts, stage, v in moves if v == vid)
                production.append((min(staging_ts + rng.uniform(86400, 5 * 86400), self.now - 3600), vid))
            current = 0
            for ts, vid in sorted(production):
                if self.v_number[vid - 1] > current:
                    moves.append((ts, "production", vid))
                    current = self.v_number[vid - 1]
            previous, team = {"staging": None, "production": None}, self.a_team[i]
            for ts, stage, vid in sorted(moves):
                if stage == "staging":
                    actor, source, reason = self.team_ci[team], "api", "CI: tests passed"
                else:
                    actor, source, reason = rng.choice(self.team_people[team]), "web", "release"
                self.history.append([ts, i, stage, vid, previous[stage], actor, source, None, reason])
                previous[stage] = vid
        self.history.sort(key=lambda move: move[0])
        self.pointer_last = {(move[1], move[2]): index for index, move in enumerate(self.history)}
        self.pointer_ids = {key: n for n, key in enumerate(sorted(self.pointer_last), start=1)}

    def stage_rows(self):
        for (asset, stage), pid in self.pointer_ids.items():
            move = self.history[self.pointer_last[(asset, stage)]]
            yield (pid, asset + 1, self.stage_ids[stage], move[3], move[5], when(move[0]))

    def history_rows(self):
        for ts, asset, stage, vid, previous, actor, source, promotion, reason in self.history:
            row = (
                asset + 1,
                self.stage_ids[stage],
                vid,
                previous,
                reason,
                promotion["pk"] if promotion else None,
            )
            yield (*row, actor, source, when(ts))

    def production_version(self, asset: int) -> int | None:
        index = self.pointer_last.get((asset, "production"))
        return self.history[index][3] if index is not None else None

    # Grants ---------------------------------------------------------------------------------------------

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
            for viewer in [p for p in rng.sample(self.persons, 3) if p != creator][
                : rng.choice([0, 1, 1, 2])
            ]:
                users.append((perm["view_asset"], viewer, i + 1))
                grant_ts = ts + rng.uniform(86400, 30 * 86400)
                self.grant_events.append((grant_ts, i, f"user:{self.users[viewer][0]}", "view", creator))
        for i in rng.sample([i for i in range(self.args.assets) if self.a_kind[i] == "model"], 2):
            users.append((perm["view_asset"], self.narrow, i + 1))
            grant_ts = self.a_ts[i] + rng.uniform(86400, 30 * 86400)
            self.grant_events.append((grant_ts, i, f"user:{NARROW_PERSONA}", "view", self.a_creator[i]))
        self.copy(AssetUserObjectPermission, ["permission_id", "user_id", "content_object_id"], users)
        self.copy(AssetGroupObjectPermission, ["permission_id", "group_id", "content_object_id"], groups)
        self.counts["user_grants"], self.counts["team_grants"] = len(users), len(groups)

    # Promotions -----------------------------------------------------------------------------------------

    def promotions(self) -> None:
        from approvals.models import PromotionRequest, Review
        from registry.models import StageHistory, StagePointer

        rng, n, promos = self.rng, self.args.promotions, []

        def reviewers_for(exclude: set, k: int) -> list[int]:
            return rng.sample([r for r in self.reviewers if r not in exclude], k)

        def request(asset, vid, base, status, requester, created) -> dict:
            number, name = self.v_number[vid - 1], self.a_name[asset]
            run_url = f"https://ci.example.com/{name}/runs/{200000 + vid}"
            ci = {
                "commit": hashlib.sha1(f"{vid}".encode()).hexdigest(),
                "ref": "refs/heads/main",
                "run_url": run_url,
            }
            promo = {"asset": asset, "version": vid, "base": base, "status": status, "requester": requester}
            promo |= {
                "created": created,
                "expires": created + 7 * 24 * 3600,
                "decided": None,
                "applied": None,
            }
            promo |= {"reviews": [], "superseded_by": None, "history": None, "ci": ci}
            promo["justification"] = f"{name} v{number} beats production on the holdout set."
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
        decided, latest_production = n - len(promos), {}
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
            promo.update(
                decided=ts - 30, applied=ts, history=index, reviews=[(r, "approve") for r in approvers]
            )
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
        by_asset: dict[int, list] = {}
        for pk, promo in enumerate(promos, start=1):
            promo["pk"] = pk
            by_asset.setdefault(promo["asset"], []).append(promo)
        for promo in promos:
            later = [p for p in by_asset[promo["asset"]] if p["created"] > promo["created"]]
            if promo["status"] == "superseded" and later:
                promo["superseded_by"], promo["decided"] = later[0]["pk"], later[0]["created"]
        self.promos = promos
        self.snapshots = self.policy_snapshots({p["asset"] for p in promos})
        self.copy(PromotionRequest, PROMOTION_COLUMNS, self.promotion_rows())
        self.counts["promotions"] = len(promos)
        self.counts["pending_promotions"] = sum(p["status"] == "pending" for p in promos)
        review_columns = ["promotion_id", "reviewer_id", "decision", "comment", "created_at"]
        self.counts["reviews"] = self.copy(Review, review_columns, self.review_rows())
        for move in self.history:
            if isinstance(move[7], dict):
                move[8] = f"promotion #{move[7]['pk']}"
        self.counts["stage_pointers"] = self.copy(StagePointer, POINTER_COLUMNS, self.stage_rows())
        self.counts["stage_history"] = self.copy(StageHistory, HISTORY_COLUMNS, self.history_rows())

    def policy_snapshots(self, assets: set[int]) -> dict[int, tuple[int, dict]]:
        """The policy and the combined requirements of each asset's production promotions (the app's own
        functions, so that the snapshot has the shape the app records)."""
        from approvals.requirements import combined_requirements, policies_for
        from registry.models import Asset, Stage

        production, out = Stage.objects.get(name="production"), {}
        for asset in assets:
            policies = policies_for(Asset(pk=asset + 1, kind=self.a_kind[asset]), production)
            out[asset] = (policies[0].pk, combined_requirements(policies))
        return out

    def promotion_rows(self):
        reasons = {"expired": "The request expired.", "superseded": "A newer request replaced it."}
        for p in self.promos:
            policy, snapshot = self.snapshots[p["asset"]]
            updated = p["applied"] or p["decided"] or p["created"]
            revision = 1 + len(p["reviews"]) + (p["status"] != "pending")
            head = (p["pk"], p["asset"] + 1, p["version"], self.stage_ids["production"], p["status"])
            head += (reasons.get(p["status"], ""), revision, p["requester"], p["justification"], False)
            decided, applied = (when(p[key]) if p[key] else None for key in ("decided", "applied"))
            tail = (when(p["expires"]), decided, applied, when(p["created"]), when(updated))
            yield (*head, p["ci"], "", policy, snapshot, p["base"], p["superseded_by"], *tail)

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

    # Audit events ---------------------------------------------------------------------------------------

    def audit_events(self) -> None:
        from django.db import connection, transaction

        from audit.models import AuditEvent, AuditHead
        from audit.triggers import suspended

        real, budget = self.real_events(), self.args.events
        if len(real) > budget * 0.8:  # small runs: keep every promotion event, sample the rest
            promotions = len(self.promo_events)
            keep = max(0.0, (budget * 0.8 - promotions) / max(1, len(real) - promotions))
            real = [e for e in real if e[1] == "promotion" or self.rng.random() < keep]
        fillers = sorted(self.rng.uniform(self.start, self.now - 60) for _ in range(budget - len(real)))
        self.counts["audit_events_about_loaded_rows"] = len(real)
        self.chain, self.asset_events = b"", Counter()
        with transaction.atomic(), suspended(connection):
            self.copy(AuditEvent, ["id", *common.event_columns()], self.event_rows(real, fillers))
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
        self.promo_events = [event for promo in self.promos for event in self.promotion_events(promo)]
        events += [(e[0], "promotion", e) for e in self.promo_events]
        return sorted(events, key=lambda e: e[0])

    def promotion_events(self, p: dict) -> list[tuple]:
        """(time, action, promotion, actor, channel, changes) as approvals.services records them."""
        required = self.snapshots[p["asset"]][1]["required_approvals"]
        number, requester = self.v_number[p["version"] - 1], p["requester"]
        changes = {"version": number, "stage": "production", "justification": p["justification"]}
        changes |= {"base_version": self.v_number[p["base"] - 1] if p["base"] else None}
        changes |= {"rollback": False, "ci": p["ci"], "required_approvals": required}
        channel = "api" if self.users[requester][1] else "web"
        out = [(p["created"], "promotion.requested", p, requester, channel, changes)]
        approvals = 0
        for (reviewer, decision), ts in zip(p["reviews"], self.review_times(p), strict=True):
            if decision == "approve":
                approvals += 1
                changes = {
                    "comment": "LGTM: metrics hold on the holdout.",
                    "approvals": approvals,
                    "required": required,
                }
                out.append((ts, "promotion.approved", p, reviewer, "web", changes))
            else:
                out.append((ts, "promotion.rejected", p, reviewer, "web", {"comment": "Recall regressed."}))
        status, decided = p["status"], p["decided"]
        if status == "applied":
            approver = p["reviews"][-1][0]
            out.append((decided, "promotion.quorum_reached", p, approver, "web", {"approvals": approvals}))
            changes = {"stage": "production", "version": number}
            out.append((p["applied"], "promotion.applied", p, approver, "web", changes))
        elif status == "cancelled":
            changes = {"reason": "CI run re-triggered."}
            out.append((decided, "promotion.cancelled", p, requester, "api", changes))
        elif status == "expired":
            out.append((decided, "promotion.expired", p, None, "task", {"expires_at": when(p["expires"])}))
        elif status == "superseded" and p["superseded_by"]:
            changes = {"superseded_by": p["superseded_by"]}
            out.append((decided, "promotion.superseded", p, requester, "api", changes))
        return [event for event in out if event[0] < self.now - 1]

    def context(self, actor: int | None, channel: str) -> dict:
        request_id = f"{self.rng.getrandbits(128):032x}"
        if channel in ("cli", "task"):
            return {"request_id": request_id}
        agent = API_AGENT if channel == "api" else BROWSERS[(actor or 0) % len(BROWSERS)]
        return {"request_id": request_id, "ip": self.ips.get(actor, "10.0.0.1"), "user_agent": agent}

    def describe_real(self, kind: str, ref) -> tuple:
        """(action, actor, channel, (target kind, id, repr), asset index, changes)."""
        if kind == "asset":
            i, creator = ref, self.a_creator[ref]
            team = TEAMS[self.a_team[i]]
            after = {
                "description": self.a_desc[i],
                "team": team,
                "risk_tier": self.a_risk[i],
                "tags": self.a_tags[i],
            }
            grants = [{"principal": f"user:{self.users[creator][0]}", "role": "manage"}]
            grants.append({"principal": f"team:{team}", "role": "contribute"})
            target = ("registry.asset", str(i + 1), self.asset_repr(i))
            return "asset.created", creator, "web", target, i, {"after": after, "grants": grants}
        if kind == "grant":
            _, i, principal, role, actor = ref
            target = ("registry.asset", str(i + 1), self.asset_repr(i))
            return "grant.added", actor, "web", target, i, {"principal": principal, "role": role}
        if kind == "version":
            vid = ref
            digest, uri, origin = self.v_facts[vid]
            lineage = [{"relation": r, "parent": self.version_repr(p)} for r, p in self.v_parents[vid]]
            after = {
                "number": self.v_number[vid - 1],
                "digest": digest,
                "uri": uri,
                "metrics": self.v_metrics[vid],
            }
            after |= {"source": origin, "lineage": lineage}
            actor = self.v_creator[vid - 1]
            target = ("registry.assetversion", str(vid), self.version_repr(vid))
            channel = "api" if self.users[actor][1] else "cli"
            return "version.created", actor, channel, target, self.v_asset[vid - 1], {"after": after}
        if kind == "evaluation":
            _, eid, vid, name, metrics, dataset, creator = ref
            dataset = self.version_repr(dataset) if dataset else None
            after = {"version": self.version_repr(vid), "name": name, "metrics": metrics, "dataset": dataset}
            target = ("registry.evaluation", str(eid), f"{name} of {self.version_repr(vid)}")
            return "evaluation.added", creator, "api", target, self.v_asset[vid - 1], {"after": after}
        if kind == "stage":
            _, i, stage, vid, previous, actor, channel, promo, reason = ref
            before = {"version": self.v_number[previous - 1] if previous else None}
            changes = {"stage": stage, "before": before, "after": {"version": self.v_number[vid - 1]}}
            changes |= {"reason": reason, "promotion": promo["pk"] if promo else None}
            pointer = str(self.pointer_ids[(i, stage)])
            target = ("registry.stagepointer", pointer, f"{self.asset_repr(i)} in {stage}")
            return "stage.set", actor, channel, target, i, changes
        _, action, promo, actor, channel, changes = ref
        text = f"promotion #{promo['pk']}: {self.version_repr(promo['version'])} \u2192 production"
        target = ("approvals.promotionrequest", str(promo["pk"]), text)
        return action, actor, channel, target, promo["asset"], changes

    def describe_filler(self, ts: float) -> tuple:
        rng = self.rng
        action = rng.choices(list(FILLER), weights=list(FILLER.values()))[0]
        if action in ("login.succeeded", "logout"):
            user = rng.choice(self.persons)
            return action, user, "web", ("accounts.user", str(user), self.users[user][0]), None, {}
        if action == "login.failed":
            name = self.users[rng.choice(self.persons)][0]
            changes = {"username": name, "reason": "wrong password"}
            return action, None, "web", ("accounts.user", "", name), None, changes
        if action == "version.updated" and (older := bisect.bisect_left(self.v_by_time, ts)):
            vid = self.v_order[rng.randrange(older)]
            i = self.v_asset[vid - 1]
            changes = {"before": {"tags": ["nightly"]}, "after": {"tags": ["nightly", "candidate"]}}
            target = ("registry.assetversion", str(vid), self.version_repr(vid))
            return action, rng.choice(self.team_people[self.a_team[i]]), "web", target, i, changes
        if action == "asset.updated" and (older := bisect.bisect_left(self.a_ts, ts)):
            i = rng.randrange(older)
            changes = {
                "before": {"description": self.a_desc[i]},
                "after": {"description": self.a_desc[i] + " Owned."},
            }
            target = ("registry.asset", str(i + 1), self.asset_repr(i))
            return action, rng.choice(self.team_people[self.a_team[i]]), "web", target, i, changes
        # token.created / token.revoked (and the rare update with nothing older to update)
        admin, account = rng.choice(self.admins), rng.choice(self.team_ci)
        token = rng.randrange(1, 5000)
        target = ("accounts.apitoken", str(token), f"mgr_{token:08x}_\u2026{token % 9973:04d} (ci)")
        if action == "token.revoked":
            changes = {"account": self.users[account][0], "lookup": f"{token:08x}"}
            return action, admin, "web", target, None, changes
        changes = {"account": self.users[account][0], "name": "ci", "scopes": ["read", "write", "promote"]}
        return "token.created", admin, "web", target, None, changes

    def event_rows(self, real: list[tuple], fillers: list[float]):
        """The events in time order, each one's body built by audit.services.event_body."""
        from audit.canonical import GENESIS_CHAIN, jsonable

        self.v_order = sorted(range(1, len(self.v_asset) + 1), key=lambda v: self.v_ts[v - 1])
        self.v_by_time = [self.v_ts[v - 1] for v in self.v_order]
        chain, r, f = GENESIS_CHAIN, 0, 0
        started, total = time.perf_counter(), len(real) + len(fillers)
        for seq in range(1, total + 1):
            if f >= len(fillers) or (r < len(real) and real[r][0] <= fillers[f]):
                ts, kind, ref = real[r]
                r += 1
                action, actor, channel, target, asset, changes = self.describe_real(kind, ref)
            else:
                ts, f = fillers[f], f + 1
                action, actor, channel, target, asset, changes = self.describe_filler(ts)
            name, service = self.users[actor] if actor is not None else ("system", None)
            asset_id = asset + 1 if asset is not None else None
            columns = {"seq": seq, "occurred_at": when(ts), "actor_id": actor, "actor_repr": name}
            columns["action"] = action
            columns["actor_kind"] = "system" if actor is None else "service_account" if service else "user"
            columns |= {"target_kind": target[0], "target_id": target[1], "target_repr": target[2][:300]}
            columns |= {"asset_id": asset_id, "changes": jsonable(changes), "source": channel}
            columns["context"] = self.context(actor, channel)
            row = common.event_row(columns, chain)
            chain = row[-1]
            if asset_id is not None:
                self.asset_events[asset_id] += 1
            yield (seq, *row)
            if seq % 100_000 == 0:
                log(f"      {seq:>9,} of {total:,} events ({seq / (time.perf_counter() - started):,.0f}/s)")
        self.chain = chain


# Measuring ---------------------------------------------------------------------------------------------


class StatementTimer:
    """An execute wrapper that times each statement with perf_counter (CaptureQueriesContext rounds its
    times to the millisecond)."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.ms.append((time.perf_counter() - started) * 1000)


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
    seconds, size = [], 0
    in_database = common.postgres_owner(settings.DATABASES["default"]["NAME"], background=False)
    meter = common.CpuMeter(interval=3600)  # no samples between: they would bill this process
    for _ in range(args.loads):
        started = time.perf_counter()
        size = len(load().content)
        seconds.append(time.perf_counter() - started)
    usage = meter.stop(lambda pid, *rest: "app" if pid == os.getpid() else in_database(pid, *rest))
    cpu = usage and {
        "app_cpu_ms": round(usage["seconds"].get("app", 0.0) / args.loads * 1000, 2),
        "db_cpu_ms": round(usage["seconds"].get("database", 0.0) / args.loads * 1000, 2),
        # the rest of the machine, and what the hypervisor took from this virtual machine
        "other_cores": round((usage["other"] + usage["steal"]) / usage["wall"], 2),
    }
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
        medians = [statistics.median(c[k][1] for c in captures) for k in range(len(reference))]
        queries = [{"sql": sql, "ms": round(ms, 3)} for (sql, _), ms in zip(reference, medians, strict=True)]
    else:
        queries = [{"sql": sql, "ms": round(ms, 3)} for sql, ms in reference]
    return {
        "page": name,
        "path": path,
        "persona": persona,
        "loads": len(seconds),
        "warmup": args.warmup,
        "bytes": size,
        **common.latency_summary(seconds, 50, 90, 99, digits=2),
        "queries": len(reference),
        "query_counts_seen": sorted(counts),
        "sql_ms": round(statistics.median(sum(ms for _, ms in capture) for capture in captures), 2),
        "cpu": cpu,
        "statements": queries,
    }


def run_pages(summary: dict, args: argparse.Namespace) -> list[dict]:
    from django.db import connection
    from django.test import Client

    from accounts.models import User
    from approvals import selectors

    inbox = list(selectors.promotion_inbox_for_user(user=User.objects.get(username=REVIEWER_PERSONA))[:50])
    if not inbox:
        raise BenchError("the reviewer persona has no pending request in its inbox; load more --promotions")
    based = [p for p in inbox if p.base_version_id]
    reviewed = next((p for p in based if p.approvals_so_far), based[0] if based else inbox[0])
    kind, name = summary["busiest_asset"]
    summary["counts"]["inbox_waiting_shown"] = len(inbox)
    measured = [
        ("inbox", "/", REVIEWER_PERSONA),
        ("promotion", f"/promotions/{reviewed.pk}/", REVIEWER_PERSONA),
        ("audit", "/audit/", AUDITOR_PERSONA),  # sign-ins left out, as the page does by default
        ("audit-all", "/audit/?exclude=", AUDITOR_PERSONA),  # everything, sign-ins included
        ("audit-asset", "/audit/?" + urlencode({"asset_kind": kind, "asset_name": name}), AUDITOR_PERSONA),
        # part of a name, in another case: about 1 % of the assets (fraud's detectors)
        ("audit-part", "/audit/?" + urlencode({"asset_name": "FRAUD-DET"}), AUDITOR_PERSONA),
        # part of a name that only one quiet asset holds: the events must come by index, not by a scan
        ("audit-one", "/audit/?" + urlencode({"asset_name": "-00007"}), AUDITOR_PERSONA),
        ("inbox-narrow", "/", NARROW_PERSONA),
        # the asset page as the hub: versions with stage badges, promotions, policies, the metric chart
        ("asset", f"/registry/{kind}/{name}/", AUDITOR_PERSONA),
        ("promotions", "/promotions/", REVIEWER_PERSONA),
        ("policies", "/policies/", REVIEWER_PERSONA),
    ]
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
        if slowest:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
                slowest = {**slowest, "plan": "\n".join(line for (line,) in cursor.fetchall())}
        row["slowest_query"] = slowest
    return rows


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'page':<12} {'loads':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'queries':>7} {'sql ms':>7} {'app cpu':>7} {'db cpu':>7} {'other':>6} {'KiB':>6}  path"
    )
    print()
    lines = [
        f"{row['page']:<12} {row['loads']:>5} {row['p50_ms']:>8.2f} {row['p90_ms']:>8.2f} "
        f"{row['p99_ms']:>8.2f} {row['max_ms']:>8.2f} {row['queries']:>7} {row['sql_ms']:>7.2f} "
        f"{common.number(row['cpu'].get('app_cpu_ms')):>7} {common.number(row['cpu'].get('db_cpu_ms')):>7} "
        f"{common.number(row['cpu'].get('other_cores')):>6} {row['bytes'] / 1024:>6.1f}  {row['path']}"
        for row in rows
    ]
    flags = [row["cpu"].get("other_cores", 0) >= common.DISTURBED_CORES for row in rows]
    common.table(header, lines, flags, "pages")
    print(
        "ms per load; sql: time in SQL statements (median of the captured loads); app cpu: this process"
        " (Django and the test client); db cpu: the database's backends; other: cores used meanwhile by the"
        " rest of the machine"
    )
    unstable = [row["page"] for row in rows if len(row["query_counts_seen"]) > 1]
    if unstable:
        print(f"(the number of queries varied between loads of: {', '.join(unstable)})")
    slowest = max(rows, key=lambda row: row["p50_ms"])
    if query := slowest["slowest_query"]:
        print(
            f"\nSlowest page: {slowest['page']} (p50 {slowest['p50_ms']:.2f} ms). "
            f"Its slowest query ({query['ms']:.2f} ms):"
        )
        print(query["sql"] + "\n\nEXPLAIN (ANALYZE, BUFFERS):\n" + query["plan"])


OPTIONS = """
--assets      10000    assets (75%% models, 15%% datasets, 10%% prompts)
--versions    100000   versions, over all assets
--events      1000000  audit events
--promotions  400      promotion requests (35%% pending)
--loads       200      timed loads of each page
--warmup      10       unmeasured loads of each page first
--seed        1        seed of the data generator
--verify      -        verify the whole audit chain after the load
--keep        -        keep the scratch database at the end
--reuse       -        measure a database an earlier --keep run left (same --pg-url): no create, no load
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, OPTIONS, ("BENCH_PAGES_PG_URL", "pages_bench"))
    args = parser.parse_args(argv)
    if args.assets < 50 or args.versions < 1 or args.loads < 1 or args.warmup < 0 or args.promotions < 20:
        parser.error("--assets must be at least 50, --promotions at least 20, --loads at least 1")
    if args.events < args.promotions * 10:
        parser.error("--events must be at least ten times --promotions")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    meta = common.meta(started, args, "django", "psycopg")
    database = common.ScratchDatabase(args.pg_url)
    results = {}

    def run() -> int:
        try:
            env = common.django_env(args.pg_url, DJANGO_LOG_LEVEL="WARNING")
            if args.reuse:
                return measure_again(env)
            log(f"== scratch database {database.name}: create and migrate")
            database.create()
            common.manage(env, "migrate", "--noinput")
            os.environ.update(env)
            import django

            django.setup()
            log(f"== load {args.assets:,} assets, {args.versions:,} versions, {args.events:,} audit events")
            loader, load_started = Loader(args), time.perf_counter()
            loader.run()
            summary = loader.summary()
            # The generator's data (millions of small objects) would make the garbage collector's full
            # passes, and so some page loads, much slower than in a web worker: drop it before measuring.
            del loader
            gc.collect()
            meta["load_seconds"] = round(time.perf_counter() - load_started, 1)
            log(f"   loaded in {meta['load_seconds']:.0f} s")
            meta["verification"] = None
            if args.verify:
                from audit.verification import verify_log

                log("== verify the audit chain (audit.verification.verify_log)")
                result = verify_log(verifier="unused: no checkpoints", record=False)
                meta["verification"] = {"ok": result.ok, "events": result.events, "problem": result.problem}
                if not result.ok:
                    raise BenchError(
                        f"the loaded audit log does not verify: {result.problem} (seq {result.first_bad_seq})"
                    )
                log(f"   {result.events:,} events verify")
            log(
                f"== measure: {args.warmup} warm-up and {args.loads} timed loads per page, Django test Client"
            )
            results["rows"] = run_pages(summary, args)
            meta.update(load_steps_seconds=summary["timings"], data=summary["counts"])
        finally:
            if not args.keep and not args.reuse:
                with contextlib.suppress(BenchError):
                    database.drop()
        return 0

    def measure_again(env: dict) -> int:
        os.environ.update(env)
        import django

        django.setup()
        from django.db import connection

        with connection.cursor() as cursor:  # the asset with the most events, as the loader counted
            cursor.execute(
                "SELECT e.asset_id, count(*), a.kind, a.name FROM audit_auditevent e JOIN registry_asset a"
                " ON a.id = e.asset_id GROUP BY e.asset_id, a.kind, a.name ORDER BY 2 DESC, 1 LIMIT 1"
            )
            _, events, kind, name = cursor.fetchone()
        log(f"== measure the kept database {database.name} again: {args.warmup} warm-up, {args.loads} loads")
        summary = {"counts": {"busiest_asset_events": events}, "timings": {}, "busiest_asset": (kind, name)}
        results["rows"] = run_pages(summary, args)
        meta.update(reused=True, data=summary["counts"])
        return 0

    if code := common.run_main(run):
        return code
    print_table(results["rows"])
    meta["postgres_version"] = database.server_version
    meta["method"] = "in-process django.test.Client with force_login; time of client.get"
    common.write_results("pages", started, {"meta": meta, "results": results["rows"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
