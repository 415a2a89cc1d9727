"""System messages after the conversation started, for chat templates that refuse them."""

from __future__ import annotations

from fleetgate.replicas.formats.openai_chat import fold_late_system_messages


def test_a_late_system_message_opens_the_next_user_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Now answer in French."},
        {"role": "user", "content": "how are you?"},
    ]
    assert fold_late_system_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "<system>\nNow answer in French.\n</system>\nhow are you?"},
    ]


def test_parts_keep_their_images_and_a_trailing_system_message_becomes_a_user_message() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "user", "content": "look"},
        {"role": "system", "content": "Describe it."},
        {"role": "user", "content": [image]},
        {"role": "system", "content": "Stop after one line."},
    ]
    assert fold_late_system_messages(messages) == [
        {"role": "user", "content": "look"},
        {"role": "user", "content": [{"type": "text", "text": "<system>\nDescribe it.\n</system>"}, image]},
        {"role": "user", "content": "<system>\nStop after one line.\n</system>"},
    ]


def test_a_conversation_without_late_system_messages_is_unchanged() -> None:
    messages = [
        {"role": "system", "content": "a"},
        {"role": "system", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert fold_late_system_messages(messages) == messages
