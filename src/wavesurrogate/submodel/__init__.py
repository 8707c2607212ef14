"""wavesurrogate.submodel"""
