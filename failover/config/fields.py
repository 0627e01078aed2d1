"""The config's building blocks: field types with their ranges, the base model, secrets.

Bounded numbers (weights, ports, timeouts) say their range in the words a user reads;
secrets (TSIG keys, the API token, etcd's password) are referenced by environment
variable or file and resolved when used, never written inline.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SecretStr,
)
from pydantic_core import PydanticCustomError, core_schema

from failover.errors import SecretError, SecretMissing

T = TypeVar("T")
MIN_REQUEST_INTERVAL = 1.0  # seconds; Route 53 offers only 10 or 30
CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP", "CALCULATED")
HTTP_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH")
TLS_TYPES = ("HTTPS", "HTTPS_STR_MATCH")
STR_MATCH_TYPES = ("HTTP_STR_MATCH", "HTTPS_STR_MATCH")
# Route 53's own AWS region names, for latency records written natively.
AWS_REGIONS = frozenset({
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1",
    "ap-east-2", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ca-central-1", "ca-west-1",
    "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-west-1",
    "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1", "il-central-1",
    "me-south-1", "me-central-1", "mx-central-1", "sa-east-1", "us-gov-east-1",
    "us-gov-west-1",
})
REGION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1",
                   "hmac-md5")


@dataclass(frozen=True)
class Between:
    """Annotated metadata: a range check whose message names the quantity and its unit,
    and whose bounds appear in the JSON Schema."""

    lo: float
    hi: float | None
    what: str
    unit: str = ""

    def check(self, value: float) -> float:
        if not math.isfinite(value):
            raise PydanticCustomError("finite", "{what} must be a finite number",
                                      {"what": self.what})
        if value < self.lo or (self.hi is not None and value > self.hi):
            bound = (f"between {self.lo:g} and {self.hi:g}{self.unit}" if self.hi is not None
                     else f"at least {self.lo:g}{self.unit}")
            raise PydanticCustomError("out_of_range", "{what} must be {bound}, got {value}",
                                      {"what": self.what, "bound": bound, "value": value})
        return value

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        out = dict(handler(schema))
        out["minimum"] = self.lo
        if self.hi is not None:
            out["maximum"] = self.hi
        return out


def _weight_as_written(value: Any) -> Any:
    """A weight as YAML gave it: a boolean (YAML 1.1 reads yes/no/on/off so) is refused,
    and a number YAML left a string (1e3) is read as one, for the range check to name."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "weight_boolean", "weight must be a number between 0 and 255, got {value} (YAML "
            "reads yes, no, on and off as true and false: write the number)",
            {"value": str(value).lower()})
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if not (math.isfinite(number) and number.is_integer() and 0 <= number <= 255):
            raise PydanticCustomError("out_of_range", "weight must be between 0 and 255, got "
                                      "{value}", {"value": value})
        return int(number)
    return value


Weight = Annotated[int, BeforeValidator(_weight_as_written), Between(0, 255, "weight")]
Port = Annotated[int, Between(1, 65535, "port")]
Seconds = Annotated[float, Between(0.001, None, "timeout", " s")]


class Model(BaseModel):
    """Base of the config models: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# the package's logger, as before it was a package: log filters key on its name
log = logging.getLogger("failover.config")


def resolve_secret(env: str | None, file: str | None, what: str, base: Path) -> SecretStr:
    """Read a secret from the named environment variable or file.

    Raises SecretError naming the variable or file (never the value).
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretMissing(f"{what}: environment variable {env} is not set")
        if not value.strip():
            raise SecretError(f"{what}: environment variable {env} is blank")
        return SecretStr(value.strip())
    if file:
        path = Path(file) if Path(file).is_absolute() else base / file
        try:
            value = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not text"
            raise SecretMissing(f"{what}: cannot read secret file {path}: {why}") from None
        if not value.strip():
            raise SecretError(f"{what}: secret file {path} is empty")
        exposed = secret_file_exposed(path)
        if exposed is not None:
            log.warning("event=secret_file_exposed %s", exposed)
        return SecretStr(value.strip())
    raise SecretError(f"{what}: no secret_env or secret_file given")


def secret_file_exposed(path: Path) -> str | None:
    """A warning when a secret file can be read by its group or by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (f"secret file {path} is readable by {'others' if mode & 0o007 else 'its group'} "
            f"(mode {mode & 0o777:04o}): chmod 600 {path}")


MIN_TOKEN_BYTES = 16  # an API token shorter than this is refused: guessable, or a mistake


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _env_name(value: str) -> str:
    if not ENV_NAME.match(value):
        # never echo it: what is pasted here is often the secret itself
        raise PydanticCustomError(
            "env_name", "must name an environment variable (letters, digits and '_'); the "
            "value given is not a name (if it is the secret itself, remove it from the "
            "config and rotate it)")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
