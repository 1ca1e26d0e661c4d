"""Kinto's object URIs, spelled in one place: what ``kinto.core.utils.instance_uri`` returns
for Kinto's ids (which need no quoting), without a request; also storage's parent ids."""


def bucket_uri(bucket_id: str) -> str:
    return f"/buckets/{bucket_id}"


def collection_uri(bucket_id: str, collection_id: str) -> str:
    return f"{bucket_uri(bucket_id)}/collections/{collection_id}"


def group_uri(bucket_id: str, group_id: str) -> str:
    return f"{bucket_uri(bucket_id)}/groups/{group_id}"


def record_uri(bucket_id: str, collection_id: str, record_id: str) -> str:
    return f"{collection_uri(bucket_id, collection_id)}/records/{record_id}"
