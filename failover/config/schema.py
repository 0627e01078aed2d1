"""The JSON Schema of the config file, for editors (`failover schema`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from failover.config import fields, notify, settings
from failover.config import models as models_module
from failover.config.models import Config


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors."""
    from failover.config.descriptions import describe  # `inspect`: only when asked

    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover configuration"
    # `secret` is declared only to refuse an inline secret with a clear message: an
    # editor must not offer it
    schema["$defs"]["TsigKey"]["properties"].pop("secret", None)
    for sink, field in (("SlackSink", "url"), ("WebhookSink", "url"),
                        ("PagerDutySink", "routing_key")):
        schema["$defs"][sink]["properties"].pop(field, None)
    models = {name: obj for module in (fields, settings, models_module, notify)
              for name, obj in vars(module).items()
              if isinstance(obj, type) and issubclass(obj, BaseModel)}
    return describe(schema, models)
