"""Source documents for retrieval: a folder of text, Markdown, HTML and PDF files, or a JSONL file.

Every problem names the file (and for JSONL the line and field), so a user can fix it in one go.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tunewise.errors import DataError
from tunewise.task.data import jsonl_records

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf")
JSONL_EXPECTED = 'expected a .jsonl file with one {"id", "title"?, "text"} object per line'
FOLDER_EXPECTED = f"expected files ending in {', '.join(SUFFIXES)}"
DROPPED_TAGS = ("script", "style", "noscript", "template", "title")
# Tags that start a new line of text; inline tags (<b>, <a>, <span>) stay within their line.
BLOCK_TAGS = re.compile(
    r"^(p|div|section|article|header|footer|main|nav|aside|blockquote|pre|ul|ol|li|dl|dt|dd"
    r"|table|tr|td|th|figure|hr|h[1-6]|br)$"
)
HEADING = re.compile(r"#{1,6}\s+(.+?)(?:\s+#+)?\s*$")
META_CHARSET = re.compile(rb"""<meta[^>]*charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class Document:
    """One source document: `id` is what retrieval results and gold doc_ids name."""

    id: str
    title: str
    text: str
    source: str  # "path" for a file, "path:line" for a JSONL record


def load_documents(path: Path) -> list[Document]:
    """A folder of .txt/.md/.markdown/.html/.htm/.pdf files (recursive), or a JSONL file of
    {"id", "title"?, "text"} records. Sorted by id."""
    documents, _ = _read_collection(path, allow_deletions=False)
    return documents


def apply_patch(
    documents: Sequence[Document], patch_path: Path
) -> tuple[list[Document], list[str]]:
    """The documents after an update: patch records with an existing id replace it, new ids are
    added, a JSONL record {"id": ..., "deleted": true} removes one. Returns (documents sorted by
    id, sorted ids that changed: replaced with different text/title, added, or deleted)."""
    updates, deletions = _read_collection(patch_path, allow_deletions=True)
    current = {document.id: document for document in documents}
    changed: set[str] = set()
    for doc_id, line in deletions:
        if doc_id not in current:
            problem = f"id '{doc_id}' is not among the documents, so it cannot be deleted"
            raise DataError(patch_path, line, "id", problem)
        del current[doc_id]
        changed.add(doc_id)
    for update in updates:
        old = current.get(update.id)
        if old is None or (old.title, old.text) != (update.title, update.text):
            changed.add(update.id)
        current[update.id] = update
    return sorted(current.values(), key=lambda d: d.id), sorted(changed)


def documents_hash(documents: Sequence[Document]) -> str:
    """sha256 over (id, title, text) of every document in id order."""
    digest = hashlib.sha256()
    for document in sorted(documents, key=lambda d: d.id):
        digest.update(document_hash(document).encode())
    return digest.hexdigest()


def document_hash(document: Document) -> str:
    """sha256 of one document's (id, title, text)."""
    # JSON keeps the fields apart, so ("a", "bc") and ("ab", "c") hash differently.
    fields = json.dumps([document.id, document.title, document.text])
    return hashlib.sha256(fields.encode()).hexdigest()


def _read_collection(
    path: Path, allow_deletions: bool
) -> tuple[list[Document], list[tuple[str, int]]]:
    """(documents sorted by id, (id, line) of deletion records)."""
    if not path.exists():
        raise DataError(path, None, None, "no such file or folder")
    if path.is_dir():
        documents, deletions = _read_folder(path), []
    elif path.suffix.lower() == ".jsonl":
        documents, deletions = _read_jsonl(path, allow_deletions)
    else:
        raise DataError(path, None, None, f"is not a folder or a .jsonl file; {JSONL_EXPECTED}")
    if not documents and not deletions:
        expected = FOLDER_EXPECTED if path.is_dir() else JSONL_EXPECTED
        raise DataError(path, None, None, f"no documents found; {expected}")
    return sorted(documents, key=lambda d: d.id), deletions


def _read_folder(folder: Path) -> list[Document]:
    documents = []
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not file.is_file():
            continue
        suffix = file.suffix.lower()
        if suffix not in SUFFIXES:
            problem = f"unsupported file type '{suffix or file.name}'; {FOLDER_EXPECTED}"
            raise DataError(file, None, None, problem)
        read = _pdf if suffix == ".pdf" else _html if suffix in HTML_SUFFIXES else _text
        title, text = read(file, _read_bytes(file))
        text = _normalise(text)
        if not text.strip():
            raise DataError(file, None, None, "is empty; every document needs some text")
        documents.append(Document(relative.as_posix(), title, text, str(file)))
    return documents


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise DataError(file, None, None, f"cannot be read ({exc.strerror or exc})") from None


def _decode(file: Path, raw: bytes) -> str:
    if b"\x00" in raw:
        raise DataError(file, None, None, "looks like a binary file, not text")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        problem = f"byte {exc.start} is not UTF-8; re-save the file as UTF-8"
        raise DataError(file, None, None, problem) from None


def _normalise(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _text(file: Path, raw: bytes) -> tuple[str, str]:
    text = _decode(file, raw)
    title = file.stem
    if file.suffix.lower() in (".md", ".markdown"):
        fenced = False
        for line in text.splitlines():
            # A "# comment" inside a code block is not a heading.
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and (match := HEADING.match(line)):
                title = match.group(1)
                break
    return title, text


def _html(file: Path, raw: bytes) -> tuple[str, str]:
    import bs4  # imported here: only folders with HTML files need it

    declared = META_CHARSET.search(raw[:4096])
    charset = declared.group(1).decode("ascii").lower() if declared else "utf-8"
    try:
        markup = None if charset in ("utf-8", "utf8") else raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        markup = None  # a wrong or unknown declaration: read it as UTF-8 like any other file
    soup = bs4.BeautifulSoup(_decode(file, raw) if markup is None else markup, "html.parser")
    title = file.stem
    for tag in (soup.title, soup.h1):
        if tag is not None and (found := " ".join(tag.get_text(" ").split())):
            title = found
            break
    for tag in soup.find_all(DROPPED_TAGS):
        tag.decompose()
    # Line breaks in the markup are plain spaces to a browser (except in <pre>); only blocks
    # start new lines. type(...) keeps comments comments, so get_text() still leaves them out.
    for string in soup.find_all(string=True):
        if string.find_parent("pre") is None:
            string.replace_with(type(string)(re.sub(r"\s+", " ", string)))
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return title, "\n".join(line for line in lines if line)


def _pdf(file: Path, raw: bytes) -> tuple[str, str]:
    import pypdf  # imported here: only folders with PDF files need it

    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        # An owner password alone only restricts editing; the text is readable without one.
        if reader.is_encrypted and not reader.decrypt(""):
            problem = "is encrypted with a password; save an unencrypted copy"
            raise DataError(file, None, None, problem)
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except DataError:
        raise
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise DataError(file, None, None, f"is not a readable PDF ({exc})") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise DataError(file, None, None, "has no extractable text (a scanned PDF? run OCR first)")
    return (title.strip() if isinstance(title, str) else "") or file.stem, text


def _read_jsonl(path: Path, allow_deletions: bool) -> tuple[list[Document], list[tuple[str, int]]]:
    documents: list[Document] = []
    deletions: list[tuple[str, int]] = []
    first_line: dict[str, int] = {}
    for line, record in jsonl_records(path, _read_bytes(path)):

        def fail(field: str | None, problem: str, line: int = line) -> DataError:
            return DataError(path, line, field, problem)

        doc_id = record.get("id")
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise fail("id", "is missing or not a non-empty string")
        if doc_id in first_line:
            problem = f"id '{doc_id}' repeats line {first_line[doc_id]}; ids must be unique"
            raise fail("id", problem)
        first_line[doc_id] = line
        deleted = record.get("deleted", False)
        if not isinstance(deleted, bool):
            raise fail("deleted", "must be true or false")
        if deleted:
            if not allow_deletions:
                raise fail("deleted", "deletion records belong in an update patch")
            deletions.append((doc_id, line))
            continue
        text = record.get("text")
        if not isinstance(text, str):
            raise fail("text", "is missing or not a string")
        text = _normalise(text)
        if not text.strip():
            raise fail("text", "is empty; every document needs some text")
        title = record.get("title")
        if title is not None and not isinstance(title, str):
            raise fail("title", "must be a string")
        documents.append(Document(doc_id, title or doc_id, text, f"{path}:{line}"))
    return documents, deletions
