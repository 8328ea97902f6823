"""The minimal .xlsx reader and writer (workflow_lib.xlsx)."""

import zipfile

import pytest

from workflow_lib import authors as A
from workflow_lib.fileutils import InputFormatError
from workflow_lib.xlsx import read_sheet, sheet_names, write_xlsx


def test_xlsx_with_shared_strings(tmp_path):
    """The layout Excel writes (shared-string table, rich-text runs, a header on row 4)."""
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "xl/workbook.xml": f'<workbook xmlns="{ns}" xmlns:r="{rel}"><sheets><sheet name="Adult_cerebral_cortex" '
                           f'sheetId="1" r:id="rId7"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                                      f'<Relationship Id="rId7" Type="{rel}/worksheet" Target="/xl/worksheets/s.xml"/></Relationships>',
        "xl/sharedStrings.xml": f'<sst xmlns="{ns}"><si><t>Gene</t></si><si><t>Cluster</t></si><si><r><t>Ra</t></r>'
                                f'<r><t>sgrf2</t></r></si><si><t>Ex-L2/3-Rasgrf2</t></si><si><t>Title</t></si></sst>',
        "xl/worksheets/s.xml": f'<worksheet xmlns="{ns}"><sheetData><row r="1"><c r="A1" t="s"><v>4</v></c></row>'
                               '<row r="4"><c r="A4" t="s"><v>0</v></c><c r="C4" t="s"><v>1</v></c></row>'
                               '<row r="5"><c r="A5" t="s"><v>2</v></c><c r="B5"><v>0.5</v></c><c r="C5" t="s"><v>3</v></c></row>'
                               '</sheetData></worksheet>',
    }
    p = tmp_path / "sup_tab1.xlsx"
    with zipfile.ZipFile(p, "w") as z:
        for k, v in parts.items():
            z.writestr(k, v)
    assert read_sheet(p, "Adult_cerebral_cortex")[4] == ["Rasgrf2", "0.5", "Ex-L2/3-Rasgrf2"]
    de = A.read_de_genes(p)
    assert de.to_dict("records") == [{"gene": "Rasgrf2", "cluster": "Ex-L2/3-Rasgrf2", "ident": "E2Rasgrf2"}]
    with pytest.raises(InputFormatError, match="no sheet 'Other'"):
        read_sheet(p, "Other")
    (tmp_path / "bad.xlsx").write_bytes(b"not a zip")
    with pytest.raises(InputFormatError, match=r"bad\.xlsx: not an \.xlsx workbook"):
        read_sheet(tmp_path / "bad.xlsx", "x")


def test_write_xlsx_round_trip(tmp_path):
    """Inline strings (escaped), numbers as their text, gaps as None, columns past Z, two sheets."""
    row = ["Gene", 0.5, None, 'a<b & "c"'] + [None] * 22 + ["AA"]
    p = tmp_path / "out.xlsx"
    write_xlsx(p, {"First": [row, [], [7]], "Second & more": [["x"]]})
    assert sheet_names(p) == ["First", "Second & more"]
    got = read_sheet(p, "First")
    assert got[0] == ["Gene", "0.5", None, 'a<b & "c"'] + [None] * 22 + ["AA"]
    assert got[1:] == [[], ["7"]]
    assert read_sheet(p, "Second & more") == [["x"]]
    with zipfile.ZipFile(p) as z:
        assert "xl/sharedStrings.xml" not in z.namelist()
    with pytest.raises(InputFormatError, match=r"missing\.xlsx: file not found"):
        read_sheet(tmp_path / "missing.xlsx", "First")
