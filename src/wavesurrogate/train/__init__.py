"""wavesurrogate.train"""
