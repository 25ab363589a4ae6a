"""The version, in one place: the package's, and what every video's settings record."""

# 0.3.1: bf16 and fp16 keep the first layers float32 (their frames change); 0.3: colours held
# over long runs (every zoom's frames change); 0.2: codecs, settings in videos.
VERSION = "0.3.1"
