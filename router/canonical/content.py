"""Content parts: canonical constructors, image URL checks, and the model-capability check for images.

Adapters build parts with ``text_part`` / ``image_part`` (which validates the URL);
the runner calls ``check_images`` with the capabilities the registry reports for
the model, so an image sent to a model without vision is a clear 400 before any
replica is asked.
"""

from __future__ import annotations

from fleetgate.router.errors import invalid_request
from fleetgate.v1 import replica_pb2 as pb

_IMAGE_SCHEMES = ("http://", "https://")
_DATA_IMAGE_PREFIX = "data:image/"


def text_part(text: str) -> pb.ContentPart:
    return pb.ContentPart(text=text)


def image_part(url: str, param: str) -> pb.ContentPart:
    """An image part from an http(s) URL or a base64 ``data:image/...`` URL."""
    if url.startswith(_IMAGE_SCHEMES):
        return pb.ContentPart(image_url=url)
    if url.startswith(_DATA_IMAGE_PREFIX):
        header, sep, data = url.partition(",")
        if not sep or not header.endswith(";base64") or not data:
            raise invalid_request(f"{param}: a data URL image must be data:image/<type>;base64,<data>", param)
        return pb.ContentPart(image_url=url)
    raise invalid_request(f"{param}: an image URL must be http(s) or a data:image/...;base64 URL", param)


def data_url(media_type: str, base64_data: str) -> str:
    return f"data:{media_type};base64,{base64_data}"


def has_images(request: pb.GenerateRequest) -> bool:
    return any(part.WhichOneof("part") == "image_url" for message in request.messages for part in message.content)


def check_images(request: pb.GenerateRequest, *, accepts_images: bool) -> None:
    """400 when the request carries images and the model does not accept them."""
    if not accepts_images and has_images(request):
        raise invalid_request(f"model {request.model} does not accept images", "messages", code="image_not_supported")


def joined_text(parts: list[pb.ContentPart]) -> str:
    """The text parts of a message, concatenated (images dropped)."""
    return "".join(part.text for part in parts if part.WhichOneof("part") == "text")
