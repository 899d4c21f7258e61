"""Request size limits: body, query string and headers, refused before a route runs.

A pure ASGI middleware that never buffers a body. Each refusal is a problem like any other:

- 413 `body_too_large` (RFC 9110 section 15.5.14, "Content Too Large"): a declared
  `Content-Length` over the limit is refused without calling the app. A body without one (chunked)
  is counted as the app reads it. As soon as the count passes the limit, the app gets
  `http.disconnect` instead of the bytes and the client gets the 413. If the app has already
  started its response, the body just stops.
- 414 `query_too_long` (RFC 9110 section 15.5.15, "URI Too Long"): the query string alone is
  measured, because the paths are short and fixed.
- 431 `headers_too_large` (RFC 6585 section 5): the sum of every header's name and value.

These are the statuses HTTP defines for each case. A generic 400 would hide which limit was hit.
Every refusal says `Connection: close`, so the server drops the connection rather than read and
discard the rest of an oversized request.

The headers and query string are checked only after the server has parsed them. This is a policy
limit, not a guard for memory: uvicorn with httptools has no header limit of its own.

FastAPI's own `max_body_size` (Starlette 1.x) is not used here. It still calls the app when the
declared length is too large, its 413 is plain text, and it has no 414 or 431.
"""

import logging

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_api.errors import (
    AppError,
    ContentTooLargeError,
    HeaderFieldsTooLargeError,
    UriTooLongError,
)
from tasks_api.problem_details import problem_response

logger = logging.getLogger(__name__)


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_query_string_bytes: int,
        max_header_bytes: int,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_query_string_bytes = max_query_string_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal_before_body(scope)
        if refusal is not None:
            await _refuse(scope, receive, send, refusal)
            return

        received = 0
        exceeded = False
        response_started = False
        answered = False

        async def receive_within_limit() -> Message:
            nonlocal received, exceeded, answered
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            # Counted even with an honest Content-Length: the server enforces that, but this
            # costs nothing and does not depend on it.
            received += len(message.get("body", b""))
            if received <= self.max_body_bytes:
                return message
            exceeded = True
            if not response_started:
                answered = True
                await _refuse(scope, receive, send, self._body_too_large())
            # What a server says once the response is complete: nobody is listening any more.
            return {"type": "http.disconnect"}

        async def send_unless_answered(message: Message) -> None:
            nonlocal response_started
            if answered:
                # The app's reaction to the disconnect (FastAPI turns it into a 400): too late.
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, receive_within_limit, send_unless_answered)

    def _refusal_before_body(self, scope: Scope) -> AppError | None:
        """The first limit the request line and headers break, in the order they arrive."""
        query_bytes = len(scope["query_string"])
        if query_bytes > self.max_query_string_bytes:
            return UriTooLongError(
                f"The query string is {query_bytes} bytes; "
                f"the limit is {self.max_query_string_bytes} bytes."
            )
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            return HeaderFieldsTooLargeError(
                f"The request headers are {header_bytes} bytes (names and values); "
                f"the limit is {self.max_header_bytes} bytes."
            )
        if _declared_length(scope) > self.max_body_bytes:
            return self._body_too_large()
        return None

    def _body_too_large(self) -> ContentTooLargeError:
        # No size in the message: without Content-Length only "more than the limit" is known.
        return ContentTooLargeError(
            f"The request body is larger than the limit of {self.max_body_bytes} bytes."
        )


def _declared_length(scope: Scope) -> int:
    value = Headers(scope=scope).get("content-length", "").strip()
    # A malformed value never reaches the app under a real server (uvicorn answers 400 itself);
    # here it counts as absent, and the body is counted as it arrives.
    return int(value) if value.isascii() and value.isdigit() else 0


async def _refuse(scope: Scope, receive: Receive, send: Send, error: AppError) -> None:
    # Expected input, and the access log line already has the status: DEBUG is enough.
    logger.debug("refused %s: %s", error.code, error.detail)
    response = problem_response(
        # The request id is in the scope's state already: RequestContextMiddleware runs outside.
        Request(scope),
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        headers={**error.headers, "Connection": "close"},
    )
    await response(scope, receive, send)
