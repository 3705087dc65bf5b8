"""Password login, bearer tokens, logout, the login rate limit and the shape of 401/429 problem bodies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import TestClient

from api.deps import Services
from ledger.domain.roles import Grant, Role
from tests.api.conftest import World

Client = TestClient[Litestar]  # conftest's Client, with its type argument for mypy

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"
PASSWORD = "correct horse battery staple"
# conftest's Settings(login_attempts_per_minute=5); the TestClient always calls from this address.
ATTEMPTS = 5
ADDRESS_KEY = "ip:testclient"


@pytest.fixture
def limits(api_services: Services) -> Iterator[None]:
    """Every request of the session comes from one address: start and leave its window empty."""
    api_services.limiter.reset(ADDRESS_KEY)
    yield
    api_services.limiter.reset(ADDRESS_KEY)


def _username() -> str:
    return f"login-{uuid.uuid4().hex[:10]}"


def _user(api_services: Services, world: World, role: Role = Role.SOCIAL_WORKER) -> str:
    username = _username()
    user_id = api_services.identity.create_user(username, PASSWORD)
    api_services.identity.grant(user_id, Grant(role, community_id=world.community_id))
    return username


def _login(client: Client, username: str, password: str) -> Response:
    response: Response = client.post(LOGIN, json={"username": username, "password": password})
    return response


def _assert_problem(response: Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:vledger:error:{code}"
    assert isinstance(body["title"], str) and body["title"]
    return body


@pytest.mark.usefixtures("limits")
def test_password_login_gives_a_bearer_token_that_works_on_me(
    client: Client, api_services: Services, world: World
) -> None:
    username = _user(api_services, world)
    response = _login(client, username, PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["token"].startswith("vl_")
    assert body["expires_at"] is not None  # a session, not an API token

    me = client.get(ME, headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    who = me.json()
    assert who["username"] == username
    assert [(g["role"], g["community_id"]) for g in who["grants"]] == [("social_worker", world.community_id)]
    assert who["grants"][0]["role_name"] == "社工"
    assert who["person_id"] is None

    # The token is good for the community's routes too.
    community = client.get(
        f"/api/v1/communities/{world.community_id}", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert community.status_code == 200


@pytest.mark.usefixtures("limits")
def test_the_auth_scheme_name_is_case_insensitive(
    client: Client, api_services: Services, world: World
) -> None:
    token = _login(client, _user(api_services, world), PASSWORD).json()["token"]
    assert client.get(ME, headers={"Authorization": f"bearer {token}"}).status_code == 200
    assert client.get(ME, headers={"Authorization": f"BEARER   {token}  "}).status_code == 200


@pytest.mark.usefixtures("limits")
def test_wrong_password_and_unknown_user_are_the_same_401(
    client: Client, api_services: Services, world: World
) -> None:
    username = _user(api_services, world)
    wrong = _login(client, username, "not the password")
    unknown = _login(client, _username(), "not the password")
    for response in (wrong, unknown):
        body = _assert_problem(response, 401, "INVALID_CREDENTIALS")
        assert body["title"] == "用户名或密码不正确"
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong.json() == unknown.json()
    assert wrong.content == unknown.content
    assert username not in wrong.text  # nothing about who was asked for


@pytest.mark.usefixtures("limits")
def test_a_user_without_password_cannot_log_in(client: Client, api_services: Services) -> None:
    username = _username()
    api_services.identity.create_user(username, None)
    _assert_problem(_login(client, username, "anything at all"), 401, "INVALID_CREDENTIALS")


@pytest.mark.usefixtures("limits")
def test_a_malformed_login_body_is_400_and_does_not_echo_the_password(client: Client) -> None:
    secret = "hunter2-hunter2-hunter2"
    response = client.post(LOGIN, json={"user": "someone", "password": secret})
    body = _assert_problem(response, 400, "MALFORMED_REQUEST")
    assert "fields" in body
    assert secret not in response.text


@pytest.mark.usefixtures("limits")
def test_too_many_attempts_for_one_username_are_429_with_retry_after(
    client: Client, api_services: Services, world: World
) -> None:
    username = _user(api_services, world)
    for _ in range(ATTEMPTS):
        _assert_problem(_login(client, username, "wrong password"), 401, "INVALID_CREDENTIALS")
    limited = _login(client, username, PASSWORD)  # even the right password waits now
    body = _assert_problem(limited, 429, "RATE_LIMITED")
    retry = body["retry_after_s"]
    assert isinstance(retry, int) and 1 <= retry <= 60
    assert limited.headers["retry-after"] == str(retry)
    assert "token" not in body


@pytest.mark.usefixtures("limits")
def test_too_many_attempts_from_one_address_are_429_whatever_the_username(client: Client) -> None:
    for _ in range(ATTEMPTS):
        _assert_problem(_login(client, _username(), "wrong password"), 401, "INVALID_CREDENTIALS")
    limited = _login(client, _username(), "wrong password")
    body = _assert_problem(limited, 429, "RATE_LIMITED")
    assert limited.headers["retry-after"] == str(body["retry_after_s"])


@pytest.mark.usefixtures("limits")
def test_logout_revokes_the_token(client: Client, api_services: Services, world: World) -> None:
    token = _login(client, _user(api_services, world), PASSWORD).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(ME, headers=headers).status_code == 200

    out = client.post(LOGOUT, headers=headers)
    assert out.status_code == 204
    assert out.content == b""

    after = client.get(ME, headers=headers)
    _assert_problem(after, 401, "UNAUTHENTICATED")
    assert after.headers["www-authenticate"] == "Bearer"
    # Logging out again needs a live token.
    _assert_problem(client.post(LOGOUT, headers=headers), 401, "UNAUTHENTICATED")


def test_logout_leaves_the_users_other_tokens_alone(
    client: Client, api_services: Services, world: World
) -> None:
    user_id = world.user_ids["auditor"]
    spare = api_services.identity.issue_api_token(user_id, "spare").secret
    assert client.post(LOGOUT, headers={"Authorization": f"Bearer {spare}"}).status_code == 204
    assert client.get(ME, headers={"Authorization": f"Bearer {spare}"}).status_code == 401
    assert client.get(ME, headers=world.auth("auditor")).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNzd29yZA==",
        "Token vl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "vl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer vl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer not-a-token",
    ],
    ids=[
        "absent",
        "empty",
        "scheme only",
        "scheme and space",
        "basic",
        "other scheme",
        "no scheme",
        "unknown token",
        "garbage",
    ],
)
def test_a_missing_or_malformed_authorization_header_is_401(client: Client, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.get(ME, headers=headers)
    body = _assert_problem(response, 401, "UNAUTHENTICATED")
    assert body["title"] == "请先登录"
    assert response.headers["www-authenticate"] == "Bearer"


def test_someone_elses_scheme_with_a_valid_secret_is_still_401(client: Client, world: World) -> None:
    token = world.tokens["auditor"]
    for header in (f"Basic {token}", f"Token {token}", token):
        _assert_problem(client.get(ME, headers={"Authorization": header}), 401, "UNAUTHENTICATED")
