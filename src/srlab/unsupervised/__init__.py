"""Super-resolution without paired training data (study section 8): methods that fit a network to the one LR
image they upscale (Deep Image Prior, :mod:`srlab.unsupervised.dip`; zero-shot SR, :mod:`srlab.unsupervised.zssr`)
and weakly supervised training from unpaired LR and HR images (:mod:`srlab.unsupervised.cycle`)."""
