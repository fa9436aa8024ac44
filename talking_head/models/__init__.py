"""The paper's three networks: embedder E, generator G, projection discriminator D."""

from talking_head.models.discriminator import Discriminator
from talking_head.models.embedder import Embedder
from talking_head.models.generator import Generator

__all__ = ["Discriminator", "Embedder", "Generator"]
