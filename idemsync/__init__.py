"""idemsync: the composition root and the command line (``idemsync``)."""
