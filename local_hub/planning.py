"""The query planner: the devices a WHERE condition can possibly select, from the twin index.

A plan is a set of device ids that holds every twin the condition is true for, or None when the
condition gives no handle (then every twin is a candidate: a full scan). It only narrows: the
query evaluator still runs on each candidate and decides, so a plan can be generous but never
miss a match. The rules, each sound under the language's three-valued logic:

- `path = literal` (either way round) on a covered path: the index's devices for that value
  (keyed by type, so `'5'` and `5` differ, as `=` has them). `= undefined`, `= [...]`: nothing,
  since `=` is never true for them.
- `path IN [literals]`: the union over the items (arrays among the items match nothing).
  `NIN` gives no handle.
- `a AND b AND ...`: the intersection of the plans of the conjuncts that have one (a twin
  selected by the conjunction is selected by each conjunct); None if none has.
- `a OR b OR ...`: the union, if every operand has a plan (a run of `deviceId = '...'` ORs, as
  campaigns send, becomes a lookup per id); else None.
- Anything else (`NOT`, `!=`, ranges, functions, uncovered paths): None.
"""

from __future__ import annotations

from local_hub import indexes
from queries import nodes
from queries.values import UNDEFINED

__all__ = ["candidates"]


def candidates(where: nodes.Expr | None, index: indexes.TwinIndex) -> set[str] | None:
    """The devices that may satisfy `where`, or None when every twin must be read."""
    if where is None:
        return None
    if isinstance(where, nodes.Binary):
        if where.op == "=":
            return _equality(where.left, where.right, index)
        if where.op in ("AND", "OR"):
            return _logical(where, index)
        return None
    if isinstance(where, nodes.In) and not where.negated:
        return _membership(where, index)
    return None


def _covered(node: nodes.Expr) -> tuple[str, ...] | None:
    if isinstance(node, nodes.Path) and indexes.covers(node.parts):
        return node.parts
    return None


def _equality(left: nodes.Expr, right: nodes.Expr, index: indexes.TwinIndex) -> set[str] | None:
    if isinstance(left, nodes.Literal | nodes.Array):
        left, right = right, left
    path = _covered(left)
    if path is None:
        return None
    if isinstance(right, nodes.Array):
        return set()
    if isinstance(right, nodes.Literal):
        return set() if right.value is UNDEFINED else index.lookup(path, right.value)
    return None


def _membership(node: nodes.In, index: indexes.TwinIndex) -> set[str] | None:
    path = _covered(node.operand)
    if path is None:
        return None
    found: set[str] = set()
    for item in node.items.items:
        if isinstance(item, nodes.Array):
            continue
        if not isinstance(item, nodes.Literal):
            return None
        if item.value is not UNDEFINED:
            found |= index.lookup(path, item.value)
    return found


def _logical(node: nodes.Binary, index: indexes.TwinIndex) -> set[str] | None:
    first, steps = nodes.chain(node)
    plans = [candidates(operand, index) for operand in (first, *(e for _, e in steps))]
    if node.op == "OR":
        if any(plan is None for plan in plans):
            return None
        return set().union(*plans)  # type: ignore[arg-type]
    known = sorted((plan for plan in plans if plan is not None), key=len)
    if not known:
        return None
    result = known[0]
    for plan in known[1:]:
        result &= plan
    return result
