"""Images an end user uploaded for their next messages (Dify's ``/files/upload``), held in this
process: Dify keeps them in its file store; here an upload lives until it is used in a message or
the process restarts."""

from __future__ import annotations

import uuid
from typing import Any

from chatwell.errors import InvalidRequest, NotFound
from chatwell.llm.base import ModelImage
from chatwell.services.end_users import EndUser

MAX_UPLOADS = 200  # images held per process (oldest dropped first)


class Uploads:
    def __init__(self) -> None:
        self._files: dict[uuid.UUID, tuple[EndUser, ModelImage, dict[str, Any]]] = {}

    def add(self, user: EndUser, image: ModelImage, info: dict[str, Any]) -> None:
        if len(self._files) >= MAX_UPLOADS:
            self._files.pop(next(iter(self._files)))
        self._files[uuid.UUID(info["id"])] = (user, image, info)

    def take(self, user: EndUser, file_id: str) -> ModelImage:
        try:
            key = uuid.UUID(file_id)
        except ValueError:
            raise InvalidRequest("upload_file_id is not a valid id") from None
        found = self._files.get(key)
        if found is None or found[0] != user:
            raise NotFound("Upload file not found.", code="upload_not_found")
        return found[1]
