"""Small HTTP helpers shared by the API views."""

from django.utils.http import parse_etags


def etag_matches(request, etag: str) -> bool:
    """True when the request's If-None-Match names etag (or is '*'): the client's copy is current."""
    header = request.headers.get("If-None-Match", "")
    if not header:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == wanted for tag in parse_etags(header))
