"""The chat-template prompt format (every model but gpt-oss): the model's own chat template, rendered by vLLM.

Rendering goes through the engine's vLLM renderer, exactly as ``vllm serve``
renders a chat completion: OpenAI-shaped messages (``openai_chat``), the
request's tools passed to the template, content-format and developer-role
handling, images for vision models. A template that refuses a system message
after the conversation started (Claude Code sends them) gets it folded into the
next user message instead (``fold_late_system_messages``). A conversation that ends in an assistant
message is continued (prefill). Output is parsed by vLLM's reasoning / tool
parsers named in the model config (``vllm_parsers``), or passed through as text.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jinja2
import jinja2.meta
import jinja2.sandbox

from fleetgate.core.config import ModelConfig
from fleetgate.replicas.formats.base import OutputParser, PromptFormat, RenderedPrompt
from fleetgate.replicas.formats.openai_chat import (
    chat_messages,
    chat_template_kwargs,
    chat_tools,
    fold_late_system_messages,
)
from fleetgate.replicas.formats.vllm_parsers import PlainTextOutput, VllmParserOutput, parser_class, vllm_chat_request
from fleetgate.v1 import replica_pb2 as pb

if TYPE_CHECKING:
    from vllm.renderers.base import BaseRenderer


def template_variables(template: str) -> set[str]:
    """Names a Jinja chat template reads from its context (empty when it does not parse)."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"])
    try:
        return set(jinja2.meta.find_undeclared_variables(env.parse(template)))
    except jinja2.TemplateError:
        return {"tools"} if "tools" in template else set()


class ChatTemplateFormat(PromptFormat):
    """Prompts from the model's chat template; output through the configured vLLM parsers."""

    def __init__(self, renderer: BaseRenderer, model: ModelConfig) -> None:
        self._renderer = renderer
        self._tokenizer = renderer.get_tokenizer()
        self._parser_cls = parser_class(model.reasoning_parser, model.tool_parser, self._tokenizer)

    @functools.cached_property
    def supports_tools(self) -> bool:
        """Whether the chat template renders the tools it is given."""
        from vllm.renderers.hf import resolve_chat_template

        template = resolve_chat_template(self._tokenizer, None, None, model_config=self._renderer.model_config)
        return bool(template) and "tools" in template_variables(template)

    @property
    def parses_reasoning(self) -> bool:
        return self._parser_cls is not None and self._parser_cls.reasoning_parser_cls is not None

    def render(self, request: pb.GenerateRequest) -> RenderedPrompt:
        from vllm.renderers.params import ChatParams

        params = ChatParams(chat_template_kwargs=chat_template_kwargs(request, chat_tools(request)))
        messages = chat_messages(request)
        try:
            _, prompt = self._renderer.render_messages(messages, params)
        except jinja2.TemplateError:
            folded = fold_late_system_messages(messages)
            if folded == messages:
                raise
            _, prompt = self._renderer.render_messages(folded, params)
        token_ids = prompt.get("prompt_token_ids")
        if token_ids is None:
            token_ids = self._tokenizer.encode(prompt["prompt"], add_special_tokens=False)
        return RenderedPrompt(token_ids=list(token_ids), multi_modal_data=prompt.get("multi_modal_data"))

    def new_parser(self, request: pb.GenerateRequest) -> OutputParser:
        if self._parser_cls is None:
            return PlainTextOutput()
        chat_request = vllm_chat_request(request)
        parser = self._parser_cls(
            self._tokenizer,
            chat_request.tools,
            chat_template_kwargs=chat_template_kwargs(request, chat_tools(request)),
            model_config=self._renderer.model_config,
        )
        return VllmParserOutput(parser, chat_request)
