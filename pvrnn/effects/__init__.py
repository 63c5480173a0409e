"""Sound-design effects on audio: time-stretch, pitch-shift, cross-synthesis."""
