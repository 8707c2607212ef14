"""Applications on top of the library: the demo and the zone-of-interest submodel."""
