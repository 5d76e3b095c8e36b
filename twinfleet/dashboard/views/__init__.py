"""The dashboard's pages, one module per page family; `routes` wires them."""

__all__: list[str] = []
