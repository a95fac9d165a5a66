"""Dataset identities and fingerprints: how the storage watch tells new data from old."""

from datetime import UTC, datetime

import pytest

from ctrain.controller.storage.facts import ObjectIdentity, fingerprint

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("identity", "token"),
    [
        (ObjectIdentity("k", etag='"abc"', version_id="v1", size=3), "etag:abc"),
        (ObjectIdentity("k", version_id="v1", size=3), "version:v1"),
        (ObjectIdentity("k", version_id="null", size=3, last_modified="t"), "size:3@t"),
        (ObjectIdentity("k", size=3, last_modified="t"), "size:3@t"),
    ],
)
def test_object_token_prefers_content_identity(identity: ObjectIdentity, token: str) -> None:
    assert identity.token() == token


def test_a_reupload_of_the_same_bytes_keeps_the_fingerprint() -> None:
    first = ObjectIdentity("d.csv", etag='"e1"', last_modified="2026-03-01 10:00:00")
    again = ObjectIdentity("d.csv", etag='"e1"', last_modified="2026-03-02 10:00:00")
    changed = ObjectIdentity("d.csv", etag='"e2"', last_modified="2026-03-02 10:00:00")
    assert fingerprint([first]) == fingerprint([again]) == "etag:e1"
    assert fingerprint([changed]) != fingerprint([first])


def test_prefix_fingerprint_ignores_listing_order_and_sees_every_object() -> None:
    a, b = ObjectIdentity("p/a.csv", etag="1"), ObjectIdentity("p/b.csv", etag="2")
    whole = fingerprint([a, b], prefix=True)
    assert whole is not None and whole.startswith("sha256:") and len(whole) == 7 + 64
    assert fingerprint([b, a], prefix=True) == whole
    assert fingerprint([a, ObjectIdentity("p/b.csv", etag="3")], prefix=True) != whole
    assert fingerprint([a], prefix=True) not in (whole, None)  # an object removed
    assert fingerprint([a, b, ObjectIdentity("p/c.csv", etag="4")], prefix=True) != whole
    assert fingerprint([], prefix=True) is None
    assert fingerprint([]) is None


def test_identities_from_s3_responses() -> None:
    head = {"ETag": '"abc"', "ContentLength": 10, "LastModified": T0, "VersionId": "v"}
    assert ObjectIdentity.from_head("k", head) == ObjectIdentity("k", '"abc"', "v", 10, str(T0))
    listed = {"Key": "p/a", "ETag": '"x"', "Size": 1, "LastModified": T0}
    assert ObjectIdentity.from_listing(listed) == ObjectIdentity("p/a", '"x"', None, 1, str(T0))
