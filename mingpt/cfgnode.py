"""
CfgNode: a small nested configuration object you can print, save, and override from the command line.

The one idea: a config is a tree of plain attributes (``config.model.n_layer``) whose *defaults define the
schema*. Because every key already exists with a value of some type, an override can be checked: a misspelt key
is rejected with a suggestion, and a value of the wrong type is rejected before it reaches the model.

The checks, each with the key, the value and what was expected in its message:
* a value must have the default's type (an int may stand for a float; a list for a tuple);
* ``None`` is accepted only by keys whose default is None, because those keys document what None means
  (``max_iters=None`` trains until interrupted); ``learning_rate=None`` would only fail later, deep inside;
* NaN is never a setting (``grad_norm_clip=nan`` would silently switch clipping off);
* a non-empty tuple default fixes the length and the element types: ``betas=(0.9,)`` is rejected.

    >>> C = CfgNode(model=CfgNode(n_layer=3, dropout=0.1))
    >>> C.merge_from_args(['--model.n_layer=6', '--model.dropout=0'])   # int -> float is allowed
    >>> C.model.n_layer, C.model.dropout
    (6, 0.0)
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import math
import os
from typing import Any, Iterable

from mingpt.atomic import atomic_path


class CfgNode:
    """A nested namespace of configuration values. Children that are CfgNodes form the tree."""

    # The keys live in __dict__; the slot remembers which keys were created as None (and so may be None again),
    # outside __dict__, so it never shows up as a key.
    __slots__ = ("__dict__", "_nullable")

    def __init__(self, **kwargs: Any):
        object.__setattr__(self, "_nullable", set())
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "_nullable":  # the slot itself (copy and pickle restore it this way)
            object.__setattr__(self, key, value)
            return
        if key not in self.__dict__ and value is None:
            self._nullable.add(key)  # a key born None documents what None means (see the module docstring)
        self.__dict__[key] = value

    # ------------------------------------------------------------------ printing
    def __str__(self) -> str:
        return self._str_helper(0)

    def __repr__(self) -> str:
        return f"CfgNode({self.to_dict()!r})"

    def _str_helper(self, indent: int) -> str:
        lines = []
        for key, value in self.__dict__.items():
            if isinstance(value, CfgNode):
                lines.append(f"{key}:\n{value._str_helper(indent + 1)}")
            else:
                lines.append(f"{key}: {value!r}")
        return "\n".join("    " * indent + line for line in lines)

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict:
        """A plain nested dict (CfgNodes become dicts), e.g. for JSON or logging."""
        return {k: v.to_dict() if isinstance(v, CfgNode) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "CfgNode":
        """Build a CfgNode from a nested dict; nested dicts become child nodes."""
        if not isinstance(d, dict):
            raise TypeError(f"CfgNode.from_dict expects a dict, got {type(d).__name__}")
        return cls(**{k: cls.from_dict(v) if isinstance(v, dict) else v for k, v in d.items()})

    def copy(self) -> "CfgNode":
        """A deep copy, so that callers never share (and accidentally mutate) each other's config."""
        return copy.deepcopy(self)

    def save_json(self, path: str | os.PathLike) -> None:
        """Write the config as JSON, atomically (a crash never leaves half a file)."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, default=list)
            f.write("\n")

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "CfgNode":
        """Read a config written by `save_json`."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config file at {os.fspath(path)!r}")
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    # ------------------------------------------------------------------ merging with validation
    def _all_keys(self, prefix: str = "") -> list[str]:
        keys = []
        for k, v in self.__dict__.items():
            keys.append(prefix + k)
            if isinstance(v, CfgNode):
                keys.extend(v._all_keys(prefix + k + "."))
        return keys

    def _unknown_key(self, full_key: str, root: "CfgNode") -> KeyError:
        close = difflib.get_close_matches(full_key, root._all_keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return KeyError(f"unknown config key {full_key!r}{hint}")

    def _set_checked(self, full_key: str, new: Any, root: "CfgNode") -> None:
        """Set `full_key` (dotted, relative to self) after checking it exists and the type fits."""
        *path, leaf = full_key.split(".")
        node = self
        for part in path:
            child = node.__dict__.get(part)
            if not isinstance(child, CfgNode):
                raise root._unknown_key(full_key, root)
            node = child
        if leaf not in node.__dict__:
            raise root._unknown_key(full_key, root)
        old = node.__dict__[leaf]
        if isinstance(old, CfgNode):
            if not isinstance(new, dict):
                raise TypeError(f"config key {full_key!r} is a section; set its keys, e.g. '--{full_key}.<key>=...'")
            for k, v in new.items():
                self._set_checked(f"{full_key}.{k}", v, root)
            return
        node.__dict__[leaf] = _checked_value(full_key, old, new, nullable=leaf in node._nullable)

    def merge_from_dict(self, d: dict) -> None:
        """Update existing keys from a (possibly nested or dotted) dict; unknown keys and wrong types raise."""
        if not isinstance(d, dict):
            raise TypeError(f"merge_from_dict expects a dict, got {type(d).__name__}")
        for key, value in d.items():
            self._set_checked(key, value, self)

    def merge_from_args(self, args: Iterable[str]) -> None:
        """
        Apply command-line overrides of the form ``--model.n_layer=4``.

        Values are parsed as Python literals (``4``, ``3e-4``, ``(0.9, 0.95)``, ``None``); anything that does not
        parse stays a string, so ``--system.work_dir=./out/x`` just works.
        """
        if isinstance(args, str):
            raise TypeError("merge_from_args expects a list of strings such as sys.argv[1:], not one string")
        for arg in args:
            if not isinstance(arg, str) or not arg.startswith("--") or "=" not in arg:
                raise ValueError(f"expected an override like '--section.key=value', got {arg!r}")
            key, raw = arg[2:].split("=", 1)  # split on the first '=' only: values may contain '='
            self._set_checked(key, _parse_literal(raw), self)


def _parse_literal(raw: str) -> Any:
    # Any parse failure (ValueError, SyntaxError, ...) means "this is a plain string", e.g. a path or a name.
    try:
        return ast.literal_eval(raw)
    except Exception:
        return raw


def _checked_value(key: str, old: Any, new: Any, nullable: bool = False) -> Any:
    """Return `new` converted to the type of `old` where that is lossless; raise TypeError/ValueError otherwise."""
    if isinstance(new, float) and math.isnan(new):
        raise ValueError(f"config key {key!r} got nan, which is never a valid setting; give a number")
    if new is None:
        if old is None or nullable:  # the key's default is None: its comment says what None means
            return None
        raise TypeError(f"config key {key!r} cannot be None: it expects a {type(old).__name__} "
                        f"(current value {old!r}); only keys whose default is None accept None")
    if old is None:  # unset so far: any type may fill it
        return new
    if isinstance(old, bool) or isinstance(new, bool):  # bool is an int subclass; keep them apart
        if isinstance(old, bool) and isinstance(new, bool):
            return new
    elif isinstance(old, float) and isinstance(new, int):
        return float(new)  # --trainer.learning_rate=1 means 1.0
    elif isinstance(old, (tuple, list)) and isinstance(new, (tuple, list)):
        if isinstance(old, tuple) and old:  # a non-empty tuple default is a fixed shape, e.g. betas=(0.9, 0.95)
            if len(new) != len(old):
                raise ValueError(f"config key {key!r} expects {len(old)} values like {old!r}, got {len(new)}: "
                                 f"{tuple(new)!r}")
            return tuple(_checked_value(f"{key}[{i}]", o, n) for i, (o, n) in enumerate(zip(old, new)))
        return type(old)(new)
    elif isinstance(new, type(old)):
        return new
    raise TypeError(
        f"config key {key!r} expects a value of type {type(old).__name__} (current value {old!r}), "
        f"got {new!r} of type {type(new).__name__}"
    )
