"""What happens when: presets (TOML) read into segments, the schedule that gives every frame
its objective, dream settings and camera move, and expressions over time and a soundtrack's
features. No torch: a whole preset is checked before a network loads."""
