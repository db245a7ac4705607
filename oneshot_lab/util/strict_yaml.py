"""Reading specs and command-line values as YAML 1.2 core-schema, JSON-like data, with bounded size.

PyYAML implements YAML 1.1, where `010` is octal 8, `yes`/`no`/`on`/`off` are booleans and `2024-01-01` is a
date. This loader resolves plain scalars the YAML 1.2 core way restricted to what JSON can hold: decimal
integers without leading zeros, decimal floats (`1e-3` included), true/false, null; everything else is text.
Duplicate keys, non-text keys, explicitly tagged values that JSON cannot hold (`!!binary`, `!!timestamp`,
`!!set`) and documents that expand (through aliases) beyond `MAX_NODES` nodes are errors.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_NODES = 100_000  # nodes of a document after alias expansion; a real spec has a few hundred
MAX_DIGITS = 4000  # digits of an integer (Python converts at most 4300 by default)

INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
FLOAT = re.compile(r"^[-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$")
BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
NULL = ("", "~", "null", "Null", "NULL")
YAML11_BOOLS = ("yes", "no", "on", "off", "y", "n")


class YAMLValueError(ValueError):
    """A document or value that is not plain JSON-like YAML 1.2; the message is one line."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core (JSON subset) scalars, no duplicate keys and bounded alias expansion."""

    yaml_implicit_resolvers: dict = {}  # no 1.1 resolvers: plain scalars are resolved in construct_scalar

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A mapping whose keys are distinct text."""
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise YAMLValueError(f"line {key_node.start_mark.line + 1}: key {key!r} is not text; "
                                     f"write keys as names")
            if key in seen:
                raise YAMLValueError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _plain_scalar(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """A plain (unquoted, untagged) scalar resolved by the YAML 1.2 JSON-compatible rules."""
    text = node.value
    if node.style is not None and node.style != "":  # quoted or block text stays text
        return text
    if text in NULL:
        return None
    if text in BOOL:
        return BOOL[text]
    if INT.match(text):
        if len(text) > MAX_DIGITS:
            raise YAMLValueError(f"line {node.start_mark.line + 1}: an integer of {len(text)} digits; at most "
                                 f"{MAX_DIGITS} are read")
        return int(text)
    if FLOAT.match(text):
        return float(text)
    return text


_Loader.add_constructor("tag:yaml.org,2002:str", _plain_scalar)


def _check_size(node: yaml.Node, limit: int) -> None:
    """Raise YAMLValueError if `node` expands to more than `limit` nodes or refers to itself."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in active:
            raise YAMLValueError(f"line {n.start_mark.line + 1}: a recursive alias (a value that contains itself)")
        active.add(id(n))
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        active.discard(id(n))
        if total > limit:
            raise YAMLValueError(f"the document expands to more than {limit} values (through aliases?); "
                                 f"the limit is {limit}")
        sizes[id(n)] = total
        return total

    size(node)


def check_json_like(value: Any, where: str = "") -> None:
    """Raise YAMLValueError unless `value` is JSON-like: text, finite numbers, booleans, null, lists, mappings."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise YAMLValueError(f"{where or 'value'} is {value!r}; only finite numbers are accepted")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json_like(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise YAMLValueError(f"{where or 'value'} has key {key!r}, not text; mapping keys are names")
            check_json_like(item, f"{where}.{key}" if where else str(key))
        return
    raise YAMLValueError(f"{where or 'value'} is a {type(value).__name__} ({str(value)[:40]!r}); only text, "
                         f"numbers, true/false, null, lists and mappings are accepted")


def loads(text: str, limit: int = MAX_NODES) -> Any:
    """The JSON-like data of one YAML document `text`; YAMLValueError (one line) for anything else."""
    loader = None
    try:
        loader = _Loader(text)  # reads the stream at once: a NUL byte or other control character fails here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, limit)
        value = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise YAMLValueError(f"not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise YAMLValueError("the document nests too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    check_json_like(value)
    return value


def hint(value: Any, expected: str) -> str:
    """A hint for a text value that YAML 1.1 (or a habit) reads as another type; '' if none applies."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if expected == "bool" and text.lower() in YAML11_BOOLS:
        return f" (YAML 1.2: {text!r} is text; write true or false)"
    if expected in ("int", "float") and re.fullmatch(r"[-+]?0[0-9]+", text):
        return f" (leading zeros are not read as a number; write {int(text)})"
    if expected in ("int", "float") and re.fullmatch(r"[-+]?0[oOxXbB][0-9a-fA-F]+", text):
        return " (octal, hex and binary forms are not read as numbers; write the decimal value)"
    return ""
