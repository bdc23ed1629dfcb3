"""SHA-256 of files, read in blocks (the one implementation every module uses)."""

import hashlib
from pathlib import Path


def file_sha256(path: Path | str, chunk_bytes: int = 1 << 24) -> str:
    """Hex SHA-256 of a file's bytes, streamed in `chunk_bytes` blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
