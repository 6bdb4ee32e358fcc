"""Talking to an OpenAI-compatible server over HTTP: one place for retries, timeouts and the one-line
errors, shared by every stage that can run on a server (--llm, --stt and --tts openai)."""

from __future__ import annotations

import time
from typing import Any

from talkgpt4all.errors import TalkError

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
CONNECT_TRIES = 3  # a server that is just starting may refuse a connection or two


class ServerError(TalkError):
    """A server could not be reached, refused the request, or sent what could not be used."""


class Server:
    """A base URL, a key, and how to name them in an error ("the speech server", "--stt-url")."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        what: str,
        url_flag: str,
        key_flag: str,
        hint: str,
        read_timeout: float,
        error: type[ServerError] = ServerError,
    ) -> None:
        import requests

        self.url = url.rstrip("/")
        self.what, self.url_flag, self.key_flag, self.hint = what, url_flag, key_flag, hint
        self.read_timeout, self.error = read_timeout, error
        self.http = requests.Session()
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    def request(self, method: str, path: str, base: str | None = None, **kwargs: Any) -> Any:
        """An HTTP request to base (default: the URL) + path, retried briefly while the connection is
        refused."""
        import requests

        url = f"{base or self.url}{path}"
        for attempt in range(CONNECT_TRIES):
            try:
                timeout = (CONNECT_TIMEOUT, self.read_timeout)
                response = self.http.request(method, url, timeout=timeout, **kwargs)
                break
            except requests.ConnectionError as exc:
                if attempt + 1 == CONNECT_TRIES:
                    raise self.error(
                        f"cannot reach the {self.what} at {self.url}: start it, or check {self.url_flag}"
                    ) from exc
                time.sleep(0.5 * (attempt + 1))
            except requests.Timeout as exc:
                raise self.error(
                    f"the {self.what} at {self.url} did not answer in time: is it overloaded?"
                ) from exc
            except requests.RequestException as exc:  # a URL requests cannot use, and the like
                raise self.error(
                    f"cannot ask the {self.what} at {url} ({exc}): check {self.url_flag}"
                ) from exc
        if response.status_code >= 400:
            raise self.error(self.describe(response))
        return response

    def describe(self, response: Any) -> str:
        """A refused request in one line: the server's own message, and what to check."""
        try:
            detail = response.json().get("error", "")
            detail = detail.get("message", "") if isinstance(detail, dict) else str(detail)
        except (ValueError, AttributeError):
            detail = response.text[:200]
        hint = f"check {self.key_flag}" if response.status_code in (401, 403) else self.hint
        return f"the {self.what} at {self.url} answered {response.status_code} {detail}".strip() + f": {hint}"

    def malformed(self, what: str) -> ServerError:
        return self.error(
            f"the {self.what} at {self.url} sent {what}: is {self.url_flag} an OpenAI-compatible server?"
        )
