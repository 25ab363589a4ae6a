"""One image dreamed: the network and what it knows (catalog, weights, models), what to
maximise (objectives, bound to the network in binding), the dream step (dream, with tiling,
graphs and priors), stills (images), the camera's move (motion), the layer atlas, and the
figures that judge a dream (measure). catalog and objectives import no torch."""
