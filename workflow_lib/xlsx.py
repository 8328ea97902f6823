"""A minimal reader (and writer, for the demo and tests) of .xlsx worksheets: cell text only.

An .xlsx file is a zip of XML parts; this reads the workbook's sheet list, the shared-string
table and one worksheet with :mod:`zipfile` and :mod:`xml.etree.ElementTree` -- nothing in the
file is executed, formulas are not evaluated (their cached value is read), and every part is
size-capped. Enough for the supplementary tables of Chen et al. 2019 (no openpyxl needed).
"""

from __future__ import annotations

import re
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

from .fileutils import InputFormatError, atomic_path

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
      "p": "http://schemas.openxmlformats.org/package/2006/relationships"}
MAX_PART_BYTES = 256 << 20
_REF = re.compile(r"^([A-Z]+)(\d+)$")


def _part(z: zipfile.ZipFile, name: str, path) -> ET.Element:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise InputFormatError(path, f"not an .xlsx workbook: part {name} missing") from None
    if info.file_size > MAX_PART_BYTES:
        raise InputFormatError(path, f"part {name} is {info.file_size} bytes uncompressed (limit {MAX_PART_BYTES})")
    try:
        return ET.fromstring(z.read(name))
    except ET.ParseError as e:
        raise InputFormatError(path, f"part {name} is not valid XML ({e})") from e


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _text(el: ET.Element | None) -> str:
    """All text of the <t> elements below ``el`` (rich-text runs concatenated)."""
    if el is None:
        return ""
    return "".join(t.text or "" for t in el.iter(f"{{{NS['m']}}}t"))


def sheet_names(path) -> list[str]:
    path = Path(path)
    with _open(path) as z:
        wb = _part(z, "xl/workbook.xml", path)
        return [s.get("name") for s in wb.iterfind("m:sheets/m:sheet", NS)]


def _open(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise InputFormatError(path, "file not found")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputFormatError(path, f"not an .xlsx workbook (not a zip archive: {e})") from e


def read_sheet(path, sheet: str) -> list[list[str | None]]:
    """Rows of worksheet ``sheet`` as lists of cell texts (None for empty cells), in sheet order;
    missing rows are empty lists. Numbers come back as their text (e.g. ``'0.01'``)."""
    path = Path(path)
    with _open(path) as z:
        wb = _part(z, "xl/workbook.xml", path)
        sheets = {s.get("name"): s.get(f"{{{NS['r']}}}id") for s in wb.iterfind("m:sheets/m:sheet", NS)}
        if sheet not in sheets:
            raise InputFormatError(path, f"no sheet {sheet!r} (sheets: {list(sheets)})")
        rels = _part(z, "xl/_rels/workbook.xml.rels", path)
        target = next((r.get("Target") for r in rels.iterfind("p:Relationship", NS) if r.get("Id") == sheets[sheet]), None)
        if target is None:
            raise InputFormatError(path, f"sheet {sheet!r} has no worksheet part")
        target = target.lstrip("/")
        part = target if target.startswith("xl/") else f"xl/{target}"
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            shared = [_text(si) for si in _part(z, "xl/sharedStrings.xml", path).iterfind("m:si", NS)]
        ws = _part(z, part, path)
    rows: list[list[str | None]] = []
    for row in ws.iterfind("m:sheetData/m:row", NS):
        r = int(row.get("r", len(rows) + 1))
        while len(rows) < r - 1:
            rows.append([])
        cells: list[str | None] = []
        for k, c in enumerate(row.iterfind("m:c", NS)):
            m = _REF.match(c.get("r", ""))
            col = _col_index(m.group(1)) if m else k
            kind = c.get("t", "n")
            v = c.find("m:v", NS)
            if kind == "s":
                try:
                    value = shared[int(v.text)]
                except (AttributeError, ValueError, IndexError, TypeError):
                    raise InputFormatError(path, f"sheet {sheet!r} cell {c.get('r')}: bad shared-string index") from None
            elif kind == "inlineStr":
                value = _text(c.find("m:is", NS))
            else:
                value = v.text if v is not None else None
            while len(cells) < col:
                cells.append(None)
            cells.append(value)
        rows.append(cells)
    return rows


def _col_letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        s = chr(65 + rem) + s
    return s


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_xlsx(path, sheets: dict[str, list[list]]) -> None:
    """Write a minimal, deterministic .xlsx (inline strings, numbers as numbers)."""
    main = NS["m"]
    ct = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
          '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">',
          '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>',
          '<Default Extension="xml" ContentType="application/xml"/>',
          '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>']
    wb = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{main}" xmlns:r="{NS["r"]}"><sheets>']
    rels = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{NS["p"]}">']
    parts = {}
    for i, (name, rows) in enumerate(sheets.items(), start=1):
        ct.append(f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
                  'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>')
        wb.append(f'<sheet name="{_esc(name)}" sheetId="{i}" r:id="rId{i}"/>')
        rels.append(f'<Relationship Id="rId{i}" Type="{NS["r"]}/worksheet" Target="worksheets/sheet{i}.xml"/>')
        xml = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{main}"><sheetData>']
        for r, row in enumerate(rows, start=1):
            xml.append(f'<row r="{r}">')
            for c, v in enumerate(row):
                ref = f"{_col_letters(c)}{r}"
                if v is None:
                    continue
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    xml.append(f'<c r="{ref}"><v>{v}</v></c>')
                else:
                    xml.append(f'<c r="{ref}" t="inlineStr"><is><t>{_esc(str(v))}</t></is></c>')
            xml.append("</row>")
        xml.append("</sheetData></worksheet>")
        parts[f"xl/worksheets/sheet{i}.xml"] = "".join(xml)
    ct.append("</Types>")
    wb.append("</sheets></workbook>")
    rels.append("</Relationships>")
    parts = {"[Content_Types].xml": "".join(ct),
             "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{NS["p"]}">'
                            f'<Relationship Id="rId1" Type="{NS["r"]}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
             "xl/workbook.xml": "".join(wb), "xl/_rels/workbook.xml.rels": "".join(rels), **parts}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in parts.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, text.encode("utf-8"))
