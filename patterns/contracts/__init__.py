"""The twin contract device and back end share: one pydantic model per twin section."""

__all__: list[str] = []
