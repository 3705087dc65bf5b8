"""The printable certificate (志愿服务证明): an A4 PDF with a QR code to the public verification page.

Chinese text uses the CID font ``STSong-Light`` (``UnicodeCIDFont``): PDF readers supply the glyphs,
so no font file ships with the service. The number and the URL are also set in Helvetica, so that
they can be found in the PDF as plain text, and the document's subject is the number. The output is
deterministic (``invariant``): the same certificate always prints to the same bytes.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Final
from xml.sax.saxutils import escape

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from ledger.services.certificate_views import CertificateView

__all__ = ["ID_TYPE_ZH", "certificate_pdf", "date_zh", "qr_widget"]

FONT: Final = "STSong-Light"
LATIN: Final = "Helvetica"
QR_SIZE: Final = 34 * mm
ID_TYPE_ZH: Final = {"resident_id": "居民身份证", "passport": "护照", "other": "其他证件"}

pdfmetrics.registerFont(UnicodeCIDFont(FONT))

_TITLE = ParagraphStyle(
    "title", fontName=FONT, fontSize=26, leading=34, alignment=TA_CENTER, spaceAfter=4 * mm
)
_BODY = ParagraphStyle("body", fontName=FONT, fontSize=12, leading=20)
_SMALL = ParagraphStyle("small", fontName=FONT, fontSize=9, leading=13, textColor=colors.HexColor("#444444"))
_CELL = ParagraphStyle("cell", fontName=FONT, fontSize=9, leading=12)
_ALERT = ParagraphStyle("alert", parent=_BODY, textColor=colors.HexColor("#b00020"))


def date_zh(value: date) -> str:
    return f"{value.year}年{value.month:02d}月{value.day:02d}日"


def _latin(text: str) -> str:
    return f'<font name="{LATIN}">{escape(text)}</font>'


def qr_widget(url: str) -> QrCodeWidget:
    """The QR code of the verification URL (error correction M: survives a crease or a stamp)."""
    return QrCodeWidget(url, barLevel="M", barBorder=2)


def _qr(url: str) -> Drawing:
    widget = qr_widget(url)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(QR_SIZE, QR_SIZE, transform=[QR_SIZE / (x1 - x0), 0, 0, QR_SIZE / (y1 - y0), 0, 0])
    drawing.add(widget)
    return drawing


def _identity(view: CertificateView) -> str:
    who = view.identity
    if who.erased or who.name is None:
        return "（本人信息已按其要求删除）"
    text = f"<b>{escape(who.name)}</b>"
    if who.id_number is not None:
        kind = ID_TYPE_ZH.get(who.id_type or "", "证件")
        text += f"（{kind}号码 {_latin(who.id_number)}）"
    return text


def _span(view: CertificateView) -> str:
    first, last = view.first_service_date, view.last_service_date
    if first is None or last is None:
        return ""
    return f"于 {date_zh(first)} 至 {date_zh(last)} 期间" if first != last else f"于 {date_zh(first)}"


def _records_table(view: CertificateView) -> Table:
    header = ["服务日期", "活动名称", "服务内容", "记录单位", "时长（小时）"]
    rows: list[list[object]] = [[Paragraph(h, _CELL) for h in header]]
    for r in view.records:
        rows.append(
            [
                Paragraph(r.service_date.isoformat(), _CELL),
                Paragraph(escape(r.activity), _CELL),
                Paragraph(escape(r.content), _CELL),
                Paragraph(escape(r.organising_unit), _CELL),
                Paragraph(r.hours, _CELL),
            ]
        )
    rows.append([Paragraph("合计", _CELL), "", "", "", Paragraph(view.total_hours, _CELL)])
    widths = [24 * mm, 34 * mm, 52 * mm, 38 * mm, 24 * mm]
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("SPAN", (0, -1), (3, -1)),
            ]
        )
    )
    return table


def _story(view: CertificateView) -> list[Flowable]:
    story: list[Flowable] = [
        Paragraph("志愿服务证明", _TITLE),
        Paragraph(f"证明编号：{_latin(view.number)}", _BODY),
        Spacer(1, 4 * mm),
        Paragraph(
            f"兹证明 {_identity(view)} {_span(view)}参加志愿服务，经记录单位记录并核实，"
            f"累计志愿服务时长 <b>{view.total_hours}</b> 小时。服务内容如下：",
            _BODY,
        ),
        Spacer(1, 3 * mm),
        _records_table(view),
        Spacer(1, 5 * mm),
        Paragraph(f"记录单位：{escape('、'.join(view.organising_units))}", _BODY),
        Paragraph(f"出具单位（盖章）：{escape(view.issuer)}", _BODY),
        Paragraph(f"出具日期：{date_zh(view.issued_on)}", _BODY),
    ]
    if view.status.superseded:
        story.append(Paragraph("注意：本证明所涉记录已被更正，本证明已被取代，请以新证明为准。", _ALERT))
    verify = Table(
        [
            [
                _qr(view.verify_url),
                Paragraph(
                    "扫描二维码或访问以下网址，可在线核验本证明的真实性与当前状态：<br/>"
                    f"{_latin(view.verify_url)}<br/><br/>"
                    "本证明免费出具。所载时长均已记入社区账本并经签名检查点确认；"
                    "离线核验可使用本证明的证据包与社区公开的验证公钥。",
                    _SMALL,
                ),
            ]
        ],
        colWidths=[QR_SIZE + 4 * mm, 130 * mm],
    )
    verify.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    story += [Spacer(1, 8 * mm), verify]
    return story


def certificate_pdf(view: CertificateView) -> bytes:
    """The certificate as an A4 PDF (records beyond the first page continue on the next ones)."""
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=20 * mm,
        bottomMargin=18 * mm,
        title="志愿服务证明",
        subject=view.number,
        author=view.issuer,
        creator="vledger",
        invariant=1,
        pageCompression=0,
    )
    doc.build(_story(view))
    return out.getvalue()
