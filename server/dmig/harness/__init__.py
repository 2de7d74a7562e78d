"""The AgileFlow harness: project files shared with other AgileFlow agents."""
