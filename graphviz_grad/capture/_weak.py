"""Entries kept while an object lives: a dict keyed by an int (its `id`, a data pointer) whose
value holds a weak reference to the object, removed when the object is freed."""

from __future__ import annotations

import weakref
from typing import Any, TypeVar

V = TypeVar("V")


def keep_while_alive(store: dict[int, tuple[Any, V]], key: int, obj: Any, value: V) -> bool:
    """`store[key] = (a weak reference to obj, value)`, dropped when `obj` is freed (unless the
    key was reused for another object meanwhile); False for an object that cannot be weakly
    referenced (some tensor subclasses), which is not stored."""

    def forget(ref: Any) -> None:
        entry = store.get(key)
        if entry is not None and entry[0] is ref:
            del store[key]

    try:
        ref = weakref.ref(obj, forget)
    except TypeError:
        return False
    store[key] = (ref, value)
    return True
