"""wavesurrogate.data"""
