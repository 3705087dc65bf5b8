"""Certificates over HTTP: a volunteer issues their own (idempotently), downloads the PDF and the bundle,
which verifies offline; the public verification page and JSON need no token and show masked identity
only; refusals; a correction supersedes the certificate on the public page."""

from __future__ import annotations

import json
import re
from typing import Any

import certificates_world as cw  # this directory is on sys.path (rootdir-less tests)
import records_world as rw
from reportlab.graphics.barcode import qrencoder

from api.certificate_pdf import qr_widget
from api.deps import Services
from ledger.audit.certificate_check import verify_certificate_bundle
from ledger.audit.verify_notes import TrustedKeys
from tests.api.conftest import Client, World, profile

OTHER_NAME, OTHER_ID, OTHER_PHONE = "张伟", "11010519491231002X", "13800138000"


def _issue(client: Client, w: World, who: str, person: object, **headers: str) -> Any:
    path = f"/api/v1/communities/{w.community_id}/people/{person}/certificates"
    return client.post(path, json={}, headers={**w.auth(who), **headers})


def test_a_volunteer_issues_prints_and_verifies_their_own(
    client: Client, world: World, api_services: Services
) -> None:
    w, c = world, world.community_id
    cw.signed(w, api_services)
    first = _issue(client, w, "volunteer", w.volunteer_person, **{"Idempotency-Key": "cert-1"})
    assert first.status_code == 201, first.text
    body = first.json()
    again = _issue(client, w, "volunteer", w.volunteer_person, **{"Idempotency-Key": "cert-1"})
    assert again.json()["number"] == body["number"]
    assert again.headers["Idempotent-Replayed"] == "true"
    number = body["number"]
    assert (body["total_hours"], body["status"]["state"], body["identity"]["name"]) == ("2.5", "valid", "李*")
    assert body["verify_url"] == f"http://127.0.0.1:8000/verify/certificates/{number}"

    own = client.get(
        f"/api/v1/communities/{c}/people/{w.volunteer_person}/certificates", headers=w.auth("volunteer")
    )
    assert [x["number"] for x in own.json()] == [number]
    got = client.get(f"/api/v1/communities/{c}/certificates/{number}", headers=w.auth("volunteer")).json()
    assert got["records"][0]["activity"] == "社区助老服务" and got["records"][0]["hours"] == "2.5"

    pdf = client.get(f"/api/v1/communities/{c}/certificates/{number}/pdf", headers=w.auth("volunteer"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and number.encode() in pdf.content
    assert body["verify_url"].encode() in pdf.content  # printed under the QR code too

    bundle = client.get(f"/api/v1/communities/{c}/certificates/{number}/bundle", headers=w.auth("volunteer"))
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("application/json")
    keys = TrustedKeys((cw.signer(w, api_services).verifier(),))
    report = verify_certificate_bundle(bundle.content, keys)
    assert report.ok and report.number == number and report.bundle_sha256 == body["bundle_sha256"]
    assert report.status == "valid" and report.total_minutes == 150


def test_the_qr_code_holds_the_verification_url() -> None:
    url = "https://ledger.example.org/verify/certificates/C42-2025-7KQM-3XF9-HT2D"
    widget = qr_widget(url)
    assert widget.value == url
    widget.draw()
    again = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    again.addData(url)
    again.make()
    assert widget.qr.modules == again.modules  # the same matrix as the URL's own encoding
    other = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    other.addData(url.replace("HT2D", "HT2E"))
    other.make()
    assert widget.qr.modules != other.modules


def test_public_pages_need_no_token_and_show_masked_identity_only(
    client: Client, world: World, api_services: Services
) -> None:
    w = world
    number = cw.other_certificate(w, api_services)  # the other person: 张伟, with an ID and a phone
    page = client.get(f"/verify/certificates/{number}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="zh-CN">' in html and "有效" in html and number in html
    assert "张*" in html and "1101**********002X" in html and "2.5 小时" in html
    public = client.get(f"/api/v1/public/certificates/{number.lower()}")
    assert public.status_code == 200
    data = public.json()
    assert data["identity"] == {
        "name": "张*",
        "id_type": "resident_id",
        "id_number": "1101**********002X",
        "erased": False,
    }
    assert data["status"] == {"state": "valid", "superseded_at": None, "replaced_by": None}
    assert "person_id" not in data and "issued_by" not in data
    for text in (html.replace(data["bundle_sha256"], ""), public.text.replace(data["bundle_sha256"], "")):
        for secret in (OTHER_NAME, OTHER_ID, OTHER_PHONE, "138****", str(w.other_person)):
            assert secret not in text
        assert not re.search(r"1[3-9]\d{9}", text)  # no phone number of any shape

    missing = client.get("/verify/certificates/C1-2025-0000-0000-0000")
    assert missing.status_code == 404 and "未找到该证明" in missing.text
    assert client.get("/verify/certificates/%3Cscript%3E").status_code == 404
    problem = client.get("/api/v1/public/certificates/nonsense")
    assert (problem.status_code, problem.json()["code"]) == (404, "CERTIFICATE_NOT_FOUND")


def test_refusals(client: Client, world: World, api_services: Services) -> None:
    w, c = world, world.community_id
    rw.records(w, api_services)
    nyc = _issue(client, w, "volunteer", w.volunteer_person)
    assert (nyc.status_code, nyc.json()["code"]) == (409, "NOT_YET_CHECKPOINTED")
    cw.sign(w, api_services)
    other = _issue(client, w, "volunteer", w.other_person)
    assert (other.status_code, other.json()["code"]) == (404, "PERSON_NOT_FOUND")
    assert _issue(client, w, "outsider", w.other_person).status_code == 403
    assert (
        client.post(f"/api/v1/communities/{c}/people/{w.other_person}/certificates", json={}).status_code
        == 401
    )
    period = {"period_from": "2030-01-02", "period_to": "2030-01-01"}
    bad = client.post(
        f"/api/v1/communities/{c}/people/{w.other_person}/certificates",
        json=period,
        headers=w.auth("social_worker"),
    )
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (422, "INVALID_FIELD", "period_to")
    nobody = api_services.people.create(
        c, profile("赵敏"), consent_entry=True, consent_publish=False, entered_by_self=False
    )
    fresh = client.post(
        f"/api/v1/communities/{c}/people/{nobody}/certificates",
        json={},
        headers=w.auth("social_worker"),
    )
    assert (fresh.status_code, fresh.json()["code"]) == (422, "NO_SERVICE_TO_CERTIFY")
    number = cw.other_certificate(w, api_services)
    pdf = client.get(f"/api/v1/communities/{c}/certificates/{number}/pdf", headers=w.auth("volunteer"))
    assert (pdf.status_code, pdf.json()["code"]) == (404, "CERTIFICATE_NOT_FOUND")  # someone else's
    assert (
        client.get(
            f"/api/v1/communities/{c}/certificates/{number}/pdf", headers=w.auth("auditor")
        ).status_code
        == 200
    )


def test_a_correction_supersedes_the_certificate_on_the_public_page(
    client: Client, world: World, api_services: Services
) -> None:
    w, s = world, api_services
    number = cw.other_certificate(w, s)
    correction = rw.records(w, s).other_correction  # filed on the certified record
    s.corrections.accept(w.community_id, correction.correction_id, actor_id=w.user_ids["community_admin"])
    data = client.get(f"/api/v1/public/certificates/{number}").json()
    assert data["status"]["state"] == "superseded" and data["status"]["replaced_by"] is None
    assert "已被取代" in client.get(f"/verify/certificates/{number}").text

    cw.sign(w, s)
    issued = _issue(client, w, "social_worker", w.other_person).json()
    assert issued["total_hours"] == "3.0"  # the correction records_world filed: 09:00–12:00
    data = client.get(f"/api/v1/public/certificates/{number}").json()
    assert data["status"]["replaced_by"] == issued["number"]
    assert (
        f'href="/verify/certificates/{issued["number"]}"' in client.get(f"/verify/certificates/{number}").text
    )
    bundle = client.get(
        f"/api/v1/communities/{w.community_id}/certificates/{number}/bundle", headers=w.auth("auditor")
    ).content
    report = verify_certificate_bundle(bundle, TrustedKeys((cw.signer(w, s).verifier(),)))
    assert report.exit_code == 3 and [f.check for f in report.failures.values()] == ["superseded"]
    assert json.loads(bundle)["status"]["replaced_by"] == issued["number"]
