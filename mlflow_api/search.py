"""MLflow's search grammar, as its client sends it: filter strings, order_by clauses and page tokens.

Pure functions, no database: a filter string becomes a list of Clause; the views apply them. A filter the
registry cannot answer is refused (INVALID_PARAMETER_VALUE naming the part), never ignored.

    filter  := clause ("AND" clause)*
    clause  := key op value
    key     := identifier | tags.<identifier> | tags.`any text`    ("tag." is read as "tags.")
    op      := = | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value   := 'text' | "text" | number | ( value, ... )
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from mlflow_api.errors import invalid

MAX_FILTER_LENGTH = 2000
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<key>(?:tags?\.)?(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_.]*))
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<paren>[(),])
    )""",
    re.VERBOSE,
)
WORD_OPS = {"LIKE", "ILIKE", "IN", "AND", "NOT"}


@dataclass(frozen=True)
class Clause:
    key: str  # an attribute name, or "tags.<key>"
    op: str  # = != < <= > >= LIKE ILIKE IN NOT IN
    value: object  # str, int or float; a tuple for IN and NOT IN

    @property
    def is_tag(self) -> bool:
        return self.key.startswith("tags.")

    @property
    def tag(self) -> str:
        return self.key[len("tags.") :]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise invalid(f"filter_string: cannot parse {text[position:].strip()[:40]!r}")
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "key" and value.upper() in WORD_OPS:
            kind, value = "word", value.upper()
        tokens.append((kind, value))
        position = match.end()
    return tokens


def _literal(kind: str, value: str):
    if kind == "string":
        body = value[1:-1]
        return re.sub(r"\\(.)", r"\1", body)
    if kind == "number":
        return float(value) if "." in value else int(value)
    raise invalid(f"filter_string: expected a value, found {value!r}")


def _key(value: str) -> str:
    prefix, dot, rest = value.partition(".")
    if dot and prefix in ("tag", "tags"):
        return "tags." + rest.strip("`")
    if "`" in value:
        return value.strip("`")
    return value


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow filter string (joined by AND; MLflow has no OR)."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid(f"filter_string: at most {MAX_FILTER_LENGTH} characters")
    tokens = _tokens(text)
    clauses, index = [], 0

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise invalid("filter_string: ends in the middle of a clause")
        token = tokens[index]
        index += 1
        return token

    while True:
        kind, value = take()
        if kind != "key":
            raise invalid(f"filter_string: expected a key, found {value!r}")
        key = _key(value)
        kind, op = take()
        if kind == "word" and op == "NOT":
            kind, word = take()
            if word != "IN":
                raise invalid("filter_string: NOT must be followed by IN")
            op = "NOT IN"
        elif not (kind == "op" or (kind == "word" and op in ("LIKE", "ILIKE", "IN"))):
            raise invalid(f"filter_string: expected a comparison after {key!r}, found {op!r}")
        if op in ("IN", "NOT IN"):
            if take() != ("paren", "("):
                raise invalid(f"filter_string: {op} takes a parenthesised list")
            values = []
            while True:
                values.append(_literal(*take()))
                separator = take()
                if separator == ("paren", ")"):
                    break
                if separator != ("paren", ","):
                    raise invalid(f"filter_string: expected ',' or ')' in the {op} list")
            clauses.append(Clause(key, op, tuple(values)))
        else:
            clauses.append(Clause(key, op, _literal(*take())))
        if index == len(tokens):
            return clauses
        kind, value = take()
        if (kind, value) != ("word", "AND"):
            raise invalid(f"filter_string: expected AND between clauses, found {value!r}")


def like_regex(pattern: str) -> str:
    """An SQL LIKE pattern as an anchored regular expression (% any run, _ one character)."""
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return "^" + "".join(parts) + "$"


@dataclass(frozen=True)
class Order:
    key: str
    descending: bool


def parse_order_by(values: list[str], allowed: set[str]) -> list[Order]:
    orders = []
    for value in values:
        parts = str(value).split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise invalid(f"order_by: {value!r} is not '<key> [ASC|DESC]'")
        key = parts[0].strip("`")
        if key not in allowed:
            raise invalid(f"order_by: {key!r} is not one of {', '.join(sorted(allowed))}")
        orders.append(Order(key, len(parts) == 2 and parts[1].upper() == "DESC"))
    return orders


def page_token_encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_token_decode(token: str | None) -> int:
    """The offset a page token names; 0 for none. A token this server did not issue is refused."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise invalid("page_token: is not a token this server issued") from None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**9:
        raise invalid("page_token: is not a token this server issued")
    return offset
