"""The parser: tokens to a `nodes.Select` (or a bare condition), one method per grammar rule.

Grammar (keywords case-insensitive, property names case-sensitive)::

    query      := SELECT [TOP int] (* | item {, item}) FROM source [WHERE expr] [GROUP BY path]
    item       := (aggregate | expr) [AS ident]
    source     := devices | devices.jobs
    expr       := and {OR and}
    and        := not {AND not}
    not        := NOT not | comparison
    comparison := additive [(= | != | <> | < | > | <= | >=) additive | (IN | NIN) array]
    additive   := term {(+ | -) term}
    term       := unary {(* | / | %) unary}
    unary      := - unary | primary
    primary    := literal | array | ( expr ) | function ( [expr {, expr}] ) | path
    literal    := string | number | true | false | null | undefined
    path       := name {. name}

What IoT Hub refuses beyond the grammar is refused here too, as `UnsupportedQuery` pointing at
the culprit: a query longer than 8,192 characters; projections or aggregates on devices.jobs, and
conditions there on anything but `devices.jobs.<property>`; GROUP BY without an aggregate; a
path beside an aggregate that is not the GROUP BY path; two result columns with one name;
`devices.modules` (twinfleet has no module twins); in strict mode, any function but IS_DEFINED.
Nesting deeper than `MAX_DEPTH` is refused as well, which bounds every recursion that follows;
long runs of one operator (`a OR b OR ...`) do not nest and are evaluated in a loop.

The twin's top-level identity fields (`deviceId`, `status`, `lastActivityTime`, ...) match in
any case, as IoT Hub's documented `SELECT DeviceId, LastActivityTime` shows; every other name
is case-sensitive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from queries import errors, functions, nodes
from queries.tokens import Kind, Token, tokenize
from queries.values import UNDEFINED, Undefined

__all__ = ["TWIN_FIELDS", "Parser", "checked", "guarded", "parse_condition", "parse_select"]

_Parsed = TypeVar("_Parsed")

_COMPARISONS = frozenset({"=", "!=", "<>", "<", ">", "<=", ">="})
_CONSTANTS: dict[str, bool | Undefined | None] = {
    "TRUE": True,
    "FALSE": False,
    "NULL": None,
    "UNDEFINED": UNDEFINED,
}
_SOURCES = ("devices", "devices.jobs")
_JOBS_PREFIX = ("devices", "jobs")
MAX_LENGTH = 8192  # IoT Hub's limit on the length of a query expression
MAX_DEPTH = 64  # how deeply expressions may nest (parentheses, NOT, function calls)
# The twin's top-level identity fields, which IoT Hub matches whatever their case (its docs
# project `DeviceId, LastActivityTime` and get `deviceId`, `lastActivityTime` back). Paths into
# tags and properties stay case-sensitive.
TWIN_FIELDS = {
    name.lower(): name
    for name in (
        "deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason",
        "statusUpdateTime", "connectionState", "lastActivityTime", "cloudToDeviceMessageCount",
        "authenticationType", "x509Thumbprint", "version", "capabilities", "modelId",
        "deviceScope", "parentScopes",
    )
}  # fmt: skip


class Parser:
    """A recursive-descent parser over one query text."""

    def __init__(self, text: str, *, strict: bool = False) -> None:
        self.text = text
        self.strict = strict
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0
        self.source = "devices"
        self.item_tokens: list[Token] = []  # where each SELECT item starts, for error positions
        # every property path with its first and last token, for checks that point at a path
        self.paths: list[tuple[nodes.Path, Token, Token]] = []

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _peek(self) -> Token:
        return self.tokens[self.pos]

    def _advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not Kind.END:
            self.pos += 1
        return token

    def _is(self, kind: Kind, text: str | None = None) -> bool:
        token = self._peek
        return token.kind is kind and (text is None or token.text == text)

    def _accept(self, kind: Kind, text: str | None = None) -> Token | None:
        return self._advance() if self._is(kind, text) else None

    def _expect(self, kind: Kind, text: str | None = None, what: str | None = None) -> Token:
        token = self._accept(kind, text)
        if token is None:
            if what is None:
                what = kind.value if text is None else repr(text) if kind is Kind.OP else text
            raise self._error(what)
        return token

    def _error(self, expected: str, token: Token | None = None) -> errors.QuerySyntaxError:
        token = token or self._peek
        return errors.QuerySyntaxError(
            expected, token.describe(), self.text, token.line, token.column
        )

    def _enter(self) -> None:
        """Count one more level of nesting; refuse past MAX_DEPTH (it bounds recursion)."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._unsupported(
                f"The query nests more than {MAX_DEPTH} levels deep (parentheses, NOT, "
                "function calls); write it flatter",
                self._peek,
            )

    def _unsupported(self, reason: str, token: Token) -> errors.UnsupportedQuery:
        return errors.UnsupportedQuery(reason, self.text, token.line, token.column)

    # -- rules -----------------------------------------------------------------------------

    def parse_query(self) -> nodes.Select:
        """`query`: a whole SELECT statement."""
        self._expect(Kind.KEYWORD, "SELECT")
        top = self._parse_top()
        select_token = self._peek
        projections = self._parse_select_list()
        self._expect(Kind.KEYWORD, "FROM")
        self.source = self._parse_source()
        where = self._parse_expr() if self._accept(Kind.KEYWORD, "WHERE") else None
        group_by = None
        if self._accept(Kind.KEYWORD, "GROUP"):
            self._expect(Kind.KEYWORD, "BY")
            group_by = self._parse_path(self._expect(Kind.IDENT, what="a property path"))
        if not self._is(Kind.END):
            if group_by is not None:
                raise self._error("the end of the query")
            if where is not None:
                raise self._error("an operator, GROUP BY or the end of the query")
            raise self._error("WHERE, GROUP BY or the end of the query")
        select = nodes.Select(self.source, tuple(projections), top, where, group_by)
        self._check_select(select, select_token)
        return select

    def parse_condition(self) -> nodes.Expr:
        """A bare condition, as jobs' and configurations' target conditions are written."""
        if self._is(Kind.KEYWORD, "SELECT"):
            raise self._error("a condition (what follows WHERE), not a full query")
        expr = self._parse_expr()
        if not self._is(Kind.END):
            raise self._error("an operator or the end of the condition")
        return expr

    def _parse_top(self) -> int | None:
        if not self._accept(Kind.KEYWORD, "TOP"):
            return None
        token = self._expect(Kind.NUMBER, what="a whole number after TOP")
        if not isinstance(token.value, int) or token.value < 0:
            raise self._error("a whole number after TOP", token)
        return token.value

    def _parse_select_list(self) -> list[nodes.Projection]:
        if self._accept(Kind.OP, "*"):
            return []
        items = [self._parse_select_item()]
        while self._accept(Kind.OP, ","):
            items.append(self._parse_select_item())
        return items

    def _parse_select_item(self) -> nodes.Projection:
        token = self._peek
        self.item_tokens.append(token)
        expr: nodes.Expr | nodes.Aggregate
        following = self.tokens[min(self.pos + 1, len(self.tokens) - 1)]
        next_is_paren = following.kind is Kind.OP and following.text == "("
        if token.kind is Kind.IDENT and token.text.upper() in nodes.AGGREGATES and next_is_paren:
            expr = self._parse_aggregate()
        else:
            expr = self._parse_expr()
        alias = None
        if self._accept(Kind.KEYWORD, "AS"):
            alias = self._expect(Kind.IDENT, what="an alias name").text
        return nodes.Projection(expr, alias)

    def _parse_aggregate(self) -> nodes.Aggregate:
        name = self._advance().text.upper()
        self._expect(Kind.OP, "(")
        arg = None
        if name == "COUNT":
            self._expect(Kind.OP, ")", what="')' (COUNT takes no argument)")
        else:
            arg = self._parse_path(self._expect(Kind.IDENT, what=f"a property path in {name}"))
            self._expect(Kind.OP, ")")
        return nodes.Aggregate(name, arg)

    def _parse_source(self) -> str:
        token = self._peek
        name = self._expect(Kind.IDENT, what="devices or devices.jobs").text
        if self._accept(Kind.OP, "."):
            name += "." + self._expect(Kind.IDENT, what="jobs").text
        name = name.lower()
        if name == "devices.modules":
            raise self._unsupported(
                "Module twins (devices.modules) are not supported by twinfleet; "
                "query devices or devices.jobs",
                token,
            )
        if name not in _SOURCES:
            raise self._error("devices or devices.jobs", token)
        return name

    def _parse_expr(self) -> nodes.Expr:
        self._enter()
        left = self._parse_and()
        while self._accept(Kind.KEYWORD, "OR"):
            left = nodes.Binary("OR", left, self._parse_and())
        self.depth -= 1
        return left

    def _parse_and(self) -> nodes.Expr:
        left = self._parse_not()
        while self._accept(Kind.KEYWORD, "AND"):
            left = nodes.Binary("AND", left, self._parse_not())
        return left

    def _parse_not(self) -> nodes.Expr:
        if self._accept(Kind.KEYWORD, "NOT"):
            self._enter()
            operand = self._parse_not()
            self.depth -= 1
            return nodes.Unary("NOT", operand)
        return self._parse_comparison()

    def _parse_comparison(self) -> nodes.Expr:
        left = self._parse_additive()
        token = self._peek
        if token.kind is Kind.OP and token.text in _COMPARISONS:
            self._advance()
            op = "!=" if token.text == "<>" else token.text
            return nodes.Binary(op, left, self._parse_additive())
        if token.kind is Kind.KEYWORD and token.text in ("IN", "NIN"):
            self._advance()
            if not self._is(Kind.OP, "["):
                raise self._error(f"an array such as ['a', 'b'] after {token.text}")
            return nodes.In(left, self._parse_array(), token.text == "NIN")
        return left

    def _parse_additive(self) -> nodes.Expr:
        left = self._parse_term()
        while self._peek.kind is Kind.OP and self._peek.text in ("+", "-"):
            op = self._advance().text
            left = nodes.Binary(op, left, self._parse_term())
        return left

    def _parse_term(self) -> nodes.Expr:
        left = self._parse_unary()
        while self._peek.kind is Kind.OP and self._peek.text in ("*", "/", "%"):
            op = self._advance().text
            left = nodes.Binary(op, left, self._parse_unary())
        return left

    def _parse_unary(self) -> nodes.Expr:
        if self._accept(Kind.OP, "-"):
            self._enter()
            operand = self._parse_unary()
            self.depth -= 1
            if isinstance(operand, nodes.Literal) and _is_number(operand.value):
                return nodes.Literal(-operand.value)  # type: ignore[operator]
            return nodes.Unary("-", operand)
        return self._parse_primary()

    def _parse_primary(self) -> nodes.Expr:
        token = self._peek
        if token.kind in (Kind.STRING, Kind.NUMBER):
            self._advance()
            return nodes.Literal(token.value)  # type: ignore[arg-type]
        if token.kind is Kind.KEYWORD and token.text in _CONSTANTS:
            self._advance()
            return nodes.Literal(_CONSTANTS[token.text])
        if token.kind is Kind.OP and token.text == "[":
            return self._parse_array()
        if self._accept(Kind.OP, "("):
            expr = self._parse_expr()
            self._expect(Kind.OP, ")")
            return expr
        if token.kind is Kind.IDENT:
            self._advance()
            if self._is(Kind.OP, "("):
                return self._parse_call(token)
            return self._parse_path(token)
        raise self._error("an expression")

    def _parse_array(self) -> nodes.Array:
        self._expect(Kind.OP, "[")
        items: list[nodes.Expr] = []
        if not self._is(Kind.OP, "]"):
            items.append(self._parse_expr())
            while self._accept(Kind.OP, ","):
                items.append(self._parse_expr())
        self._expect(Kind.OP, "]", what="',' or ']'")
        return nodes.Array(tuple(items))

    def _parse_call(self, name_token: Token) -> nodes.Call:
        name = name_token.text.upper()
        if name in nodes.AGGREGATES:
            raise self._unsupported(
                f"Aggregate {name} is allowed only in the SELECT list", name_token
            )
        spec = functions.FUNCTIONS.get(name)
        if spec is None:
            raise self._unsupported(f"Unknown function {name_token.text!r}", name_token)
        if self.strict and name != "IS_DEFINED":
            raise self._unsupported(
                f"Function {name} is not supported in IoT Hub twin and job queries "
                "(only IS_DEFINED is)",
                name_token,
            )
        self._expect(Kind.OP, "(")
        args: list[nodes.Expr] = []
        if not self._is(Kind.OP, ")"):
            args.append(self._parse_expr())
            while self._accept(Kind.OP, ","):
                args.append(self._parse_expr())
        self._expect(Kind.OP, ")", what="',' or ')'")
        if not spec.min_args <= len(args) <= spec.max_args:
            count = (
                str(spec.min_args)
                if spec.min_args == spec.max_args
                else f"{spec.min_args} to {spec.max_args}"
            )
            raise self._unsupported(
                f"Function {name} takes {count} argument(s), not {len(args)}", name_token
            )
        return nodes.Call(name, tuple(args))

    def _parse_path(self, first: Token) -> nodes.Path:
        parts = [first.text]
        last = first
        while self._accept(Kind.OP, "."):
            token = self._peek
            if token.kind not in (Kind.IDENT, Kind.KEYWORD):
                raise self._error("a property name after '.'")
            last = self._advance()
            parts.append(str(token.value))
        if self.source == "devices.jobs":
            if tuple(parts[:2]) != _JOBS_PREFIX or len(parts) < 3:
                raise self._unsupported(
                    "A devices.jobs query can only test job properties, written "
                    f"devices.jobs.<property> (not {'.'.join(parts)})",
                    first,
                )
            path = nodes.Path(tuple(parts[2:]))
        else:
            parts[0] = TWIN_FIELDS.get(parts[0].lower(), parts[0])
            path = nodes.Path(tuple(parts))
        self.paths.append((path, first, last))
        return path

    # -- checks IoT Hub makes on a whole query ---------------------------------------------

    def _check_select(self, select: nodes.Select, at: Token) -> None:
        """Refuse what IoT Hub refuses in a well-formed SELECT, pointing at the item at fault."""
        items = list(zip(select.projections, self.item_tokens, strict=True))
        aggregates = [p for p in select.projections if isinstance(p.expr, nodes.Aggregate)]
        if select.source == "devices.jobs" and items:
            raise self._unsupported(
                "Queries on devices.jobs accept only SELECT * (no projections or aggregates)",
                items[0][1],
            )
        if select.group_by is not None and not aggregates:
            raise self._unsupported("GROUP BY needs an aggregate such as COUNT() in SELECT", at)
        if aggregates:
            for projection, token in items:
                if not isinstance(projection.expr, nodes.Aggregate | nodes.Path):
                    raise self._unsupported(
                        "Only property paths and aggregates can be selected in an aggregate query",
                        token,
                    )
                if isinstance(projection.expr, nodes.Path) and projection.expr != select.group_by:
                    raise self._unsupported(
                        f"{_shorten(projection.expr.to_sql())} must be the GROUP BY path "
                        "to appear beside an aggregate",
                        token,
                    )
        seen: set[str] = set()
        for key, (_, token) in zip(nodes.result_keys(select.projections), items, strict=True):
            if key in seen:
                raise self._unsupported(
                    f"Two SELECT items are both named {key!r}; give one an alias with AS", token
                )
            seen.add(key)


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_select(text: str, *, strict: bool = False) -> nodes.Select:
    """Parse a whole query. Raises `QueryError` and nothing else on bad text."""
    return guarded(text, Parser(checked(text), strict=strict).parse_query)


def parse_condition(text: str, *, strict: bool = False) -> nodes.Expr:
    """Parse a bare condition. Raises `QueryError` and nothing else on bad text."""
    return guarded(text, Parser(checked(text), strict=strict).parse_condition)


def guarded(text: str, rule: Callable[[], _Parsed]) -> _Parsed:
    """Run a parser rule over `text`, turning a recursion overflow into a `QueryError`."""
    try:
        return rule()
    except RecursionError:
        raise errors.UnsupportedQuery(
            "The query nests too deeply to evaluate", text, 1, 1
        ) from None


def checked(text: str) -> str:
    """`text` if it is a query IoT Hub would read at all (text, within the length limit)."""
    if not isinstance(text, str):
        raise TypeError(f"a query must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        line = text.count("\n", 0, MAX_LENGTH) + 1
        column = MAX_LENGTH - (text.rfind("\n", 0, MAX_LENGTH) + 1) + 1
        raise errors.UnsupportedQuery(
            f"The query is {len(text):,} characters long; IoT Hub accepts at most {MAX_LENGTH:,}",
            text,
            line,
            column,
        )
    return text
