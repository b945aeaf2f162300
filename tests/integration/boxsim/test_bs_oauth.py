"""boxsim: POST /oauth2/token (refresh_token rotation, client_credentials)
and issued access tokens."""

import json
import time
import urllib.parse

import pytest

from bs_helpers import call, schema
from boxapi import BoxClient

CID, SECRET, RT0 = "the-client", "the-secret", "first-refresh-token"


@pytest.fixture
def sim(boxsim_factory):
    return boxsim_factory(extra_args=("--client-id", CID, "--client-secret",
                                      SECRET, "--refresh-token", RT0))


def token(sim, **form):
    c = BoxClient(sim.api, sim.upload, None)
    st, h, raw = c.request("POST", sim.base + "/oauth2/token",
                           urllib.parse.urlencode(form).encode(),
                           {"Content-Type":
                            "application/x-www-form-urlencoded"})
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw
    return st, body


def refresh(sim, rt, cid=CID, secret=SECRET):
    return token(sim, grant_type="refresh_token", client_id=cid,
                 client_secret=secret, refresh_token=rt)


def works(sim, access):
    return call(sim.client_with(access), "GET",
                sim.api + "/users/me")[0] == 200


def test_refresh_rotation(sim):
    st, t1 = refresh(sim, RT0)
    assert st == 200, t1
    schema("AccessToken", t1)
    assert t1["token_type"] == "bearer"
    assert t1["expires_in"] == 3600
    assert t1["restricted_to"] == []
    assert t1["refresh_token"] and t1["refresh_token"] != RT0
    assert works(sim, t1["access_token"])
    # The used refresh token is dead; the new one works once.
    st, e = refresh(sim, RT0)
    assert st == 400 and e["error"] == "invalid_grant", e
    schema("OAuth2Error", e)
    st, t2 = refresh(sim, t1["refresh_token"])
    assert st == 200 and t2["access_token"] != t1["access_token"]
    st, e = refresh(sim, t1["refresh_token"])
    assert st == 400 and e["error"] == "invalid_grant"
    # Earlier access tokens stay valid until they expire; so does --token.
    assert works(sim, t1["access_token"]) and works(sim, t2["access_token"])
    assert works(sim, sim.token)
    assert not works(sim, "made-up-token")


def test_refresh_needs_client_credentials(sim):
    st, e = refresh(sim, RT0, secret="wrong")
    assert st == 400 and e["error"] == "invalid_client", e
    st, e = refresh(sim, RT0, cid="someone-else")
    assert st == 400 and e["error"] == "invalid_client", e
    # A refused attempt did not burn the refresh token.
    st, _ = refresh(sim, RT0)
    assert st == 200


def test_client_credentials(sim):
    st, t = token(sim, grant_type="client_credentials", client_id=CID,
                  client_secret=SECRET, box_subject_type="enterprise",
                  box_subject_id="12345")
    assert st == 200, t
    schema("AccessToken", t)
    assert works(sim, t["access_token"])
    st, t = token(sim, grant_type="client_credentials", client_id=CID,
                  client_secret=SECRET, box_subject_type="user",
                  box_subject_id="1")
    assert st == 200 and works(sim, t["access_token"])
    st, e = token(sim, grant_type="client_credentials", client_id=CID,
                  client_secret=SECRET, box_subject_id="12345")
    assert st == 400 and e["error"] == "invalid_request", e
    st, e = token(sim, grant_type="client_credentials", client_id=CID,
                  client_secret="nope", box_subject_type="enterprise",
                  box_subject_id="12345")
    assert st == 400 and e["error"] == "invalid_client", e


def test_bad_token_requests(sim):
    st, e = token(sim, grant_type="password", client_id=CID,
                  client_secret=SECRET)
    assert st == 400 and e["error"] == "unsupported_grant_type", e
    st, e = token(sim, client_id=CID, client_secret=SECRET)
    assert st == 400 and e["error"] == "invalid_request", e
    st, _, _ = call(BoxClient(sim.api, sim.upload, None), "GET",
                    sim.base + "/oauth2/token")
    assert st == 405
    assert sim.alive()


def test_no_oauth_configured(boxsim):
    """Without --client-id every grant is refused."""
    st, e = refresh(boxsim, RT0)
    assert st == 400 and e["error"] == "invalid_client", e


def test_access_token_expires(boxsim_factory):
    sim = boxsim_factory(extra_args=("--client-id", CID, "--client-secret",
                                     SECRET, "--refresh-token", RT0,
                                     "--token-ttl", "1"))
    st, t = refresh(sim, RT0)
    assert st == 200 and t["expires_in"] == 1
    assert works(sim, t["access_token"])
    time.sleep(2.2)
    st, h, _ = call(sim.client_with(t["access_token"]), "GET",
                    sim.api + "/users/me")
    assert st == 401
    assert 'error="invalid_token"' in (h.get("WWW-Authenticate") or "")
    st, t2 = refresh(sim, t["refresh_token"])
    assert st == 200 and works(sim, t2["access_token"])


def test_refresh_token_survives_nothing_else(sim):
    """Refresh tokens are not access tokens and vice versa."""
    assert not works(sim, RT0)
    st, t = refresh(sim, RT0)
    assert st == 200
    st, e = refresh(sim, t["access_token"])
    assert st == 400 and e["error"] == "invalid_grant"
