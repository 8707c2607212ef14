"""Every config model of the package on one strict base: ``base`` (loader), ``campaign``, ``train``."""
