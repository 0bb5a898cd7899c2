"""The lineage graph of one version, drawn as an SVG on the server: parents left, children right.

Pure layout over edges already fetched and filtered for visibility (`selectors.lineage_for_user`); no
database access. Every piece of text and every attribute goes through `format_html`, so asset names and
descriptions are escaped wherever they come from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from registry.models import AssetVersion, LineageEdge, Relation

NODE_W, NODE_H = 240, 40
COL_GAP, ROW_GAP, PAD = 150, 18, 12
# A dataset used by hundreds of models would make a column hundreds of boxes tall: show this many
# per column and say how many more there are (the page lists the API route that returns them all).
MAX_PER_COLUMN = 12
LABEL_CHARS = 30
TITLE_CHARS = 200
RELATION_LABELS = dict(Relation.choices)


def node_label(version: AssetVersion) -> str:
    return f"{version.asset.kind}/{version.asset.name}@{version.number}"


def version_href(version: AssetVersion) -> str:
    try:
        return reverse(
            "registry:version-detail",
            kwargs={"kind": version.asset.kind, "name": version.asset.name, "number": version.number},
        )
    except NoReverseMatch:  # a name the URL pattern cannot carry: show the node without a link
        return ""


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Node:
    version: AssetVersion
    column: int  # negative: upstream (hops to the left); positive: downstream; 0: the version itself
    row: int = 0

    @property
    def label(self) -> str:
        return node_label(self.version)


@dataclass
class Graph:
    """The laid-out graph: the nodes and edges shown, how many nodes were left out, and the SVG."""

    center: AssetVersion
    nodes: dict[int, Node] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    hidden: int = 0
    hidden_by_column: dict[int, int] = field(default_factory=dict)
    svg: SafeString = field(default_factory=lambda: mark_safe(""))

    @property
    def upstream_count(self) -> int:
        return sum(1 for node in self.nodes.values() if node.column < 0)

    @property
    def downstream_count(self) -> int:
        return sum(1 for node in self.nodes.values() if node.column > 0)


def _ranks(center_pk: int, pairs: list[tuple[int, int, int]]) -> dict[int, int]:
    """Hops from the centre for one side: pairs are (near, far, depth) with far one hop further out.

    A node sits at least at its walk depth and one column beyond every neighbour nearer the centre, so
    every edge points strictly from left to right even when a shortcut edge skips a column.
    """
    ranks: dict[int, int] = {center_pk: 0}
    for near, far, depth in pairs:
        ranks[far] = max(ranks.get(far, 0), depth)
        if near != center_pk:
            ranks[near] = max(ranks.get(near, 0), depth - 1)
    # Longest-path relaxation; a graph without cycles settles in fewer passes than it has nodes.
    for _ in range(len(ranks) + 1):
        changed = False
        for near, far, _depth in pairs:
            if ranks[far] < ranks[near] + 1:
                ranks[far] = ranks[near] + 1
                changed = True
        if not changed:
            break
    return ranks


def layout(
    center: AssetVersion,
    upstream: list[tuple[LineageEdge, int]],
    downstream: list[tuple[LineageEdge, int]],
    *,
    max_per_column: int = MAX_PER_COLUMN,
) -> Graph:
    """Place each version in a column (hops from the centre) and a row; cap the rows per column."""
    versions: dict[int, AssetVersion] = {center.pk: center}
    up_pairs, down_pairs, all_edges = [], [], []
    for edge, depth in upstream:
        if edge.parent_id == center.pk:  # would be a cycle; never drawn
            continue
        versions.setdefault(edge.parent_id, edge.parent)
        versions.setdefault(edge.child_id, edge.child)
        up_pairs.append((edge.child_id, edge.parent_id, depth))
        all_edges.append(edge)
    up_ranks = _ranks(center.pk, up_pairs)
    for edge, depth in downstream:
        # A version both upstream and downstream would mean a cycle: it stays where it was placed first.
        if (
            edge.child_id == center.pk
            or edge.child_id in up_ranks
            or (edge.parent_id != center.pk and edge.parent_id in up_ranks)
        ):
            continue
        versions.setdefault(edge.parent_id, edge.parent)
        versions.setdefault(edge.child_id, edge.child)
        down_pairs.append((edge.parent_id, edge.child_id, depth))
        all_edges.append(edge)
    down_ranks = _ranks(center.pk, down_pairs)

    columns: dict[int, list[int]] = defaultdict(list)
    for pk, rank in up_ranks.items():
        columns[-rank].append(pk)
    for pk, rank in down_ranks.items():
        if pk != center.pk:
            columns[rank].append(pk)

    neighbours: dict[int, set[int]] = defaultdict(set)
    for edge in all_edges:
        neighbours[edge.parent_id].add(edge.child_id)
        neighbours[edge.child_id].add(edge.parent_id)

    graph = Graph(center=center)
    placed: dict[int, Node] = {}
    for column in sorted(columns, key=lambda c: (abs(c), c)):

        def order(pk: int, column: int = column) -> tuple[float, str]:
            # Barycentre of the neighbours already placed nearer the centre: fewer crossing edges.
            rows = [
                placed[n].row for n in neighbours[pk] if n in placed and abs(placed[n].column) < abs(column)
            ]
            return (sum(rows) / len(rows) if rows else math.inf, node_label(versions[pk]))

        members = sorted(columns[column], key=order)
        for row, pk in enumerate(members[:max_per_column]):
            placed[pk] = Node(version=versions[pk], column=column, row=row)
        if len(members) > max_per_column:
            graph.hidden_by_column[column] = len(members) - max_per_column
    graph.nodes = placed
    graph.hidden = sum(graph.hidden_by_column.values())
    graph.edges = [edge for edge in all_edges if edge.parent_id in placed and edge.child_id in placed]
    return graph


def _node_svg(node: Node, x: int, y: int, *, current: bool) -> SafeString:
    asset = node.version.asset
    title = node.label
    if asset.description:
        title += " — " + _shorten(" ".join(asset.description.split()), TITLE_CHARS)
    body = format_html(
        '<title>{}</title><rect x="{}" y="{}" width="{}" height="{}" rx="6"/>'
        '<text x="{}" y="{}" class="kind">{}</text><text x="{}" y="{}">{}</text>',
        title,
        x,
        y,
        NODE_W,
        NODE_H,
        x + 10,
        y + 15,
        asset.kind,
        x + 10,
        y + 32,
        _shorten(f"{asset.name}@{node.version.number}", LABEL_CHARS),
    )
    css = f"node kind-{asset.kind}" + (" current" if current else "")
    href = "" if current else version_href(node.version)
    if href:
        return format_html('<a href="{}" class="{}">{}</a>', href, css, body)
    return format_html('<g class="{}">{}</g>', css, body)


def render(
    center: AssetVersion,
    upstream: list[tuple[LineageEdge, int]],
    downstream: list[tuple[LineageEdge, int]],
    *,
    depth: int,
    max_per_column: int = MAX_PER_COLUMN,
) -> Graph:
    """Lay out the graph and draw it: boxes linked to their version pages, edges labelled by relation."""
    graph = layout(center, upstream, downstream, max_per_column=max_per_column)
    columns: dict[int, int] = defaultdict(int)
    for node in graph.nodes.values():
        columns[node.column] += 1
    for column in graph.hidden_by_column:
        columns[column] += 1  # a "+N more" box
    first, last = min(columns), max(columns)
    tallest = max(columns.values())
    step_x, step_y = NODE_W + COL_GAP, NODE_H + ROW_GAP
    width = 2 * PAD + (last - first) * step_x + NODE_W
    height = 2 * PAD + tallest * step_y - ROW_GAP

    def origin(column: int, row: int) -> tuple[int, int]:
        offset = (tallest - columns[column]) * step_y // 2
        return PAD + (column - first) * step_x, PAD + offset + row * step_y

    # One arrow per pair of versions, its label naming every relation between them.
    relations: dict[tuple[int, int], list[str]] = defaultdict(list)
    for edge in graph.edges:
        relations[(edge.parent_id, edge.child_id)].append(RELATION_LABELS.get(edge.relation, edge.relation))
    edges_svg = []
    for (parent_pk, child_pk), names in relations.items():
        parent, child = graph.nodes[parent_pk], graph.nodes[child_pk]
        px, py = origin(parent.column, parent.row)
        cx, cy = origin(child.column, child.row)
        x1, y1, x2, y2 = px + NODE_W, py + NODE_H // 2, cx, cy + NODE_H // 2
        mid = (x1 + x2) // 2
        edges_svg.append(
            format_html(
                '<g class="edge"><path d="M{} {} C{} {} {} {} {} {}" marker-end="url(#lineage-arrow)"/>'
                '<text x="{}" y="{}" text-anchor="end">{}</text></g>',
                x1,
                y1,
                mid,
                y1,
                mid,
                y2,
                x2 - 2,
                y2,
                # Labelled where the arrow enters the child: fanned-out edges keep their labels apart.
                x2 - 10,
                y2 - 6,
                ", ".join(names).lower(),
            )
        )
    nodes_svg = []
    for node in graph.nodes.values():
        x, y = origin(node.column, node.row)
        nodes_svg.append(_node_svg(node, x, y, current=node.version.pk == center.pk))
    for column, hidden in sorted(graph.hidden_by_column.items()):
        x, y = origin(column, columns[column] - 1)
        nodes_svg.append(
            format_html(
                '<g class="more"><rect x="{}" y="{}" width="{}" height="{}" rx="6"/>'
                '<text x="{}" y="{}" text-anchor="middle">+{} more not shown</text></g>',
                x,
                y,
                NODE_W,
                NODE_H,
                x + NODE_W // 2,
                y + NODE_H // 2 + 5,
                hidden,
            )
        )
    description = (
        f"{graph.upstream_count} upstream and {graph.downstream_count} downstream versions, up to {depth} "
        "hops away. Parents are on the left, children on the right; arrows point from parent to child."
    )
    graph.svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="lineage-svg" width="{}" height="{}" '
        'viewBox="0 0 {} {}" role="group" aria-labelledby="lineage-title lineage-desc">'
        '<title id="lineage-title">Lineage of {}</title><desc id="lineage-desc">{}</desc>'
        '<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0 0 L10 5 L0 10 z"/></marker></defs>'
        '<g class="edges">{}</g><g class="nodes">{}</g></svg>',
        width,
        height,
        width,
        height,
        node_label(center),
        description,
        format_html_join("", "{}", ((part,) for part in edges_svg)),
        format_html_join("", "{}", ((part,) for part in nodes_svg)),
    )
    return graph
