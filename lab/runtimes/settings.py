"""What both runtimes read from the environment: the deployment and where it is reached.

`LAB_` variables, plus the Makefile's REPLICAS, CPUS and MEMORY. Each runtime's settings
class adds its own (native/settings.py, docker/settings.py).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab.core import Deployment


class StackSettings(BaseSettings):
    """The deployment `make up` starts, and the host its published ports are reached on."""

    model_config = SettingsConfigDict(env_prefix="LAB_", extra="ignore", populate_by_name=True)

    # Where the stack's ports are reached from this machine (native: where it listens).
    host: str = "127.0.0.1"
    replicas: int = Field(
        default=2, ge=1, le=64, validation_alias=AliasChoices("REPLICAS", "LAB_REPLICAS")
    )
    cpus: str = Field(default="1", validation_alias=AliasChoices("CPUS", "LAB_CPUS"))
    memory: str = Field(default="1g", validation_alias=AliasChoices("MEMORY", "LAB_MEMORY"))

    def deployment(self) -> Deployment:
        return Deployment.parse(self.replicas, self.cpus, self.memory)

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"
