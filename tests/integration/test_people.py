"""People on real PostgreSQL: encrypted registration, masked reads, consent, guardians, duplicates,
pagination, erasure by crypto-shredding, and master-key rotation."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.people import PersonProfile, resident_id_check_char
from ledger.privacy import (
    DecryptionError,
    Keyring,
    KeyringError,
    decrypt_profile,
    generate_key,
    rewrap_all,
    unwrap_data_key,
)
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.people import People
from ledger.store.db import Conn

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


def resident_id(birth: date, seq: int = 123, region: str = "320102") -> str:
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + resident_id_check_char(first17)


def adult(seq: int = 123, *, name: str = "王秀英", phone: str | None = "13812345678") -> PersonProfile:
    born = date(1960, 3, 15)
    return PersonProfile(
        name=name,
        sex="female",
        birth_date=born,
        id_number=resident_id(born, seq),
        phone=phone,
        residence="幸福社区 5 栋 201",
        skills=("理发", "陪诊"),
        service_categories=("助老",),
    )


def child(seq: int = 456) -> PersonProfile:
    born = date(2015, 9, 1)
    return PersonProfile(name="王小明", sex="male", birth_date=born, id_number=resident_id(born, seq))


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate("t1")


@pytest.fixture
def people(pool: ConnectionPool[Conn], keyring: Keyring) -> People:
    return People(pool, keyring, clock=lambda: NOW)


def register(people: People, community_id: int, profile: PersonProfile, **kw: Any) -> uuid.UUID:
    options: dict[str, Any] = {"consent_entry": True, "consent_publish": False, "entered_by_self": False}
    options.update(kw)
    return people.create(community_id, profile, **options)


def raw_person(owner: Conn, community_id: int, person_id: uuid.UUID) -> dict[str, Any]:
    cur = owner.execute(
        "SELECT * FROM person WHERE community_id = %s AND person_id = %s", (community_id, person_id)
    )
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return {d.name: v for d, v in zip(cur.description, row, strict=True)}


def raw_key(owner: Conn, community_id: int, person_id: uuid.UUID) -> tuple[str, bytes] | None:
    row = owner.execute(
        "SELECT key_id, wrapped_key FROM person_key WHERE community_id = %s AND person_id = %s",
        (community_id, person_id),
    ).fetchone()
    return None if row is None else (str(row[0]), bytes(row[1]))


# ------------------------------------------------------------------------- register and read


def test_round_trip_full_and_masked(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    actor = uuid.uuid4()
    pid = register(people, cid, adult(), consent_publish=True, actor_id=actor)
    full = people.get(cid, pid, full=True)
    assert full.profile is not None and not full.masked and not full.erased
    assert full.profile == adult()
    assert (full.consent_entry, full.consent_publish, full.minor) == (True, True, False)
    assert full.created_by == actor and full.created_at == NOW
    masked = people.get(cid, pid, full=False)
    assert masked.masked and masked.profile is not None
    assert masked.profile.name == "王**"
    assert masked.profile.id_number == "3201**********" + adult().id_number[-4:]  # type: ignore[index]
    assert masked.profile.phone == "138****5678"
    assert masked.profile.skills == ("理发", "陪诊")


def test_input_is_stored_normalised(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    number = resident_id(date(1958, 1, 1), 99)
    messy = PersonProfile(
        name=" 刘芳 ", id_number=f" {number[:6]} {number[6:].lower()}", phone="+86 139 0000 1111"
    )
    pid = register(people, cid, messy)
    stored = people.get(cid, pid, full=True).profile
    assert stored is not None
    assert (stored.name, stored.id_number, stored.phone) == ("刘芳", number, "13900001111")
    assert stored.birth_date == date(1958, 1, 1)  # taken from the ID number


def test_no_personal_value_is_stored_in_plaintext(
    people: People, community: CommunityInfo, owner: Conn
) -> None:
    cid = community.community_id
    profile = adult()
    pid = register(people, cid, profile)
    row = raw_person(owner, cid, pid)
    key = raw_key(owner, cid, pid)
    assert key is not None
    values = [*row.values(), *key]
    blobs = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    text_form = owner.execute(
        "SELECT p::text, k::text FROM person p JOIN person_key k USING (community_id, person_id)"
        " WHERE community_id = %s AND person_id = %s",
        (cid, pid),
    ).fetchone()
    assert text_form is not None
    blobs.extend(str(t).encode() for t in text_form)
    assert profile.id_number is not None and profile.phone is not None
    secrets = [profile.name, profile.id_number, profile.phone, profile.id_number[6:14], profile.residence]
    for secret in secrets:
        for blob in blobs:
            assert secret.encode() not in blob
    assert (
        row["profile_enc"] is not None and len(row["id_number_bidx"]) == 16 and len(row["phone_bidx"]) == 16
    )


def test_unknown_person_and_community(people: People, community: CommunityInfo) -> None:
    with pytest.raises(LedgerError) as info:
        people.get(community.community_id, uuid.uuid4(), full=False)
    assert info.value.code == ErrorCode.PERSON_NOT_FOUND
    with pytest.raises(LedgerError) as info:
        register(people, 2**62, adult())
    assert info.value.code == ErrorCode.COMMUNITY_NOT_FOUND


def test_invalid_profile_is_refused_before_anything_is_written(
    people: People, community: CommunityInfo, owner: Conn
) -> None:
    bad = PersonProfile(name="张三", phone="12345")
    with pytest.raises(LedgerError) as info:
        register(people, community.community_id, bad)
    assert (info.value.code, info.value.field) == (ErrorCode.INVALID_FIELD, "phone")
    count = owner.execute("SELECT count(*) FROM person WHERE community_id = %s", (community.community_id,))
    assert count.fetchone() == (0,)


# --------------------------------------------------------------------------- consent, guardians


def test_consent_required_when_an_organisation_enters_data(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    with pytest.raises(LedgerError) as info:
        register(people, cid, adult(), consent_entry=False, entered_by_self=False)
    assert (info.value.code, info.value.field) == (ErrorCode.CONSENT_REQUIRED, "consent_entry")
    pid = register(people, cid, adult(), consent_entry=False, entered_by_self=True)
    assert people.get(cid, pid, full=False).consent_entry  # self-entered data is consented data


def test_minor_needs_an_adult_guardian_of_the_same_community(
    people: People, community: CommunityInfo, communities: Communities, region_id: int
) -> None:
    cid = community.community_id

    def refused(guardian: uuid.UUID | None, seq: int) -> None:
        with pytest.raises(LedgerError) as info:
            register(people, cid, child(seq), guardian_person_id=guardian)
        assert (info.value.code, info.value.field) == (ErrorCode.GUARDIAN_REQUIRED, "guardian_person_id")

    refused(None, 1)
    refused(uuid.uuid4(), 2)  # nobody
    other = communities.create_community(region_id, f"c-{uuid.uuid4().hex[:12]}", "别的社区")
    refused(register(people, other.community_id, adult()), 3)  # an adult, but of another community
    parent = register(people, cid, adult())
    minor_guardian = register(people, cid, child(4), guardian_person_id=parent)
    refused(minor_guardian, 5)  # a minor cannot be a guardian
    erased_guardian = register(people, cid, adult(77, phone=None))
    people.erase(cid, erased_guardian, actor_id=None)
    refused(erased_guardian, 6)
    kid = register(people, cid, child(7), guardian_person_id=parent)
    view = people.get(cid, kid, full=False)
    assert view.minor and view.guardian_person_id == parent


def test_update_that_makes_a_minor_needs_a_guardian(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    pid = register(people, cid, PersonProfile(name="赵六"))
    with pytest.raises(LedgerError) as info:
        people.update_profile(cid, pid, child(8), actor_id=None)
    assert info.value.code == ErrorCode.GUARDIAN_REQUIRED


# -------------------------------------------------------------------------------- duplicates


def test_same_id_number_twice_is_a_duplicate(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    first = register(people, cid, adult())
    again = adult(name="王秀英二", phone="13700000000")
    assert again.id_number is not None
    spelled = PersonProfile(name="王秀英", id_number=again.id_number.lower().replace("3201", "3201 "))
    for profile in (again, spelled):
        with pytest.raises(LedgerError) as info:
            register(people, cid, profile)
        assert (info.value.code, info.value.field) == (ErrorCode.DUPLICATE_PERSON, "id_number")
        assert again.id_number not in str(info.value.to_dict())
    assert people.find_by_id_number(cid, again.id_number) == first


def test_racing_duplicates_one_wins(
    pool: ConnectionPool[Conn], keyring: Keyring, community: CommunityInfo
) -> None:
    cid = community.community_id
    people = People(pool, keyring, clock=lambda: NOW)
    barrier = threading.Barrier(4)
    outcomes: list[object] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            result: object = register(people, cid, adult())
        except LedgerError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, outcomes)).count(str(ErrorCode.DUPLICATE_PERSON)) == 3
    assert sum(isinstance(o, uuid.UUID) for o in outcomes) == 1


def test_same_id_number_in_another_community_is_allowed(
    people: People, community: CommunityInfo, communities: Communities, region_id: int
) -> None:
    other = communities.create_community(region_id, f"c-{uuid.uuid4().hex[:12]}", "邻近社区")
    a = register(people, community.community_id, adult())
    b = register(people, other.community_id, adult())
    assert a != b


# ------------------------------------------------------------------------------ lookups, pages


def test_find_by_id_number_and_phone(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    mother = register(people, cid, adult(1, phone="13811112222"))
    father = register(people, cid, adult(2, name="李建国", phone="13811112222"))
    other = register(people, cid, adult(3, name="周华", phone="13999998888"))
    assert people.find_by_phone(cid, "+86 138 1111 2222") == sorted([mother, father])
    assert people.find_by_phone(cid, "13999998888") == [other]
    assert people.find_by_phone(cid, "13000000000") == []
    number = adult(2).id_number
    assert number is not None
    assert people.find_by_id_number(cid, number.lower()) == father
    assert people.find_by_id_number(cid, resident_id(date(1960, 3, 15), 4)) is None


def test_pagination_by_person_id(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    ids = [register(people, cid, adult(i, phone=None)) for i in range(5)]
    seen: list[uuid.UUID] = []
    pages: list[int] = []
    after = None
    while True:
        page = people.list(cid, after=after, limit=2)
        pages.append(len(page))
        seen.extend(v.person_id for v in page)
        if len(page) < 2:
            break
        after = page[-1].person_id
    assert seen == sorted(ids) and pages == [2, 2, 1]
    assert all(v.masked for v in people.list(cid))
    full = people.list(cid, full=True, limit=5)
    assert [v.profile.id_number for v in full if v.profile] == [adult(i).id_number for i in range(5)]
    with pytest.raises(LedgerError) as info:
        people.list(cid, limit=0)
    assert (info.value.code, info.value.field) == (ErrorCode.INVALID_FIELD, "limit")


# ---------------------------------------------------------------------------------- updates


def test_update_profile_reencrypts_and_moves_indexes(
    people: People, community: CommunityInfo, owner: Conn
) -> None:
    cid = community.community_id
    pid = register(people, cid, adult())
    before = raw_person(owner, cid, pid)
    changed = adult(phone="13600000000")
    people.update_profile(cid, pid, changed, actor_id=uuid.uuid4())
    after = raw_person(owner, cid, pid)
    assert after["profile_enc"] != before["profile_enc"] and after["phone_bidx"] != before["phone_bidx"]
    assert after["id_number_bidx"] == before["id_number_bidx"]
    view = people.get(cid, pid, full=True)
    assert view.profile == changed
    assert people.find_by_phone(cid, "13812345678") == []
    assert people.find_by_phone(cid, "13600000000") == [pid]


def test_update_to_someone_elses_id_number_is_a_duplicate(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    register(people, cid, adult(1))
    pid = register(people, cid, adult(2))
    with pytest.raises(LedgerError) as info:
        people.update_profile(cid, pid, adult(1), actor_id=None)
    assert info.value.code == ErrorCode.DUPLICATE_PERSON
    with pytest.raises(LedgerError) as info:
        people.update_profile(cid, uuid.uuid4(), adult(3), actor_id=None)
    assert info.value.code == ErrorCode.PERSON_NOT_FOUND


def test_update_consent(people: People, community: CommunityInfo) -> None:
    cid = community.community_id
    pid = register(people, cid, adult())
    people.update_consent(cid, pid, consent_publish=True, actor_id=None)
    view = people.get(cid, pid, full=False)
    assert (view.consent_entry, view.consent_publish) == (True, True)
    people.update_consent(cid, pid, consent_entry=False, actor_id=None)
    view = people.get(cid, pid, full=False)
    assert (view.consent_entry, view.consent_publish) == (False, True)


# ---------------------------------------------------------------------------------- erasure


def test_erasure_shreds_the_data_key(
    people: People, keyring: Keyring, community: CommunityInfo, owner: Conn, caplog: pytest.LogCaptureFixture
) -> None:
    cid = community.community_id
    profile = adult()
    pid = register(people, cid, profile)
    neighbour = register(people, cid, adult(9, name="陈静", phone=None))
    backup = raw_person(owner, cid, pid)["profile_enc"]  # a copy kept, as a backup would
    assert backup is not None
    with caplog.at_level(logging.INFO, logger="vledger.people"):
        people.erase(cid, pid, actor_id=uuid.uuid4())
        people.erase(cid, pid, actor_id=None)  # idempotent
    assert profile.name not in caplog.text and "person erased" in caplog.text

    row = raw_person(owner, cid, pid)
    assert row["erased_at"] == NOW
    assert row["profile_enc"] is None and row["id_number_bidx"] is None and row["phone_bidx"] is None
    assert raw_key(owner, cid, pid) is None
    view = people.get(cid, pid, full=True)
    assert view.erased and view.profile is None and view.erased_at == NOW
    # No key left in the database opens the backup: the person's data key is gone.
    for key_id, wrapped in owner.execute(
        "SELECT key_id, wrapped_key FROM person_key WHERE community_id = %s", (cid,)
    ):
        dek = unwrap_data_key(keyring, cid, neighbour, key_id, bytes(wrapped))
        with pytest.raises(DecryptionError):
            decrypt_profile(dek, cid, pid, bytes(backup))
    assert people.get(cid, neighbour, full=True).profile is not None  # others untouched
    assert profile.id_number is not None
    assert people.find_by_id_number(cid, profile.id_number) is None
    assert [v.person_id for v in people.list(cid) if v.erased] == [pid]
    # Erased: no more updates, and the ID number may be registered afresh.
    with pytest.raises(LedgerError) as info:
        people.update_profile(cid, pid, profile, actor_id=None)
    assert info.value.code == ErrorCode.PERSON_ERASED
    with pytest.raises(LedgerError) as info:
        people.update_consent(cid, pid, consent_publish=True, actor_id=None)
    assert info.value.code == ErrorCode.PERSON_ERASED
    assert register(people, cid, profile) != pid


def test_erasing_nobody_is_person_not_found(people: People, community: CommunityInfo) -> None:
    with pytest.raises(LedgerError) as info:
        people.erase(community.community_id, uuid.uuid4(), actor_id=None)
    assert info.value.code == ErrorCode.PERSON_NOT_FOUND


# ---------------------------------------------------------------------------------- rotation


def test_rotation_rewraps_keys_and_the_old_key_can_be_removed(
    pool: ConnectionPool[Conn], keyring: Keyring, community: CommunityInfo, owner: Conn
) -> None:
    cid = community.community_id
    before = People(pool, keyring, clock=lambda: NOW)
    ids = [register(before, cid, adult(i, phone=None)) for i in range(3)]
    erased = register(before, cid, adult(50, phone=None))
    before.erase(cid, erased, actor_id=None)
    profiles_before = {pid: raw_person(owner, cid, pid)["profile_enc"] for pid in ids}

    new_key = generate_key()
    rotating = Keyring({"t2": new_key, "t1": keyring.master_key("t1")}, keyring.blind_index_key)
    service = People(pool, rotating, clock=lambda: NOW)
    assert service.rewrap_keys(community_id=cid) == 3
    assert service.rewrap_keys(community_id=cid) == 0  # idempotent
    for pid in ids:
        key = raw_key(owner, cid, pid)
        assert key is not None and key[0] == "t2"
        assert raw_person(owner, cid, pid)["profile_enc"] == profiles_before[pid]  # profiles untouched

    after = People(pool, Keyring({"t2": new_key}, keyring.blind_index_key), clock=lambda: NOW)
    assert [after.get(cid, pid, full=True).profile for pid in ids] == [adult(i, phone=None) for i in range(3)]
    assert after.find_by_id_number(cid, adult(1).id_number or "") == ids[1]
    with pytest.raises(KeyringError, match="not in the keyring"):  # a process still on the old keys
        People(pool, keyring).get(cid, ids[0], full=True)


def test_rotation_over_a_connection_in_small_batches(
    pool: ConnectionPool[Conn], keyring: Keyring, community: CommunityInfo
) -> None:
    cid = community.community_id
    service = People(pool, keyring, clock=lambda: NOW)
    ids = [register(service, cid, adult(i, phone=None)) for i in range(5)]
    rotating = Keyring({"t3": generate_key(), "t1": keyring.master_key("t1")}, keyring.blind_index_key)
    with pool.connection() as conn:
        assert rewrap_all(conn, rotating, community_id=cid, batch_size=2) == 5
    reader = People(pool, Keyring({"t3": rotating.master_key("t3")}, keyring.blind_index_key))
    assert all(reader.get(cid, pid, full=True).profile is not None for pid in ids)


def test_every_write_records_its_actor(people: People, community: CommunityInfo) -> None:
    c = community.community_id
    clerk, admin = uuid.uuid4(), uuid.uuid4()
    person_id = people.create(
        c, adult(), consent_entry=True, consent_publish=False, entered_by_self=False, actor_id=clerk
    )
    people.update_consent(c, person_id, consent_publish=True, actor_id=clerk)
    people.update_profile(c, person_id, adult(name="王秀兰"), actor_id=clerk)
    people.erase(c, person_id, actor_id=admin)
    people.erase(c, person_id, actor_id=admin)  # a second erasure changes nothing and records nothing
    history = people.history(c, person_id)
    assert [(kind, actor) for kind, actor, _ in history] == [
        ("created", clerk),
        ("consent_updated", clerk),
        ("profile_updated", clerk),
        ("erased", admin),
    ]
    assert [at for _, _, at in history] == sorted(at for _, _, at in history)
