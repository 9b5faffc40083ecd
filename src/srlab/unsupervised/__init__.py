"""Super-resolution without paired training data (study section 8): weakly supervised cycle training."""
