"""wavesurrogate.eval"""
