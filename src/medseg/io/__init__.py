"""Readers for every supported image format behind one ``load(path)``, mask codecs, display normalisation."""
