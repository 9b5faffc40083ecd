"""Super-resolution without a training set: networks trained on the one image they are asked to enlarge."""
