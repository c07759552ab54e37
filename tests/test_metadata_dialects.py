"""Metadata tables as spreadsheet programs save them: BOM, ';' or tab separators, Latin-1."""
import pytest

from soundclf.sources import DataSourceError, list_recordings, read_metadata_table

ROWS = [("grünfink_01.wav", "Grünfink", "Müller"), ("pinson_02.wav", "Pinson des arbres", "Lefèvre")]


def write_table(path, text: str, encoding: str, bom: bool = False) -> None:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))


def table_text(delimiter: str) -> str:
    lines = [delimiter.join(["filename", "primary_label", "author"])]
    lines += [delimiter.join(row) for row in ROWS]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("delimiter, encoding, bom", [
    (",", "utf-8", True),      # Excel's "CSV UTF-8"
    (";", "utf-8", False),     # European locales separate with ';'
    (";", "cp1252", False),    # Excel's plain "CSV" on Windows, Western Europe
    ("\t", "utf-8", False),    # "Unicode text" / TSV exports
])
def test_spreadsheet_exports_read_to_the_same_rows(tmp_path, capsys, delimiter, encoding, bom):
    path = tmp_path / "metadata.csv"
    write_table(path, table_text(delimiter), encoding, bom)
    header, rows = read_metadata_table(path)
    assert header == ["filename", "primary_label", "author"]
    assert [(r["filename"], r["primary_label"], r["author"]) for r in rows] == ROWS
    said = capsys.readouterr().err
    assert ("is not UTF-8" in said and "read it as cp1252" in said) == (encoding == "cp1252")


def test_latin1_bytes_that_windows_1252_leaves_undefined_still_read(tmp_path, capsys):
    path = tmp_path / "metadata.csv"
    path.write_bytes("filename,primary_label\nx.wav,caf\xe9\x81\n".encode("latin-1"))
    _, rows = read_metadata_table(path)
    assert rows[0]["primary_label"] == "caf\xe9\x81" and "read it as latin-1" in capsys.readouterr().err


def test_a_given_encoding_is_used_and_a_wrong_one_named(tmp_path):
    path = tmp_path / "metadata.csv"
    write_table(path, table_text(","), "cp1252")
    _, rows = read_metadata_table(path, "cp1252")
    assert rows[0]["primary_label"] == "Grünfink"
    with pytest.raises(DataSourceError, match="cannot be read as data.metadata_encoding 'utf-8'.*set data.metadata_encoding"):
        read_metadata_table(path, "utf-8")


def test_the_index_listing_reads_a_semicolon_latin1_table(tmp_path):
    write_table(tmp_path / "metadata.csv", table_text(";"), "cp1252")
    data = {"layout": "metadata", "audio_dir": str(tmp_path / "audio"), "metadata_csv": str(tmp_path / "metadata.csv"),
            "columns": {"filename": "filename", "label": "primary_label"}}
    recordings = list_recordings(data)
    assert [(r.key, r.label, r.row["author"]) for r in recordings] == ROWS
