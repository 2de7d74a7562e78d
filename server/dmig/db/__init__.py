"""Database access: URL resolution and secrets, engines with bounded connects, dialect facts."""
