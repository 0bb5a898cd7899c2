"""Run an ORM query again without building and compiling it again.

The hottest reads (what is in a stage) spend most of their time turning the ORM query into SQL, not in the
database. `CompiledQuery` compiles a query once per shape with recognisable stand-in values, remembers where
each value goes, and then runs the same SQL with the caller's values, converting the row exactly as the ORM
would. The SQL still comes from the ORM, so no rule (visibility included) is written twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections
from django.db.models import QuerySet


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet], *, using: str = "default"):
        """`build(**context, **values)` returns a values_list queryset for those arguments."""
        self.build, self.using = build, using
        self._local = threading.local()  # compilers hold a connection, and connections are per thread

    def rows(self, shape, context: dict, **values) -> list[tuple]:
        """Every row for these values (see first)."""
        return self._run(shape, context, values, limit=None)

    def first(self, shape, context: dict, **values) -> tuple | None:
        """The first row for these `values` (strings or whole numbers). `context` holds the other arguments
        of `build` (e.g. the user): `shape` must tell apart every context that gives different SQL; their ids
        are parameters too."""
        found = self._run(shape, context, values, limit=1)
        return found[0] if found else None

    def _run(self, shape, context: dict, values: dict, limit: int | None) -> list[tuple]:
        cache = self._local.__dict__.setdefault("cache", {})
        connection = connections[self.using]
        key = (id(connection), shape, limit)
        if key not in cache:
            cache[key] = self._compile(connection, context, values, limit)
        compiler, sql, slots, converters = cache[key]
        params = [values[slot] if isinstance(slot, str) else slot(context) for slot in slots]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        return list(compiler.apply_converters(found, converters)) if converters and found else found

    def _compile(self, connection, context: dict, values: dict, limit: int | None):
        # Stand-ins that no real value equals: strings with NUL bytes, numbers far below any id.
        stand_ins = {
            name: (-(10**15) - index if isinstance(value, int) else f"\x00{name}\x00")
            for index, (name, value) in enumerate(values.items())
        }
        queryset = self.build(**context, **stand_ins)
        if limit is not None:
            queryset = queryset[:limit]
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        by_stand_in = {value: name for name, value in stand_ins.items()}
        slots = []
        for param in params:
            if param in by_stand_in:
                slots.append(by_stand_in[param])
            else:  # a value taken from the context, e.g. the user's id: find which, by value
                match = _context_slot(context, param)
                if match is None:
                    raise ValueError(f"cannot tell where parameter {param!r} comes from")
                slots.append(match)
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        return compiler, sql, slots, converters


def _context_slot(context: dict, param):
    for name, value in context.items():
        pk = getattr(value, "pk", None)
        if pk is not None and pk == param:
            return lambda ctx, name=name: ctx[name].pk
    return None
