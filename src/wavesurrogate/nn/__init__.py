"""wavesurrogate.nn"""
