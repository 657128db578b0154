"""Reading a config's YAML: PyYAML's safe loader with the two refusals it lacks, and short messages.

- A key written twice in one mapping: YAML forbids it, but PyYAML keeps the last one
  silently, so a file that sets `lr` twice would train with whichever came second.
- Aliases that expand the document far beyond its text (the "billion laughs": nine aliases
  of nine aliases of ... make millions of values out of a few lines).

Both are refused with a `Refused` error (a `yaml.YAMLError`) whose message says why and the
fix; config.py adds the file's name. Messages quote values through `short_repr`, which shortens
them with `reprlib`, so a huge value never makes a huge message.

References: the YAML 1.2 spec on unique keys; PyYAML's SafeLoader (composer and constructor).
"""
from __future__ import annotations

import math
import reprlib

import yaml

__all__ = ["ConfigLoader", "Refused", "short_repr", "ALIAS_LIMIT"]

ALIAS_LIMIT = 10_000  # values that YAML aliases may add to a document; a real config's aliases add a handful

_SHORT = reprlib.Repr()  # repr for messages: strings cut to ~80 characters, containers to 6 items, 2 levels deep
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 80, 80, 2
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6


def short_repr(value) -> str:
    """repr(value) short enough for a one-line message, whatever the value's size."""
    return _SHORT.repr(value)


class Refused(yaml.YAMLError):
    """YAML that parses but that a config may not be; the message says why and the fix."""


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a key repeated in one mapping and an alias bomb.

    The composer builds a graph of nodes in which an alias is the anchored node itself, so
    a bomb is small as a graph and only explodes when walked as a tree (repr, validation).
    `get_single_node` measures that tree size on the graph, each node once, before anything
    is constructed.
    """

    def get_single_node(self):
        """The document's node graph, refused if its aliases would add more than ALIAS_LIMIT values."""
        node = super().get_single_node()
        if node is not None:
            sizes: dict[int, float] = {}
            added = _tree_size(node, sizes, set()) - len(sizes)  # values that exist only through aliases
            if added > ALIAS_LIMIT:
                raise Refused(f"its YAML aliases (*name) expand it by more than {ALIAS_LIMIT:,} values (an alias "
                              f"bomb, or an alias inside its own anchor); write the values out instead")
        return node

    def construct_mapping(self, node, deep=False):
        """SafeLoader's mapping, refused if a key is written twice in it."""
        if isinstance(node, yaml.MappingNode):  # anything else: SafeConstructor's own error
            self._check_unique_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _check_unique_keys(self, node) -> None:
        """Refuse a key written twice in one mapping (keys that compare equal, like 1 and 1.0, count as one)."""
        lines = {}  # key -> the line it first appears on
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` keys may be overridden: that is its use
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                repeated = key in lines
            except TypeError:  # an unhashable key: SafeConstructor's own error names it
                continue
            if repeated:
                raise Refused(f"key {short_repr(key)} appears twice in one mapping (line {lines[key]} and line {line}); "
                              f"keep one of them")
            lines[key] = line


def _tree_size(node, sizes: dict, open_nodes: set) -> float:
    """How many values `node` holds once every alias is written out: 1 + its children's sizes.

    Memoised by node in `sizes`, so a bomb costs one visit per distinct node; an alias that
    points into the node being measured would repeat without end (infinity).
    """
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        return math.inf
    open_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    sizes[id(node)] = 1 + sum(_tree_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    return sizes[id(node)]
