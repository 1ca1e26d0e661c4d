"""Issue 24, attack 7: bad query parameters, ids and tokens are 4xx, never 5xx, on every
outbox (memory, Maildir, PostgreSQL), through the real app."""

import base64
import json

from tests.support import (
    EmailerWebTest,
    per_outbox,
    record_hook,
)


def token_of(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


class BadInputScenarios:
    """Mixed into one test class per outbox."""

    @classmethod
    def extra_settings(cls):
        return {**super().extra_settings(), "userid_hmac_secret": "bad-input-tests"}

    def setUp(self):
        super().setUp()
        self.create_bucket()
        self.create_collection(data=self.hooked(record_hook("{id}")))

    def assert_400(self, path, name, method="get", location="querystring"):
        response = getattr(self.app, method)(path, headers=self.headers, status=400)
        assert response.json["errno"] == 107, response.json
        assert response.json["details"][0]["location"] == location
        assert response.json["details"][0]["name"] == name

    BAD_QUERIES = [
        ("_limit=%C2%B2", "_limit"),  # ²
        ("_limit=%D9%A1", "_limit"),  # Arabic-Indic one
        ("_limit=" + "9" * 5000, "_limit"),
        ("_token=true", "_token"),
        ("_token=%C3%A9", "_token"),
        ("_token=" + token_of(True), "_token"),
        ("_token=" + token_of({"offset": True}), "_token"),
        ("_token=" + token_of({"offset": 2**63}), "_token"),
        ("_token=" + token_of({"offset": 10**400}), "_token"),
        ("status=%00", "status"),
        ("collection_id=c%00", "collection_id"),
        ("in_collection_id=c,%00", "in_collection_id"),
        ("_sort=created%00", "_sort"),
        ("%00=1", "\x00"),
    ]

    def test_a_bad_query_parameter_is_a_400_naming_it(self):
        for query, name in self.BAD_QUERIES:
            with self.subTest(query=query[:40]):
                self.assert_400(f"/buckets/b/emails?{query}", name)

    def test_a_bad_email_id_is_a_404(self):
        for email_id in ("%C2%B2", "%D9%A1", "9" * 19, "9" * 5000, "1%00", "-1", "1.0", "a"):
            path = f"/buckets/b/emails/{email_id}"
            with self.subTest(email_id=email_id[:40]):
                for response in (
                    self.app.get(path, headers=self.headers, status=404),
                    self.app.patch_json(path, {"data": {"status": "queued"}},
                                        headers=self.headers, status=404),
                ):  # fmt: skip
                    assert response.json["errno"] == 110

    def test_a_bad_bucket_id_is_a_400_naming_it(self):
        for bucket_id in ("b%00", "%C2%B2", "b%0A", "-b", "b.c"):
            for path in ("emails", "emails/1", "emailer/optouts"):
                with self.subTest(bucket_id=bucket_id, path=path):
                    self.assert_400(f"/buckets/{bucket_id}/{path}", "bucket_id", location="path")
            path = f"/buckets/{bucket_id}/emailer/optouts/x"
            self.assert_400(path, "bucket_id", "delete", "path")

    def test_a_bad_opt_out_id_is_a_404(self):
        for optout_id in ("x%00", "%C2%B2"):
            response = self.app.delete(
                f"/buckets/b/emailer/optouts/{optout_id}", headers=self.headers, status=404
            )
            assert response.json["errno"] == 110

    def test_a_bad_unsubscribe_token_is_a_400(self):
        for token in ("%C3%A9", "%C3%A9.%C3%A9", "a.%C3%A9", "a%00.b", "a.b%00", "%00"):
            for method in (self.app.get, self.app.post):
                with self.subTest(token=token, method=method.__name__):
                    response = method(f"/emailer/unsubscribe/{token}", status=400)
                    assert response.json["errno"] == 107
                    message = response.json["message"]
                    assert message.startswith("This unsubscribe link is not valid")

    def test_a_path_or_query_that_is_not_utf_8_is_kintos_400(self):
        for path in ("/buckets/%FF/emails", "/buckets/b/emails/%FF", "/emailer/unsubscribe/%FF"):
            response = self.app.get(path, headers=self.headers, status=400)
            assert response.json["message"] == "Invalid URL path."
        response = self.app.get("/buckets/b/emails?subject=%FF", headers=self.headers, status=400)
        assert response.json["errno"] == 107


per_outbox(BadInputScenarios, EmailerWebTest, globals(), ("memory", "maildir", "postgresql"))
