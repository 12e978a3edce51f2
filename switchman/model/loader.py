"""YAML text to documents, at a cost bounded by the text's size.

YAML aliases let a few bytes stand for a lot: ``&a [x, x, x]``, ``&b [*a,
*a, *a]``, ... (the "billion laughs"). PyYAML shares the aliased node, so
loading is cheap, but everything after it (checking the documents, storing
them as JSON, translating them) walks the document as the tree it stands
for: a 420-byte bomb of six levels stood for a million strings and held the
event loop for seconds, and each ten more aliases on a line multiplied that
by ten.

Aliases are kept, within a budget, rather than refused outright: anchors
are how people write the same endpoints or retry policy once in a
hand-written file, and a document that uses a few of them costs what the
same document written out costs. So while the stream is composed (before
any Python object is made), each alias is charged the number of nodes it
stands for, nested aliases included, and the stream is refused as soon as
the aliases have added more than :data:`ALIAS_BUDGET` nodes beyond those the
text spells out: a document then costs at most twice what a document of its
size without aliases could cost, and the budget's floor leaves room for
small files that lean on anchors. The refusal names the alias's line and
what it would have expanded to. A recursive alias (``&a [*a]``), which
stands for an infinite document, and nesting deeper than :data:`MAX_DEPTH`
are refused the same way.

The events come from libyaml when PyYAML has it (ten times faster than
PyYAML's pure-Python scanner and parser) and the nodes from PyYAML's own
composer, which is where the charge is taken; without libyaml, the same in
pure Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.resolver import Resolver

__all__ = ["ALIAS_BUDGET", "MAX_DEPTH", "YamlRefused", "load_documents", "yaml_problem"]

#: Nodes that aliases may add to a stream beyond the nodes its text spells out.
ALIAS_BUDGET: Final = 10_000
#: How deep collections may nest (real documents nest under 20 deep).
MAX_DEPTH: Final = 100


class YamlRefused(ComposerError):
    """Raised when a YAML stream is refused for what it would cost: an alias bomb, a recursive
    alias, or nesting too deep. A :class:`yaml.YAMLError`, so callers that catch YAML errors catch it."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)


class _Budget:
    """The composer's side of the bound: nodes spelled out, nodes aliases add, depth, anchors still open."""

    def __init__(self) -> None:
        self.written = 0
        self.added = 0
        self.depth = 0
        self.open: set[str] = set()  # anchors whose node is being composed: an alias to one is recursive
        self.sizes: dict[int, int] = {}  # id(node) -> the nodes it stands for, aliases expanded


class _BoundedComposer(Composer):
    """PyYAML's composer, charging every alias what it stands for (see the module's docstring)."""

    _budget: _Budget

    if TYPE_CHECKING:  # the parser's, mixed in beside this class

        def peek_event(self) -> Any: ...

    def compose_document(self) -> Node | None:
        # Sizes are kept by id(node), which is only stable while the document's nodes live: one document each.
        self._budget.sizes.clear()
        try:
            return super().compose_document()
        finally:
            self._budget.sizes.clear()

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        budget = self._budget
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in budget.open:
                raise YamlRefused(f"the alias *{event.anchor} refers to itself (a recursive alias)", event.start_mark)
            node = super().compose_node(parent, index)
            if node is None:  # PyYAML raises for an unknown alias; this is for the type checker
                return None
            budget.added += _size(node, budget.sizes)
            if budget.added > ALIAS_BUDGET + budget.written:
                raise YamlRefused(
                    f"the alias *{event.anchor} brings aliases to {budget.added:,} nodes, over what this stream may "
                    f"use ({ALIAS_BUDGET:,} plus the {budget.written:,} nodes it spells out): write it out, or use "
                    "fewer aliases",
                    event.start_mark,
                )
            return node
        budget.written += 1
        budget.depth += 1
        if budget.depth > MAX_DEPTH:
            raise YamlRefused(f"collections nest deeper than {MAX_DEPTH}", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            budget.open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            budget.depth -= 1
            if anchor is not None:
                budget.open.discard(anchor)


def _size(root: Node, sizes: dict[int, int]) -> int:
    """How many nodes ``root`` stands for, shared (aliased) nodes counted each time they appear.

    Iterative and memoized by node: linear in the distinct nodes, whatever the expansion. The
    composer refuses recursive aliases first, so the graph has no cycle here.
    """
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _loader_class() -> type[Any]:
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML without libyaml
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class PureLoader(Reader, Scanner, Parser, _BoundedComposer, SafeConstructor, Resolver):
            def __init__(self, stream: str) -> None:
                Reader.__init__(self, stream)
                Scanner.__init__(self)
                Parser.__init__(self)
                _BoundedComposer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
                self._budget = _Budget()

        return PureLoader

    # The composer comes before CParser so that its get_node/compose_node are the ones used;
    # CParser still gives the events (check_event, peek_event, get_event).
    class FastLoader(_BoundedComposer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._budget = _Budget()

    return FastLoader


_Loader: Final = _loader_class()


def load_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (``None`` for an empty one), as ``yaml.safe_load_all`` reads them.

    Raises :class:`yaml.YAMLError`: :class:`YamlRefused` for a stream that would cost more
    than its size allows (the module's docstring), else PyYAML's own errors.
    """
    loader = _Loader(text)
    try:
        out = []
        while loader.check_data():
            out.append(loader.get_data())
        return out
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (``line 3, column 7``)."""
    if isinstance(exc, MarkedYAMLError):
        mark: Mark | None = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem or exc.context or 'not YAML'}{where}"
    return " ".join(str(exc).split())
