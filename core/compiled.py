"""Run an ORM query again without building and compiling it again.

The hottest reads (what is in a stage) spend most of their time turning the ORM query into SQL, not in the
database. `CompiledQuery` compiles a query once per shape with recognisable stand-in values, remembers where
each value goes, and then runs the same SQL with the caller's values, converting the row exactly as the ORM
would (model instances included, with their select_related objects and annotations). The SQL still comes
from the ORM, so no rule (visibility included) is written twice. The query is compiled twice with different
stand-ins: a parameter that follows no value and no context id must be the same both times (a constant such
as a status), and a build that reads a changing value itself (the clock) is refused.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import get_related_populators


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet], *, using: str = "default"):
        """`build(**context, **values)` returns a values_list queryset for those arguments."""
        self.build, self.using = build, using
        self._local = threading.local()  # compilers hold a connection, and connections are per thread

    def rows(self, shape, context: dict, *, limit: int | None = None, **values) -> list[tuple]:
        """Every row for these values, or the first `limit` (see first)."""
        return self._run(shape, context, values, limit=limit)

    def first(self, shape, context: dict, **values) -> tuple | None:
        """The first row for these `values` (strings, whole numbers or aware datetimes). `context` holds the
        other arguments of `build` (e.g. the user): `shape` must tell apart every context that gives
        different SQL; their ids are parameters too. SQL constants of the query (a status, a codename) stay
        as compiled: compiling twice with other stand-ins proves that they do not come from `values`.

        A value may also be a list (or tuple) of such values, for `__in`: each length is compiled once, so
        a list must not be empty (the ORM gives no SQL for an empty IN)."""
        found = self._run(shape, context, values, limit=1)
        return found[0] if found else None

    def objects(self, shape, context: dict, *, limit: int | None = None, **values) -> list:
        """The model instances that iterating build's queryset (a queryset of model instances, with its
        select_related objects and annotations) would give, at most `limit` of them (see first)."""
        found, compiled = self._execute(shape, context, values, limit)
        if not found:
            return []
        model_cls, start, end, init_list, populators, annotations = compiled.model
        db = self.using
        instances = []
        for row in found:
            instance = model_cls.from_db(db, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, instance)
            for name, position in annotations:
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances

    def _run(self, shape, context: dict, values: dict, limit: int | None) -> list[tuple]:
        return self._execute(shape, context, values, limit)[0]

    def _execute(self, shape, context: dict, values: dict, limit: int | None):
        cache = self._local.__dict__.setdefault("cache", {})
        connection = connections[self.using]
        key = (id(connection), shape, limit, _lengths(values))
        if key not in cache:
            cache[key] = self._compile(connection, context, values, limit)
        compiled = cache[key]
        params = [slot(values, context) for slot in compiled.slots]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            found = cursor.fetchall()
        if compiled.converters and found:
            found = list(compiled.compiler.apply_converters(found, compiled.converters))
        return found, compiled

    def _compile(self, connection, context: dict, values: dict, limit: int | None):
        compiler, sql, params, stand_ins = self._compile_once(connection, context, values, limit, 1)
        adapt = _adapter(connection)
        by_stand_in = _positions(stand_ins, adapt)
        # A second compilation, with other stand-ins, tells constants from values.
        _, sql_again, params_again, stand_ins_again = self._compile_once(
            connection, context, values, limit, 2
        )
        again = _positions(stand_ins_again, adapt)
        if sql_again != sql or len(params_again) != len(params):
            raise ValueError("the query's SQL depends on its values: it cannot be compiled once")
        slots = []
        for position, param in enumerate(params):
            if _hashable(param) and param in by_stand_in:
                name, index = by_stand_in[param]
                if again.get(params_again[position]) != (name, index):
                    raise ValueError(f"parameter {position} does not follow value {name!r}")
                if index is None:
                    slots.append(lambda vals, ctx, name=name: adapt(vals[name]))
                else:
                    slots.append(lambda vals, ctx, name=name, index=index: adapt(vals[name][index]))
                continue
            match = _context_slot(context, param)  # the user's id, say: found by value
            if match is not None:
                slots.append(match)
            elif params_again[position] == param and not _stand_in_like(param):
                slots.append(lambda vals, ctx, param=param: param)
            else:
                raise ValueError(f"cannot tell where parameter {param!r} comes from")
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        layout = _model_layout(compiler) if compiler.klass_info else None
        return _Compiled(compiler, sql, slots, converters, layout)

    def _compile_once(self, connection, context: dict, values: dict, limit: int | None, round_: int):
        # Stand-ins that no real value equals: strings with NUL bytes, numbers far below any id, instants in
        # the first microseconds of 1970.
        counter = iter(range(1_000_000))
        stand_ins = {
            name: [_stand_in(name, item, next(counter), round_) for item in value]
            if isinstance(value, list | tuple)
            else _stand_in(name, value, next(counter), round_)
            for name, value in values.items()
        }
        queryset = self.build(**context, **stand_ins)
        if limit is not None:
            queryset = queryset[:limit]
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        return compiler, sql, params, stand_ins


@dataclass(frozen=True)
class _Compiled:
    compiler: object
    sql: str
    slots: list[Callable]
    converters: dict
    model: tuple | None  # _model_layout, for objects()


def _stand_in(name: str, value, index: int, round_: int):
    if isinstance(value, dt.datetime):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=1 + index + 1000 * round_)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(10**15) * round_ - index
    return f"\x00{name}\x00{index}\x00{round_}"


def _lengths(values: dict) -> tuple:
    return tuple(len(value) for value in values.values() if isinstance(value, list | tuple))


def _positions(stand_ins: dict, adapt: Callable) -> dict:
    """Each stand-in as a parameter, to its value's name and its index in a list value (None for a value)."""
    positions = {}
    for name, value in stand_ins.items():
        if isinstance(value, list):
            positions.update({adapt(item): (name, index) for index, item in enumerate(value)})
        else:
            positions[adapt(value)] = (name, None)
    return positions


def _stand_in_like(param) -> bool:
    return isinstance(param, str) and "\x00" in param


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _adapter(connection) -> Callable:
    """What the backend turns a value into as a query parameter (datetimes become text on SQLite)."""

    def adapt(value):
        if isinstance(value, dt.datetime):
            return connection.ops.adapt_datetimefield_value(value)
        return value

    return adapt


def _model_layout(compiler) -> tuple:
    """What Django's ModelIterable reads from a compiler to build instances, taken once."""
    select, klass_info = compiler.select, compiler.klass_info
    fields = klass_info["select_fields"]
    start, end = fields[0], fields[-1] + 1
    init_list = [column[0].target.attname for column in select[start:end]]
    populators = get_related_populators(klass_info, select, compiler.using)
    annotations = tuple(compiler.annotation_col_map.items())
    return klass_info["model"], start, end, init_list, populators, annotations


def _context_slot(context: dict, param):
    if type(param) is not int:  # ids are whole numbers, never True or 1.0
        return None
    for name, value in context.items():
        pk = getattr(value, "pk", None)
        if pk is not None and pk == param:
            return lambda vals, ctx, name=name: ctx[name].pk
    return None
