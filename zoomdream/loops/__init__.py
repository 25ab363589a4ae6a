"""The frame loops: a zoom, each frame dreamed on the last one moved (zoom), footage dreamed
with the dream carried along its optical flow (footage, flow), and how smoothly a video moves
(smoothness)."""
