"""Just enough GraphQL for the sandbox: a parser for executable documents (operations, variables,
fields with aliases and arguments, directives, inline fragments and named fragments) and an
executor that *projects* resolved objects onto a selection set.

There is no schema. An object is a dict with a ``__typename`` and its fields; a field that takes
arguments (a connection, ``inventoryLevel(locationId:)``) is a callable given the resolved
arguments. Projecting returns exactly the selected fields under their aliases, so answers have
the shapes a client asked for, and a field the object lacks is an "undefinedField" error, as on
Shopify. Costs follow Shopify's rules (reference/channel-apis.md §2.2): scalars 0, objects 1,
connections 2 plus ``first``/``last`` times the cost of one node, mutations 10.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# --- syntax ------------------------------------------------------------------------------------


class GraphQLError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        path: list[str | int] | None = None,
        line: int | None = None,
        column: int | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.path = path
        self.line = line
        self.column = column
        self.extensions = extensions or {}

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message}
        if self.line is not None:
            error["locations"] = [{"line": self.line, "column": self.column}]
        if self.path is not None:
            error["path"] = self.path
        extensions = dict(self.extensions)
        if self.code:
            extensions["code"] = self.code
        if extensions:
            error["extensions"] = extensions
        return error


@dataclass(frozen=True, slots=True)
class Variable:
    name: str


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str


@dataclass(slots=True)
class Directive:
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Field:
    name: str
    alias: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    directives: list[Directive] = field(default_factory=list)
    selections: list[Selection] = field(default_factory=list)
    line: int = 0
    column: int = 0

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass(slots=True)
class InlineFragment:
    type_condition: str | None
    selections: list[Selection]
    directives: list[Directive] = field(default_factory=list)


@dataclass(slots=True)
class FragmentSpread:
    name: str
    directives: list[Directive] = field(default_factory=list)


Selection = Field | InlineFragment | FragmentSpread


@dataclass(slots=True)
class VariableDefinition:
    name: str
    type: str
    default: Any = None
    has_default: bool = False


@dataclass(slots=True)
class Operation:
    kind: str  # query | mutation | subscription
    name: str | None
    variables: list[VariableDefinition]
    directives: list[Directive]
    selections: list[Selection]


@dataclass(slots=True)
class FragmentDefinition:
    name: str
    type_condition: str
    selections: list[Selection]


@dataclass(slots=True)
class Document:
    operations: list[Operation]
    fragments: dict[str, FragmentDefinition]

    def operation(self, name: str | None) -> Operation:
        if name is not None:
            for operation in self.operations:
                if operation.name == name:
                    return operation
            raise GraphQLError(f'No operation named "{name}"')
        if len(self.operations) != 1:
            raise GraphQLError("An operation name is required when the document has several")
        return self.operations[0]


_TOKEN = re.compile(
    r"""
    (?P<ignored>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<block>\"\"\"(?:\\\"\"\"|[^"]|"(?!""))*\"\"\")
  | (?P<string>"(?:\\.|[^"\\\n\r])*")
  | (?P<spread>\.\.\.)
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<punct>[!$&():=@\[\]{}|])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    value: str
    line: int
    column: int


def _tokens(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    line, line_start = 1, 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        column = position - line_start + 1
        if match is None:
            raise GraphQLError(
                f'Parse error on "{source[position]}" at [{line}, {column}]',
                line=line,
                column=column,
            )
        kind = match.lastgroup or ""
        text = match.group()
        if kind != "ignored":
            tokens.append(_Token(kind, text, line, column))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + text.rindex("\n") + 1
        position = match.end()
    tokens.append(_Token("eof", "", line, position - line_start + 1))
    return tokens


def _block_string(raw: str) -> str:
    body = raw[3:-3].replace('\\"""', '"""')
    lines = body.splitlines()
    indents = [len(text) - len(text.lstrip()) for text in lines[1:] if text.strip()]
    common = min(indents) if indents else 0
    lines = lines[:1] + [text[common:] for text in lines[1:]]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def error(self, token: _Token | None = None) -> GraphQLError:
        token = token or self.current
        shown = "end of file" if token.kind == "eof" else f'"{token.value}"'
        return GraphQLError(
            f"Parse error on {shown} at [{token.line}, {token.column}]",
            line=token.line,
            column=token.column,
        )

    def peek(self, value: str) -> bool:
        token = self.current
        return token.kind in ("punct", "spread") and token.value == value

    def expect(self, value: str) -> _Token:
        if not self.peek(value):
            raise self.error()
        return self.advance()

    def advance(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def name(self) -> str:
        token = self.current
        if token.kind != "name":
            raise self.error()
        self.index += 1
        return token.value

    def document(self) -> Document:
        operations: list[Operation] = []
        fragments: dict[str, FragmentDefinition] = {}
        while self.current.kind != "eof":
            if self.peek("{"):
                operations.append(Operation("query", None, [], [], self.selection_set()))
            elif self.current.kind == "name" and self.current.value == "fragment":
                self.advance()
                name = self.name()
                if self.name() != "on":
                    raise self.error(self.tokens[self.index - 1])
                type_condition = self.name()
                self.directives()
                fragments[name] = FragmentDefinition(name, type_condition, self.selection_set())
            elif self.current.kind == "name" and self.current.value in (
                "query",
                "mutation",
                "subscription",
            ):
                kind = self.advance().value
                operation_name = self.name() if self.current.kind == "name" else None
                variables = self.variable_definitions()
                directives = self.directives()
                operations.append(
                    Operation(kind, operation_name, variables, directives, self.selection_set())
                )
            else:
                raise self.error()
        if not operations:
            raise GraphQLError("The document contains no operation")
        return Document(operations, fragments)

    def variable_definitions(self) -> list[VariableDefinition]:
        definitions: list[VariableDefinition] = []
        if not self.peek("("):
            return definitions
        self.advance()
        while not self.peek(")"):
            self.expect("$")
            name = self.name()
            self.expect(":")
            type_ = self.type_reference()
            definition = VariableDefinition(name, type_)
            if self.peek("="):
                self.advance()
                definition.default = self.value(constant=True)
                definition.has_default = True
            self.directives()
            definitions.append(definition)
        self.advance()
        return definitions

    def type_reference(self) -> str:
        if self.peek("["):
            self.advance()
            inner = self.type_reference()
            self.expect("]")
            text = f"[{inner}]"
        else:
            text = self.name()
        if self.peek("!"):
            self.advance()
            text += "!"
        return text

    def directives(self) -> list[Directive]:
        directives: list[Directive] = []
        while self.peek("@"):
            self.advance()
            directives.append(Directive(self.name(), self.arguments()))
        return directives

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if not self.peek("("):
            return arguments
        self.advance()
        while not self.peek(")"):
            name = self.name()
            self.expect(":")
            arguments[name] = self.value()
        self.advance()
        return arguments

    def selection_set(self) -> list[Selection]:
        self.expect("{")
        selections: list[Selection] = []
        while not self.peek("}"):
            selections.append(self.selection())
        self.advance()
        if not selections:
            raise self.error(self.tokens[self.index - 1])
        return selections

    def selection(self) -> Selection:
        if self.peek("..."):
            self.advance()
            if self.current.kind == "name" and self.current.value == "on":
                self.advance()
                type_condition = self.name()
                directives = self.directives()
                return InlineFragment(type_condition, self.selection_set(), directives)
            if self.peek("{") or self.peek("@"):
                directives = self.directives()
                return InlineFragment(None, self.selection_set(), directives)
            name = self.name()
            return FragmentSpread(name, self.directives())
        token = self.current
        name = self.name()
        alias = None
        if self.peek(":"):
            self.advance()
            alias, name = name, self.name()
        arguments = self.arguments()
        directives = self.directives()
        selections = self.selection_set() if self.peek("{") else []
        return Field(name, alias, arguments, directives, selections, token.line, token.column)

    def value(self, *, constant: bool = False) -> Any:
        token = self.current
        if token.kind == "punct" and token.value == "$" and not constant:
            self.advance()
            return Variable(self.name())
        if token.kind == "number":
            self.advance()
            text = token.value
            return float(text) if any(c in text for c in ".eE") else int(text)
        if token.kind == "string":
            self.advance()
            return json.loads(token.value)
        if token.kind == "block":
            self.advance()
            return _block_string(token.value)
        if token.kind == "name":
            self.advance()
            if token.value == "true":
                return True
            if token.value == "false":
                return False
            if token.value == "null":
                return None
            return EnumValue(token.value)
        if self.peek("["):
            self.advance()
            items = []
            while not self.peek("]"):
                items.append(self.value(constant=constant))
            self.advance()
            return items
        if self.peek("{"):
            self.advance()
            fields: dict[str, Any] = {}
            while not self.peek("}"):
                name = self.name()
                self.expect(":")
                fields[name] = self.value(constant=constant)
            self.advance()
            return fields
        raise self.error()


def parse(source: str) -> Document:
    return _Parser(source).document()


def resolve_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """An argument's value with variables substituted and enums as their names."""
    if isinstance(value, Variable):
        return variables.get(value.name)
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, list):
        return [resolve_value(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: resolve_value(item, variables) for key, item in value.items()}
    return value


def resolve_arguments(arguments: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    return {name: resolve_value(value, variables) for name, value in arguments.items()}


def coerce_variables(operation: Operation, given: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    values: dict[str, Any] = {}
    for definition in operation.variables:
        if definition.name in given:
            values[definition.name] = given[definition.name]
        elif definition.has_default:
            values[definition.name] = resolve_value(definition.default, {})
        elif definition.type.endswith("!"):
            raise GraphQLError(
                f"Variable ${definition.name} of type {definition.type} was provided invalid value",
                code="INVALID_VARIABLE",
                extensions={
                    "value": None,
                    "problems": [{"path": [], "explanation": "Expected value to not be null"}],
                },
            )
    return values


# --- execution ---------------------------------------------------------------------------------

Resolved = dict[str, Any]
ZERO_COST_TYPES = frozenset({"PageInfo", "QueryRoot", "Mutation"})


def _skipped(directives: list[Directive], variables: Mapping[str, Any]) -> bool:
    for directive in directives:
        if directive.name in ("skip", "include"):
            condition = bool(resolve_value(directive.arguments.get("if"), variables))
            if (directive.name == "skip") == condition:
                return True
    return False


def _typename(value: Resolved) -> str:
    return str(value.get("__typename", "Object"))


def _matches(value: Resolved, type_condition: str | None) -> bool:
    if type_condition is None:
        return True
    return type_condition == _typename(value) or type_condition in value.get("__implements", ())


@dataclass
class Projector:
    """Projects resolved objects onto selections and counts the actual cost."""

    fragments: Mapping[str, FragmentDefinition]
    variables: Mapping[str, Any]
    charge: bool = True
    cost: int = 0

    def object(
        self, value: Resolved, selections: list[Selection], path: list[str | int]
    ) -> dict[str, Any]:
        typename = _typename(value)
        if self.charge and typename not in ZERO_COST_TYPES and not typename.endswith("Edge"):
            self.cost += 2 if typename.endswith("Connection") else 1
        result: dict[str, Any] = {}
        self._into(result, value, selections, path)
        return result

    def _into(
        self,
        result: dict[str, Any],
        value: Resolved,
        selections: list[Selection],
        path: list[str | int],
    ) -> None:
        for selection in selections:
            if _skipped(selection.directives, self.variables):
                continue
            if isinstance(selection, Field):
                key = selection.key
                if selection.name == "__typename":
                    result[key] = _typename(value)
                    continue
                if selection.name not in value:
                    raise GraphQLError(
                        f"Field '{selection.name}' doesn't exist on type '{_typename(value)}'",
                        code="undefinedField",
                        path=[*path, key],
                        line=selection.line,
                        column=selection.column,
                        extensions={"typeName": _typename(value), "fieldName": selection.name},
                    )
                result[key] = self.field(value, selection, [*path, key])
            elif isinstance(selection, InlineFragment):
                if _matches(value, selection.type_condition):
                    self._into(result, value, selection.selections, path)
            else:
                fragment = self.fragments.get(selection.name)
                if fragment is None:
                    raise GraphQLError(f"Fragment {selection.name} was used, but not defined")
                if _matches(value, fragment.type_condition):
                    self._into(result, value, fragment.selections, path)

    def field(self, parent: Resolved, selection: Field, path: list[str | int]) -> Any:
        raw = parent[selection.name]
        if callable(raw):
            raw = raw(resolve_arguments(selection.arguments, self.variables))
        return self.value(raw, selection, path)

    def value(self, raw: Any, selection: Field, path: list[str | int]) -> Any:
        if raw is None:
            return None
        if isinstance(raw, list):
            return [self.value(item, selection, [*path, index]) for index, item in enumerate(raw)]
        if isinstance(raw, dict):
            if not selection.selections:
                raise GraphQLError(
                    f"Field must have selections (field '{selection.name}' returns "
                    f"{_typename(raw)} but has no selections. Did you mean "
                    f"'{selection.name} {{ ... }}'?)",
                    code="selectionMismatch",
                    path=path,
                    line=selection.line,
                    column=selection.column,
                )
            return self.object(raw, selection.selections, path)
        if selection.selections:
            raise GraphQLError(
                f"Selections can't be made on scalars (field '{selection.name}')",
                code="selectionMismatch",
                path=path,
                line=selection.line,
                column=selection.column,
            )
        return raw


# --- requested cost ----------------------------------------------------------------------------


def selected_fields(
    selections: list[Selection], fragments: Mapping[str, FragmentDefinition]
) -> list[Field]:
    fields: list[Field] = []
    for selection in selections:
        if isinstance(selection, Field):
            fields.append(selection)
        elif isinstance(selection, InlineFragment):
            fields.extend(selected_fields(selection.selections, fragments))
        elif selection.name in fragments:
            fields.extend(selected_fields(fragments[selection.name].selections, fragments))
    return fields


def requested_cost(
    selections: list[Selection],
    fragments: Mapping[str, FragmentDefinition],
    variables: Mapping[str, Any],
) -> int:
    """Shopify's estimate before running a query: objects 1, connections 2 + n x one node."""
    total = 0
    for selected in selected_fields(selections, fragments):
        if not selected.selections or selected.name == "pageInfo":
            continue
        arguments = resolve_arguments(selected.arguments, variables)
        size = (
            arguments.get("first") if arguments.get("first") is not None else arguments.get("last")
        )
        if isinstance(size, int):
            node = 0
            for child in selected_fields(selected.selections, fragments):
                if child.name == "edges":
                    for grandchild in selected_fields(child.selections, fragments):
                        if grandchild.name == "node":
                            node = max(
                                node,
                                1 + requested_cost(grandchild.selections, fragments, variables),
                            )
                elif child.name == "nodes":
                    node = max(node, 1 + requested_cost(child.selections, fragments, variables))
            total += 2 + size * node
        else:
            total += 1 + requested_cost(selected.selections, fragments, variables)
    return total


ResolverFn = Callable[[dict[str, Any]], Any]
