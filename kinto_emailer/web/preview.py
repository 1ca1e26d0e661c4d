"""``POST /buckets/{bid}/collections/{cid}/emailer-preview``: what a change would send.

The body describes a change (``preview_change``); the answer lists the hooks that apply to
the collection, and for each whether it matched, why not, and the messages it would queue.
They come from the listener's own path, handed a finder that reads the tried metadata and
only the groups the caller may read, and a trace that keeps what the path decided
(``preview_path``): nothing is sent, queued, stored or counted. Who may write hooks there
may preview them (``preview_checks``).
"""

import dataclasses
import email.utils
import secrets
from typing import Any

from kinto.core import Service
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED

from .. import addresses as recipients
from .. import uris
from ..compose.digests import Digests
from ..compose.listener import collect_emails, hooks_owner
from ..compose.request_bytes import RequestBytes
from ..hooks.kinds import EMAIL, KINDS, SLACK, WEBHOOK, HookKind
from ..hooks.validation import named_groups
from ..outbox import Email
from .preview_change import PreviewChange, describe, read_body
from .preview_checks import check_exists, check_reader, check_tried, check_writer
from .preview_path import PreviewFinder, PreviewTrace


PATH = "/buckets/{bucket_id}/collections/{collection_id}/emailer-preview"
preview = Service(
    name="emailer-preview",
    description="What the hooks of a collection would send for a change, sending nothing",
    path=PATH,
)
#: Headers that say nothing of a preview: a new one each time.
_UNSHOWN_HEADERS = ("Date", "Message-ID", "Reply-To")
FOREIGN_GROUP = "A group of another bucket: nobody (saved before validation refused it)"
UNREADABLE_GROUP = "Not expanded: you can't read this group (a write emails its members)"


def _emails(
    request: Request, change: PreviewChange, finder: PreviewFinder, trace: PreviewTrace
) -> list[Email]:
    """The emails that the listener's path builds for ``change``, and queues nowhere."""
    emailer = request.registry.emailer
    settings = emailer.settings
    if settings.unsubscribe_key is not None:
        # The links show their shape, and unsubscribe nobody: signed with a key of the moment.
        settings = dataclasses.replace(settings, unsubscribe_secret=secrets.token_urlsafe(32))
    emailer = dataclasses.replace(emailer, settings=settings)
    # A digest is completed at once: a time window's email shows this change alone.
    digests = Digests(settings, windowed=False)

    def drop(queued: Email, reason: str, **details: Any) -> None:
        trace.dropped(queued.location, reason)  # Neither logged nor counted.

    request_bytes = RequestBytes(settings.max_request_bytes, drop)
    emails = collect_emails(change, emailer, digests, None, request_bytes, trace, finder)
    digest_emails, _ = digests.take(finder, request_bytes, trace)
    request_bytes.report_skipped()
    return emails + digest_emails


def _message(queued: Email) -> dict[str, Any]:
    if queued.channel == SLACK.channel:
        return dict(queued.payload or {})  # What is posted: {"channel", "text"}.
    if queued.channel == WEBHOOK.channel:
        # Its webhook-id, a new one each time, says nothing of a preview.
        return {"endpoint": queued.destination, "body": (queued.payload or {}).get("body")}
    message = queued.message
    assert message is not None  # Built emails have one; only unbuilt ones are reported.
    headers = dict(message.extra_headers)
    reply_to = email.utils.getaddresses([headers["Reply-To"]]) if "Reply-To" in headers else []
    return {
        "subject": message.subject,
        "sender": message.sender,
        "recipients": list(message.recipients),
        "cc": list(message.cc or ()),
        "bcc": list(message.bcc or ()),
        "reply_to": [email.utils.formataddr(pair) for pair in reply_to],
        "text": message.body,
        "html": message.html,
        "headers": {k: v for k, v in headers.items() if k not in _UNSHOWN_HEADERS},
    }


def _group_notes(
    finder: PreviewFinder, hook: dict[str, Any], bucket_id: str, collection_id: str
) -> list[dict[str, str]]:
    """Why the groups that a hook names add fewer addresses than their members."""
    notes = []
    for field, entry, uri in named_groups(hook, bucket_id, collection_id):
        match = recipients.GROUP_URI.match(uri)
        if match is None:
            continue
        if match.group("bucket_id") != bucket_id:
            notes.append({"address": entry, "field": field, "reason": FOREIGN_GROUP})
            continue
        group = finder.group(bucket_id, match.group("group_id"))
        if uri in finder.unreadable:
            reason = UNREADABLE_GROUP
        elif group is None:
            reason = "No such group: nobody"
        else:
            members = group.get("members", [])
            unknown = [m for m in members if recipients.member_address(m) is None]
            if not unknown:
                continue
            shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
            reason = f"{len(unknown)} of its {len(members)} members have no email address: {shown}"
        notes.append({"address": entry, "field": field, "reason": reason})
    return notes


def _answer(
    where: str,
    trace: PreviewTrace,
    messages: list[dict[str, Any]],
    group_notes: list[dict[str, str]],
    kind: HookKind = EMAIL,
) -> dict[str, Any]:
    refusal = trace.refusals.get(where)
    matched = where in trace.refusals and refusal is None
    left_out = trace.left.get(where, []) + (group_notes if matched else [])
    reason = None if refusal is None else str(refusal)
    if matched and trace.drops.get(where):
        reason = "; ".join(trace.drops[where])
    elif matched and not messages:
        reason = 'Nobody left in "recipients"' + (' (see "left_out")' if left_out else "")
    return {
        "hook": where,
        "channel": kind.channel,
        "matched": matched,
        "reason": reason,
        "messages": messages,
        "left_out": left_out,
    }


@preview.post(permission=NO_PERMISSION_REQUIRED)
def preview_hooks(request: Request) -> dict[str, Any]:
    bucket_id, collection_id = request.matchdict["bucket_id"], request.matchdict["collection_id"]
    check_writer(request, uris.collection_uri(bucket_id, collection_id))
    data = read_body(request)
    if data["metadata_on"] == "bucket":
        check_writer(request, uris.bucket_uri(bucket_id))
    finder = PreviewFinder(request, data["metadata"], data["metadata_on"])
    check_exists(request, finder, data["resource_name"])
    described = describe(request, data)
    check_tried(request, finder, described)
    change = described.change
    owner = hooks_owner(change, change.impacted_objects[0])
    # As the listener: a channel the server doesn't offer sends nothing, whatever is stored.
    offered = [
        kind for kind in KINDS if request.registry.emailer.settings.channels.offers(kind.channel)
    ]
    applying = [(kind, *finder.hooks(*owner, key=kind.key)) for kind in offered]
    for _, hooks, location in applying:
        if hooks:
            check_reader(request, location)
    trace = PreviewTrace()
    emails = _emails(request, change, finder, trace)
    answers = []
    for kind, hooks, location in applying:
        for index, hook in enumerate(hooks):
            where = kind.where(location, index)
            messages = [_message(queued) for queued in emails if queued.location == where]
            notes = _group_notes(finder, hook, bucket_id, collection_id) if kind is EMAIL else []
            answers.append(_answer(where, trace, messages, notes, kind))
    return {"data": answers}


def includeme(config: Configurator) -> None:
    config.add_cornice_service(preview)
