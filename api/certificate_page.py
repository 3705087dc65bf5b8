"""The public verification page of a certificate (the QR code's target): a small zh-CN HTML page.

It shows only what the printed certificate shows, masked the same way (张*三, 3201**********1234,
never a phone number): hours, activities, recording organisations, dates and the status. Every
value is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from api.certificate_pdf import ID_TYPE_ZH, date_zh
from ledger.domain.service_credit import CHINA_TZ
from ledger.services.certificate_views import CertificateView

__all__ = ["not_found_page", "verification_page"]

_STYLE = """
body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;max-width:44rem;
margin:1.5rem auto;padding:0 1rem;color:#222;line-height:1.6}
h1{font-size:1.5rem;margin-bottom:.25rem}.status{padding:.6rem 1rem;border-radius:.4rem;font-weight:bold}
.valid{background:#e7f6ec;color:#14632d}.superseded{background:#fdecea;color:#8a1c12}
dl{display:grid;grid-template-columns:8rem 1fr;gap:.25rem .75rem}dt{color:#666}dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}.note{color:#666;font-size:.85rem}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def _status(view: CertificateView) -> str:
    status = view.status
    if not status.superseded:
        return '<p class="status valid">有效：本证明与社区账本记录一致。</p>'
    at = status.superseded_at
    when = "" if at is None else f"于 {date_zh(at.astimezone(CHINA_TZ).date())} "
    text = f"已被取代：本证明所涉记录{when}经更正，本证明已不再反映最新时长。"
    if status.replaced_by is not None:
        link = f"/verify/certificates/{escape(status.replaced_by)}"
        text += f'新证明编号：<a href="{link}">{escape(status.replaced_by)}</a>。'
    else:
        text += "请向出具单位申请新的证明。"
    return f'<p class="status superseded">{text}</p>'


def _identity(view: CertificateView) -> str:
    who = view.identity
    if who.erased or who.name is None:
        return "<dt>志愿者</dt><dd>（本人信息已按其要求删除）</dd>"
    html = f"<dt>志愿者</dt><dd>{escape(who.name)}</dd>"
    if who.id_number is not None:
        kind = ID_TYPE_ZH.get(who.id_type or "", "证件")
        html += f"<dt>{kind}号码</dt><dd>{escape(who.id_number)}</dd>"
    return html


def _span(view: CertificateView) -> str:
    first, last = view.first_service_date, view.last_service_date
    if first is None or last is None:
        return ""
    span = date_zh(first) if first == last else f"{date_zh(first)} 至 {date_zh(last)}"
    return f"<dt>服务日期</dt><dd>{span}</dd>"


def verification_page(view: CertificateView) -> str:
    rows = "".join(
        f"<tr><td>{r.service_date.isoformat()}</td><td>{escape(r.activity)}</td><td>{escape(r.content)}</td>"
        f"<td>{escape(r.organising_unit)}</td><td>{r.hours}</td></tr>"
        for r in view.records
    )
    body = (
        f"<h1>志愿服务证明核验</h1><p>证明编号：<strong>{escape(view.number)}</strong></p>{_status(view)}"
        f"<dl>{_identity(view)}<dt>累计时长</dt><dd>{view.total_hours} 小时</dd>{_span(view)}"
        f"<dt>记录单位</dt><dd>{escape('、'.join(view.organising_units))}</dd>"
        f"<dt>出具单位</dt><dd>{escape(view.issuer)}</dd><dt>出具日期</dt><dd>{date_zh(view.issued_on)}</dd></dl>"
        "<h2>服务内容</h2><table><thead><tr><th>服务日期</th><th>活动名称</th><th>服务内容</th><th>记录单位</th>"
        f"<th>时长（小时）</th></tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="note">证据包摘要（SHA-256）：<code>{view.bundle_sha256}</code><br>'
        "持有证据包者可用社区公开的验证公钥离线核验：vledger audit verify-certificate。</p>"
    )
    return _page(f"志愿服务证明 {view.number}", body)


def not_found_page() -> str:
    body = (
        "<h1>志愿服务证明核验</h1>"
        '<p class="status superseded">未找到该证明：请核对证明编号（形如 C12-2025-XXXX-XXXX-XXXX）。</p>'
    )
    return _page("未找到志愿服务证明", body)
