"""Whether principals hold a permission on a Kinto object, as Kinto decides it: asked when a
hook names a group, by the status views and by unsubscribe."""

from pyramid.interfaces import IAuthorizationPolicy
from pyramid.request import Request
from pyramid.settings import aslist


def has_permission(request: Request, principals: list[str], uri: str, permission: str) -> bool:
    """Whether ``principals`` have ``permission`` on the group, collection or bucket ``uri``,
    as Kinto decides it."""
    policy = request.registry.queryUtility(IAuthorizationPolicy)
    inherited = getattr(policy, "get_bound_permissions", None)
    bound = inherited(uri, permission) if inherited else [(uri, permission), (uri, "write")]
    # Kinto's settings grant permissions too, such as ``bucket_read_principals``.
    settings = request.registry.settings
    for object_uri, granted in bound:
        kind = next((k for k in ("group", "collection") if f"/{k}s/" in object_uri), "bucket")
        if set(aslist(settings.get(f"{kind}_{granted}_principals", ""))) & set(principals):
            return True
    return request.registry.permission.check_permission(principals, bound)


def can_read(request: Request, principals: list[str], uri: str) -> bool:
    """Whether ``principals`` may read the group or bucket ``uri``, as Kinto decides it."""
    return has_permission(request, principals, uri, "read")
