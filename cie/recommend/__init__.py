"""Product recommendations learned online from order, cancellation and review events."""

from cie.recommend.model import KINDS, Recommendation, Recommender, RecommenderConfig

__all__ = ["KINDS", "Recommendation", "Recommender", "RecommenderConfig"]
