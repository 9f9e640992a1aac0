"""The dataset overview: sizes, spacings, modalities, class balance, mask areas, intensities, findings and
(for a workspace) review status and the labels before and after cleaning; numbers, text and PNG plots."""

from medseg.stats.report import JSON_NAME, StatsReport
from medseg.stats.run import INTENSITY_IMAGES, iter_stats, open_source, stats

__all__ = ["INTENSITY_IMAGES", "JSON_NAME", "StatsReport", "iter_stats", "open_source", "stats"]
