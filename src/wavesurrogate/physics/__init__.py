"""wavesurrogate.physics"""
