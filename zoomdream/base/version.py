"""The version, in one place: the package's, and what every video's settings record."""

VERSION = "0.3.0"  # 0.3: colours held over long runs (every zoom's frames change); 0.2: codecs, settings in videos
