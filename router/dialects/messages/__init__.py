"""The Anthropic Messages dialect: wire schema, pure translation to and from the canonical layer, routes."""
