"""Documents from folders (text, Markdown, HTML, PDF) and JSONL, patches, hashes, and errors that
name the file, line and field."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pypdf
import pytest

from tunewise.errors import DataError, TunewiseError
from tunewise.retrieval.documents import (
    Document,
    apply_patch,
    document_hash,
    documents_hash,
    load_documents,
)


def text_pdf(text: str) -> bytes:
    """A minimal one-page PDF showing `text` in Helvetica, with an xref table of real offsets."""
    stream = f"BT /F1 12 Tf 10 50 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def rewritten_pdf(raw: bytes, title: str | None = None, password: str | None = None) -> bytes:
    """`raw` through pypdf's writer, with a metadata title and/or encryption added."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(raw)))
    if title is not None:
        writer.add_metadata({"/Title": title})
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def blank_pdf() -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(72, 72)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """One line per item: dicts as JSON, strings as they are."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return write(path, text + "\n")


def data_error(path: Path, patch_of: list[Document] | None = None) -> DataError:
    with pytest.raises(DataError) as caught:
        if patch_of is None:
            load_documents(path)
        else:
            apply_patch(patch_of, path)
    assert isinstance(caught.value, TunewiseError)
    assert "\n" not in str(caught.value)
    return caught.value


def test_folder_of_mixed_nested_files(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "notes.txt", "Plain notes.\r\nSecond line.   \n\n\nNew paragraph.\n")
    write(root / "europe" / "HRV.md", "\ufeffIntro text.\n\n# Croatia\n\nCapital: Zagreb.\n")
    write(root / "europe" / "deep" / "FRA.markdown", "## France ##\nCapital: Paris.\n")
    html = (
        "<html><head><title> Visa  rules </title><style>p {color: red}</style>"
        "<script>var x = 1;</script></head><body><h1>Heading</h1>"
        "<p>First   <b>bold</b> paragraph.</p><div>Second\n   block</div>"
        "<noscript>enable js</noscript><template>hidden</template></body></html>"
    )
    write(root / "web" / "visa.html", html)
    write(root / "hello.pdf", text_pdf("Hello tunewise"))
    write(root / ".hidden" / "secret.bin", b"\x00\x01")
    write(root / ".DS_Store", b"\x00junk")

    documents = load_documents(root)

    assert [d.id for d in documents] == [
        "europe/HRV.md",
        "europe/deep/FRA.markdown",
        "hello.pdf",
        "notes.txt",
        "web/visa.html",
    ]
    by_id = {d.id: d for d in documents}
    assert by_id["notes.txt"] == Document(
        "notes.txt",
        "notes",
        "Plain notes.\nSecond line.\n\n\nNew paragraph.",
        str(root / "notes.txt"),
    )
    assert by_id["europe/HRV.md"].title == "Croatia"
    assert by_id["europe/HRV.md"].text == "Intro text.\n\n# Croatia\n\nCapital: Zagreb."
    assert by_id["europe/deep/FRA.markdown"].title == "France"
    assert by_id["hello.pdf"].title == "hello"
    assert "Hello tunewise" in by_id["hello.pdf"].text
    visa = by_id["web/visa.html"]
    assert visa.title == "Visa rules"
    assert visa.text == "Heading\nFirst bold paragraph.\nSecond block"


def test_markdown_title_skips_code_blocks_and_falls_back_to_the_stem(tmp_path: Path) -> None:
    write(tmp_path / "a.md", "```bash\n# not a title\n```\n\n# Real title\n")
    write(tmp_path / "b.md", "No heading here, #hashtag.\n")
    write(tmp_path / "c.txt", "# Text files have no headings\n")
    titles = [d.title for d in load_documents(tmp_path)]
    assert titles == ["Real title", "b", "c"]


def test_html_title_falls_back_to_h1_then_stem_and_honours_meta_charset(tmp_path: Path) -> None:
    write(tmp_path / "a.html", "<body><h1>Only <i>a</i> heading</h1><p>Body.</p></body>")
    write(
        tmp_path / "b.htm",
        "<p>Line one<br>Line\n  two<!-- a comment --></p><pre>x = 1\ny = 2</pre>",
    )
    latin = '<meta charset="iso-8859-1"><title>Caf\xe9</title><p>Cr\xe8me br\xfbl\xe9e</p>'
    write(tmp_path / "c.html", latin.encode("latin-1"))
    write(tmp_path / "d.html", '<meta charset="no-such-charset"><p>Plain UTF-8: \u00e9</p>')
    a, b, c, d = load_documents(tmp_path)
    assert (a.title, a.text) == ("Only a heading", "Only a heading\nBody.")
    assert (b.title, b.text) == ("b", "Line one\nLine two\nx = 1\ny = 2")
    assert (c.title, c.text) == ("Café", "Crème brûlée")
    assert d.text == "Plain UTF-8: é"


def test_pdf_title_from_metadata_and_owner_only_encryption_is_readable(tmp_path: Path) -> None:
    write(tmp_path / "titled.pdf", rewritten_pdf(text_pdf("Hello tunewise"), title="Annual report"))
    write(tmp_path / "locked.pdf", rewritten_pdf(text_pdf("Still readable"), password=""))
    locked, titled = load_documents(tmp_path)
    assert (titled.title, "Hello tunewise" in titled.text) == ("Annual report", True)
    assert (locked.title, "Still readable" in locked.text) == ("locked", True)


def test_jsonl_documents(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"id": "b", "title": "Bee", "text": "Bees make honey.  \r\nThe end.", "url": "x"},
            "",
            {"id": 7, "text": "Seven."},
        ],
    )
    assert load_documents(path) == [
        Document("7", "7", "Seven.", f"{path}:3"),
        Document("b", "Bee", "Bees make honey.\nThe end.", f"{path}:1"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("binary.txt", b"abc\x00\x01\x02", "looks like a binary file, not text"),
        ("latin.md", "caf\xe9".encode("latin-1"), "byte 3 is not UTF-8; re-save the file as UTF-8"),
        ("blank.pdf", blank_pdf(), "no extractable text (a scanned PDF? run OCR first)"),
        ("corrupt.pdf", b"%PDF-1.4\nthis is not really a pdf", "is not a readable PDF ("),
        ("notpdf.pdf", b"hello", "is not a readable PDF ("),
        ("data.csv", "a,b\n", "unsupported file type '.csv'; expected files ending in .txt, .md"),
        ("README", "hi", "unsupported file type 'README'"),
        ("empty.txt", "", "is empty"),
        ("spaces.md", "  \n\t\n", "is empty"),
        ("empty.html", "<script>only()</script>", "is empty"),
    ],
)
def test_bad_files_in_a_folder_name_the_file(
    tmp_path: Path, name: str, content: str | bytes, problem: str
) -> None:
    write(tmp_path / "ok.txt", "fine")
    file = write(tmp_path / "sub" / name, content)
    error = data_error(tmp_path)
    assert error.path == file
    assert problem in str(error)
    assert str(file) in str(error)


def test_encrypted_pdf_is_an_error(tmp_path: Path) -> None:
    file = write(tmp_path / "secret.pdf", rewritten_pdf(text_pdf("Hidden"), password="pw"))
    error = data_error(tmp_path)
    assert error.path == file
    assert "is encrypted" in str(error)


def test_unsupported_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    write(tmp_path / "x.docx", b"PK")
    message = str(data_error(tmp_path))
    for suffix in (".txt", ".md", ".markdown", ".html", ".htm", ".pdf"):
        assert suffix in message


def test_unreadable_file_names_the_os_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path / "locked.txt", "text")
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == file:
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    error = data_error(tmp_path)
    assert error.path == file
    assert "cannot be read (Permission denied)" in str(error)


def test_missing_empty_and_wrong_kind_of_paths(tmp_path: Path) -> None:
    assert "no such file or folder" in str(data_error(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    write(empty / ".hidden.txt", "hidden files do not count")
    error = data_error(empty)
    assert (error.path, error.line) == (empty, None)
    assert "no documents found; expected files ending in" in str(error)
    jsonl = write(tmp_path / "empty.jsonl", "\n\n")
    assert "no documents found; expected a .jsonl file" in str(data_error(jsonl))
    single = write(tmp_path / "one.md", "# A file")
    assert "is not a folder or a .jsonl file" in str(data_error(single))


@pytest.mark.parametrize(
    ("lines", "line", "field", "problem"),
    [
        ([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}], 3, "id",
         "id 'a' repeats line 1; ids must be unique"),
        ([{"id": "a", "text": "x"}, {"id": "b", "title": "B"}], 2, "text", "is missing"),
        ([{"id": "a", "text": "   "}], 1, "text", "is empty"),
        ([{"id": "a", "text": 3}], 1, "text", "not a string"),
        ([{"text": "x"}], 1, "id", "is missing"),
        ([{"id": "", "text": "x"}], 1, "id", "non-empty string"),
        ([{"id": ["a"], "text": "x"}], 1, "id", "non-empty string"),
        ([{"id": "a", "text": "x", "title": 5}], 1, "title", "must be a string"),
        ([{"id": "a", "text": "x"}, {"id": "b", "deleted": True}], 2, "deleted",
         "deletion records belong in an update patch"),
        ([{"id": "a", "text": "x", "deleted": "yes"}], 1, "deleted", "must be true or false"),
        (["", '{"id": "a", "text": }'], 2, None, "malformed JSON"),
        (['["a", "b"]'], 1, None, "each line must be a JSON object"),
    ],
)  # fmt: skip
def test_jsonl_errors_name_line_and_field(
    tmp_path: Path, lines: list[Any], line: int, field: str | None, problem: str
) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", lines)
    error = data_error(path)
    assert (error.path, error.line, error.field) == (path, line, field)
    assert problem in error.problem


def test_jsonl_undecodable_line_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "docs.jsonl", b'{"id": "a", "text": "x"}\n{"id": "caf\xe9", "text": "y"}\n'
    )
    error = data_error(path)
    assert (error.line, error.field) == (2, None)
    assert "re-save the file as UTF-8" in str(error)


def test_apply_patch_replaces_adds_and_deletes(tmp_path: Path) -> None:
    base = load_documents(
        write_jsonl(
            tmp_path / "base.jsonl",
            [
                {"id": "same", "text": "Unchanged."},
                {"id": "edit", "text": "Old text."},
                {"id": "retitle", "title": "Old", "text": "Kept."},
                {"id": "gone", "text": "Bye."},
            ],
        )
    )
    patch = write_jsonl(
        tmp_path / "patch.jsonl",
        [
            {"id": "same", "text": "Unchanged."},
            {"id": "edit", "text": "New text."},
            {"id": "retitle", "title": "New", "text": "Kept."},
            {"id": "gone", "deleted": True},
            {"id": "added", "text": "Hello."},
        ],
    )
    documents, changed = apply_patch(base, patch)
    assert [d.id for d in documents] == ["added", "edit", "retitle", "same"]
    assert changed == ["added", "edit", "gone", "retitle"]
    by_id = {d.id: d for d in documents}
    assert (by_id["edit"].text, by_id["retitle"].title) == ("New text.", "New")
    assert by_id["same"].source == f"{patch}:1"  # the patch's copy, though its content is equal


def test_apply_patch_from_a_folder_and_its_errors(tmp_path: Path) -> None:
    base = load_documents(write(tmp_path / "docs" / "a.txt", "A.").parent)
    folder = tmp_path / "patch"
    write(folder / "b.md", "# B\nNew.")
    documents, changed = apply_patch(base, folder)
    assert ([d.id for d in documents], changed) == (["a.txt", "b.md"], ["b.md"])

    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"id": "zzz", "deleted": True}])
    error = data_error(unknown, patch_of=base)
    assert (error.line, error.field) == (1, "id")
    assert "cannot be deleted" in error.problem
    empty = write(tmp_path / "empty.jsonl", "")
    assert "no documents found" in str(data_error(empty, patch_of=base))
    duplicate = write_jsonl(
        tmp_path / "dup.jsonl", [{"id": "a.txt", "deleted": True}, {"id": "a.txt", "text": "x"}]
    )
    assert "repeats line 1" in str(data_error(duplicate, patch_of=base))


def test_hashes_are_stable_and_sensitive_to_content() -> None:
    a = Document("a", "A", "alpha", "x.jsonl:1")
    b = Document("b", "B", "beta", "x.jsonl:2")
    assert documents_hash([a, b]) == documents_hash([b, a])
    assert document_hash(a) == document_hash(Document("a", "A", "alpha", "elsewhere.jsonl:9"))
    assert len(document_hash(a)) == len(documents_hash([a])) == 64
    edited = Document("a", "A", "alpha!", "x.jsonl:1")
    retitled = Document("a", "A2", "alpha", "x.jsonl:1")
    assert document_hash(edited) != document_hash(a) != document_hash(retitled)
    assert documents_hash([edited, b]) != documents_hash([a, b])
    assert documents_hash([a]) != documents_hash([a, b])
    assert document_hash(Document("ab", "t", "c", "")) != document_hash(
        Document("a", "t", "bc", "")
    )
