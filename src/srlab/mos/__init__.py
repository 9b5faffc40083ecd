"""Human ratings (Mean Opinion Score studies): a study folder, a rating web app, and its analysis.

``srlab mos create`` makes a study folder from folders of SR outputs, ``srlab mos serve`` runs the rater
web app over it, ``srlab mos report`` turns its ratings into MOS tables. The records passed between the
app's database and the analysis are :mod:`srlab.mos.records`.
"""
