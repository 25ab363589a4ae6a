"""The version, in one place: the package's, and what every video's settings record."""

VERSION = "0.2.0"  # 0.2: codecs, settings inside every video, render --like
