"""Storage: Protocol implementations over aiosqlite. SQL lives only in this package."""
