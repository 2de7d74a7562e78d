"""One module per capability; each declares ``TOOLS: list[ToolSpec]`` (see dmig.registry)."""
