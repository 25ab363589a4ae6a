"""Files that go through ffmpeg: the one place that finds and runs it (ffmpeg), the video
writer with its parts and GIF preview (writer), reading clips frame by frame (clip), and a
soundtrack's features per frame (audio)."""
