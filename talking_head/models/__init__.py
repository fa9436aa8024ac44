"""The paper's three networks (embedder E, generator G, projection discriminator D) and the personal
generator G' that few-shot personalisation makes of G."""

from talking_head.models.discriminator import Discriminator
from talking_head.models.embedder import Embedder
from talking_head.models.generator import Generator
from talking_head.models.personal import PersonalGenerator

__all__ = ["Discriminator", "Embedder", "Generator", "PersonalGenerator"]
