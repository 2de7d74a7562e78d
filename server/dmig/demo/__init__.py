"""The demo: the product's story, driven through the MCP server exactly as the agent drives it."""


def run_demo(*args, **kwargs):
    """Imported on call: the story pulls in the MCP client, which `dmig --help` should not pay for."""
    from dmig.demo.story import run_demo as _run

    return _run(*args, **kwargs)


__all__ = ["run_demo"]
