"""The pytest fixtures of conftest.py give what they promise: a fresh logged-in user, its token,
the first admin and the OpenAPI validator, against the stack under test."""


def test_a_fresh_user_reads_itself_and_the_admin_sees_it_as_documented(stack, user, token, admin, openapi):
    mine = stack.http("GET", "/api/users/" + user["id"], headers={"Authorization": "Bearer " + token})
    body = openapi.check(mine, "GET", "/api/users/{id}", 200)
    assert body["id"] == user["id"] and body["user_name"] == user["user_name"], body
    seen = stack.http("GET", "/api/users/" + user["id"], headers={"Authorization": "Bearer " + admin["access"]})
    assert openapi.check(seen, "GET", "/api/users/{id}", 200) == body
    me = stack.http("GET", "/api/auth/me", headers={"Authorization": "Bearer " + admin["access"]})
    assert me.status == 200 and me.json["role"] == "admin" and me.json["id"] != user["id"], me.json
