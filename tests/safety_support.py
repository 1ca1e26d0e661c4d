"""Shared by the issue 3 safety tests: save hooks, read the 400s, bypass validation."""

from tests.support import EmailerWebTest


def hook(**fields):
    return {"recipients": ["alice@example.com"], "template": "", **fields}


class SafetyWebTest(EmailerWebTest):
    """The real app with bucket ``b``; helpers to save hooks and read what arrived."""

    def setUp(self):
        super().setUp()
        self.create_bucket()

    def save_hooks(self, *hooks, status=201):
        return self.create_collection(data=self.hooked(*hooks), status=status)

    def refused(self, *hooks):
        """The message of the 400 that saving ``hooks`` answers."""
        response = self.save_hooks(*hooks, status=400)
        assert response.json["errno"] == 107, response.json
        return response.json["message"]

    def store_unchecked(self, metadata, bucket_id="b", collection_id=None):
        """Write metadata straight to storage, as data saved before validation existed."""
        if collection_id is None:
            resource_name, parent_id, object_id = "bucket", "", bucket_id
        else:
            resource_name, parent_id = "collection", f"/buckets/{bucket_id}"
            object_id = collection_id
        self.app.app.registry.storage.update(
            resource_name=resource_name,
            parent_id=parent_id,
            object_id=object_id,
            obj={"id": object_id, **metadata},
        )

    def emails(self, count):
        """Exactly ``count`` emails, once the plugin has delivered everything."""
        self.drain()
        messages = self.inbox.wait_for(count)
        assert len(messages) == count, [m["Subject"] for m in messages]
        return messages

    def one_email(self):
        return self.emails(1)[0]

    def no_email(self):
        self.drain()
        assert self.inbox.messages == [], [m["Subject"] for m in self.inbox.messages]
